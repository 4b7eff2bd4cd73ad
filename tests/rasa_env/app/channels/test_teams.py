"""The Microsoft Teams (Bot Framework) channel over HTTP: recorded activities with tokens signed by the
stand-in's key (as Microsoft's would be) and tokens wrong in every way Microsoft says to check."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote

import jwt
import pytest

from tests.app.channels.vendors import ACCESS_TOKEN, KEY_ID, recorded
from tests.rasa_env.app.channels.conftest import APP_ID

HOOK = "/webhooks/botframework/webhook"


def activity(
    served, name: str = "teams_message.json", text: str | None = "hello", user: str | None = None
) -> dict:
    body = recorded(name)
    body["serviceUrl"] = f"{served.vendors.url}/teams/"
    body["id"] = uuid.uuid4().hex
    body["conversation"]["id"] = f"a:{uuid.uuid4().hex}"
    if user:
        body["from"]["aadObjectId"] = user
    if text is not None:
        body["text"] = text
    return body


def send(served, body: dict | bytes, token: str | None = None, **claims):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if token is None:
        service_url = body["serviceUrl"] if isinstance(body, dict) else f"{served.vendors.url}/teams/"
        token = served.vendors.teams_token(APP_ID, service_url, **claims)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    status, text, headers = served.post(HOOK, raw, headers)
    return status, json.loads(text) if text else None, headers


def test_a_message_reaches_the_bot_and_the_reply_answers_the_activity(served):
    body = activity(served, text="hello")
    status, answer, headers = send(served, body)
    assert (status, answer) == (200, {"status": "ok"})
    assert headers["x-request-id"] == body["id"]
    [received] = served.agent.received
    assert received.sender_id == "acme:teams-d2f8d8a1-6a67-4f4f-8b0a-2a3b0f6e4c11"  # the Entra object id
    assert received.input_channel == "botframework"
    assert received.metadata["tenant_id"] == "acme" and received.metadata["correlation_id"] == body["id"]
    [token_request] = [s for s in served.vendors.requests("/microsoft/token")] or [None]
    [posted] = served.vendors.requests("/teams/v3/conversations/")
    assert (
        posted.path
        == f"/teams/v3/conversations/{quote(body['conversation']['id'], safe='')}/activities/{body['id']}"
    )
    assert posted.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    reply = posted.json()
    assert reply["text"] == "Hi! I'm the Northwind Goods assistant."
    assert (reply["from"], reply["recipient"], reply["replyToId"]) == (
        body["recipient"],
        body["from"],
        body["id"],
    )
    if token_request is not None:  # the access token is cached: only the first test's reply fetched it
        assert (
            token_request.form()["client_id"] == APP_ID
            and token_request.form()["grant_type"] == "client_credentials"
        )


def test_a_mention_in_a_channel_is_removed_and_a_knowledge_answer_links_its_source(served):
    status, _, _ = send(served, activity(served, text="<at>Northwind Assistant</at> delivery"))
    assert status == 200 and served.agent.texts() == ["delivery"]
    [posted] = served.vendors.requests("/teams/v3/conversations/")
    assert posted.json()["text"] == (
        "Delivery to Germany takes **2-4 business days**.\n\n"
        "Source: [Shipping › Delivery times](https://help.northwind.example/search?q=Shipping)"
    )


def test_buttons_are_message_back_card_actions_whose_click_sends_the_payload(served):
    user = str(uuid.uuid4())
    send(served, activity(served, text="menu", user=user))
    [posted] = served.vendors.requests("/teams/v3/conversations/")
    card = posted.json()["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.hero"
    assert card["content"]["buttons"][0] == {
        "type": "messageBack",
        "title": "Track an order",
        "text": "/track_order",
        "displayText": "Track an order",
    }
    click = activity(served, "teams_message_back.json", text=None, user=user)
    assert send(served, click)[0] == 200
    assert served.agent.texts() == ["menu", "/track_order"]


def test_a_handoff_is_answered(served):
    assert send(served, activity(served, text="/human_handoff"))[0] == 200
    replies = served.vendors.requests("/teams/v3/conversations/")
    assert "ticket #7" in replies[0].json()["text"]


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"aud": "another-bot"}, "invalid_token"),
        ({"iss": "https://sts.windows.net/evil/"}, "invalid_token"),
        ({"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 7200}, "invalid_token"),
        ({"nbf": int(time.time()) + 3600}, "invalid_token"),
        ({"exp": None}, "invalid_token"),
    ],
    ids=["audience", "issuer", "expired", "not-yet-valid", "no-expiry"],
)
def test_a_token_with_wrong_claims_gets_401_and_reaches_no_conversation(served, claims, code):
    status, answer, _ = send(served, activity(served), **claims)
    assert (status, answer["error"]) == (401, code)
    assert served.agent.received == [] and served.vendors.requests("/teams/") == []


def test_tokens_not_signed_by_microsofts_key_get_401(served):
    from cryptography.hazmat.primitives.asymmetric import rsa

    body = activity(served)
    claims = {"iss": "https://api.botframework.com", "aud": APP_ID, "serviceurl": body["serviceUrl"]}
    claims["exp"] = int(time.time()) + 600
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [
        jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": KEY_ID}),  # right kid, wrong key
        jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "unknown-key"}),
        jwt.encode(claims, "a-shared-secret-guessed-by-someone", algorithm="HS256", headers={"kid": KEY_ID}),
        "not.a.jwt",
    ]
    for token in forged:
        status, answer, _ = send(served, body, token=token)
        assert (status, answer["error"]) == (401, "invalid_token"), token
    status, answer, _ = served.post(HOOK, json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert (status, json.loads(answer)["error"]) == (401, "missing_token")
    assert served.agent.received == []


def test_a_service_url_other_than_the_tokens_or_not_allowed_gets_403(served):
    body = activity(served)
    status, answer, _ = send(served, body, serviceurl="https://smba.trafficmanager.net/emea/")
    assert (status, answer["error"]) == (403, "service_url_mismatch")
    body["serviceUrl"] = "https://attacker.example/collect/"
    status, answer, _ = send(served, body)  # the token names this URL too: still not an allowed host
    assert (status, answer["error"]) == (403, "service_url_not_allowed")
    assert served.agent.received == [] and served.vendors.requests("/teams/") == []


def test_a_channel_the_key_is_not_endorsed_for_gets_403(served):
    body = activity(served)
    body["channelId"] = "webchat"
    status, answer, _ = send(served, body)
    assert (status, answer["error"]) == (403, "channel_not_endorsed")


def test_another_microsoft_tenant_gets_403(served):
    body = activity(served)
    body["channelData"]["tenant"]["id"] = str(uuid.uuid4())
    status, answer, _ = send(served, body)
    assert (status, answer["error"]) == (403, "unknown_tenant")
    assert served.agent.received == []


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (lambda b: b"{nope", 400, "malformed_json"),
        (lambda b: b"[]", 400, "invalid_activity"),
        (lambda b: {k: v for k, v in b.items() if k != "conversation"}, 400, "invalid_activity"),
        (lambda b: {**b, "from": "megan"}, 400, "invalid_activity"),
        (lambda b: {**b, "serviceUrl": "ftp://x"}, 400, "invalid_activity"),
        (lambda b: {**b, "text": ["hello"]}, 400, "invalid_activity"),
        (lambda b: {**b, "text": "x" * 2001}, 413, "message_too_long"),
        (lambda b: {**b, "padding": "x" * 70000}, 413, "body_too_large"),
    ],
    ids=[
        "not-json",
        "array",
        "no-conversation",
        "from-not-object",
        "service-url",
        "text-list",
        "long",
        "oversized",
    ],
)
def test_malformed_activities_get_a_clear_4xx_and_store_nothing(served, change, status, code):
    body = activity(served)
    changed = change(body)
    token = served.vendors.teams_token(APP_ID, body["serviceUrl"])
    reply_status, answer, _ = send(served, changed if isinstance(changed, bytes) else changed, token=token)
    assert (reply_status, answer["error"]) == (status, code)
    assert served.agent.received == []


def test_other_activity_types_are_acknowledged_and_ignored(served):
    status, answer, _ = send(served, activity(served, "teams_conversation_update.json", text=None))
    assert (status, answer) == (200, {"status": "ignored"})
    assert served.agent.received == []


def test_a_failure_to_handle_the_message_is_a_500_not_a_200(served):
    status, answer, _ = send(served, activity(served, text="boom"))
    assert (status, answer["error"]) == (500, "internal_error")


def test_keys_that_cannot_be_fetched_are_a_503():
    import asyncio

    from app.channels.teams import KeysUnavailable, SigningKeys

    keys = SigningKeys("http://127.0.0.1:9/openid")  # nothing listens on the discard port
    with pytest.raises(KeysUnavailable):
        asyncio.run(keys.key("any"))
