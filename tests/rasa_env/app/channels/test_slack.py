"""The Slack channel over HTTP: recorded Events API and interactivity requests, signed right and wrong."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlencode

import pytest

from tests.app.channels.vendors import recorded, slack_headers
from tests.rasa_env.app.channels.conftest import SLACK_SECRET

HOOK = "/webhooks/slack/webhook"


def event(text: str = "hello", user: str | None = None, **changes) -> dict:
    body = recorded("slack_message_im.json")
    body["event"].update(text=text, user=user or f"U{uuid.uuid4().hex[:8].upper()}", ts=f"{time.time():.6f}")
    body.update(changes)
    return body


def send(served, body: dict | bytes, secret: str = SLACK_SECRET, **header_changes):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**slack_headers(secret, raw), **header_changes}
    return served.post(HOOK, raw, headers)


def click(served, payload: dict):
    raw = urlencode({"payload": json.dumps(payload)}).encode()
    return served.post(
        HOOK, raw, slack_headers(SLACK_SECRET, raw, content_type="application/x-www-form-urlencoded")
    )


def test_the_url_verification_handshake_answers_the_challenge(served):
    body = recorded("slack_url_verification.json")
    status, text, _ = send(served, body)
    assert (status, json.loads(text)) == (200, {"challenge": body["challenge"]})


def test_a_direct_message_reaches_the_bot_with_our_ids_and_the_reply_goes_to_its_thread(served):
    body = event("hello", user="U2147483697")
    status, text, headers = send(served, body)
    assert status == 200 and json.loads(text) == {"status": "accepted"}
    assert headers["x-request-id"] == body["event_id"]
    [posted] = served.vendors.wait_for("/slack/api/chat.postMessage", 1)
    message = posted.json()
    assert posted.headers["Authorization"] == "Bearer xoxb-test"
    assert (message["channel"], message["thread_ts"]) == ("D024BE91L", body["event"]["ts"])
    assert message["text"] == "Hi! I'm the Northwind Goods assistant."
    assert message["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": message["text"]}}
    [received] = served.agent.received
    assert received.sender_id == "acme:slack-T0NORTHWND-U2147483697"
    assert received.input_channel == "slack"
    assert received.metadata["tenant_id"] == "acme"
    assert received.metadata["user_id"] == "slack-T0NORTHWND-U2147483697"
    assert received.metadata["correlation_id"] == body["event_id"]


def test_the_gateways_request_id_is_the_correlation_id(served):
    send(served, event("hello"), **{"X-Request-Id": "gw-req-1"})
    served.vendors.wait_for("/slack/api/chat.postMessage", 1)
    assert served.agent.received[0].metadata["correlation_id"] == "gw-req-1"


def test_a_mention_loses_the_bots_name_and_a_knowledge_answer_shows_its_source(served):
    body = recorded("slack_app_mention.json")
    body["event"]["text"] = "<@U0BOTUSER> delivery"
    assert send(served, body)[0] == 200
    [posted] = served.vendors.wait_for("/slack/api/chat.postMessage", 1)
    assert served.agent.texts() == ["delivery"]
    blocks = posted.json()["blocks"]
    assert blocks[0]["text"]["text"] == "Delivery to Germany takes *2-4 business days*."
    assert blocks[-1] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "Source: <https://help.northwind.example/search?q=Shipping|Shipping › Delivery times>",
            }
        ],
    }


def test_buttons_are_block_kit_actions_and_a_click_sends_the_payload(served):
    user = f"U{uuid.uuid4().hex[:8].upper()}"
    send(served, event("menu", user=user))
    [posted] = served.vendors.wait_for("/slack/api/chat.postMessage", 1)
    actions = posted.json()["blocks"][1]
    assert actions["type"] == "actions"
    assert [(b["text"]["text"], b["value"]) for b in actions["elements"]] == [
        ("Track an order", "/track_order"),
        ("Talk to a person", "/human_handoff"),
    ]
    payload = recorded("slack_block_actions.json")
    payload["user"]["id"] = user
    status, _, _ = click(served, payload)
    assert status == 200
    replies = served.vendors.wait_for("/slack/api/chat.postMessage", 2)
    assert served.agent.texts() == ["menu", "/track_order"]
    assert served.agent.received[1].sender_id == f"acme:slack-T0NORTHWND-{user}"
    assert replies[1].json()["thread_ts"] == payload["message"]["thread_ts"]
    assert "order number" in replies[1].json()["text"]


def test_a_handoff_is_answered_in_the_thread(served):
    send(served, event("/human_handoff"))
    posted = served.vendors.wait_for("/slack/api/chat.postMessage", 2)
    assert "ticket #7" in posted[0].json()["text"]


@pytest.mark.parametrize(
    ("secret", "headers"),
    [
        ("not-the-secret", {}),
        (SLACK_SECRET, {"X-Slack-Signature": "v0=" + "0" * 64}),
        (SLACK_SECRET, {"X-Slack-Signature": ""}),
        (SLACK_SECRET, {"X-Slack-Request-Timestamp": "yesterday"}),
    ],
    ids=["other-secret", "forged", "empty", "bad-timestamp"],
)
def test_a_bad_signature_gets_401_and_reaches_no_conversation(served, secret, headers):
    status, text, _ = send(served, event("hello"), secret, **headers)
    assert status == 401 and json.loads(text)["error"] == "invalid_signature"
    time.sleep(0.2)
    assert served.agent.received == [] and served.vendors.seen == []


def test_a_replayed_request_older_than_five_minutes_gets_401(served):
    raw = json.dumps(event("hello")).encode()
    old = slack_headers(SLACK_SECRET, raw, timestamp=int(time.time()) - 6 * 60)  # signed right, but stale
    status, text, _ = served.post(HOOK, raw, old)
    assert status == 401 and json.loads(text)["error"] == "invalid_signature"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{nope", "application/json", 400, "malformed_json"),
        (b"[1, 2]", "application/json", 400, "invalid_body"),
        (json.dumps(event("hello")).encode()[:-10], "application/json", 400, "malformed_json"),
        (b"x" * 5000, "application/json", 413, "body_too_large"),
        (b"payload=%7Bnope", "application/x-www-form-urlencoded", 400, "malformed_json"),
        (b"nothing=here", "application/x-www-form-urlencoded", 400, "invalid_body"),
        (b"<xml/>", "text/xml", 415, "unsupported_media_type"),
    ],
    ids=["not-json", "array", "truncated", "oversized", "form-not-json", "form-no-payload", "xml"],
)
def test_malformed_or_oversized_requests_get_a_clear_4xx_and_store_nothing(
    served, body, content_type, status, code
):
    reply_status, text, _ = served.post(
        HOOK, body, slack_headers(SLACK_SECRET, body, content_type=content_type)
    )
    assert (reply_status, json.loads(text)["error"]) == (status, code)
    assert served.agent.received == []


def test_a_message_over_the_limit_gets_413(served, monkeypatch):
    monkeypatch.setattr(served.channels["slack"], "max_message_chars", 10)
    status, text, _ = send(served, event("a message that is longer than ten"))
    assert (status, json.loads(text)["error"]) == (413, "message_too_long")
    assert served.agent.received == []


def test_another_workspace_gets_403(served):
    status, text, _ = send(served, event("hello", team_id="T0OTHERTEAM"))
    assert (status, json.loads(text)["error"]) == (403, "unknown_workspace")
    assert served.agent.received == []


def test_the_bots_own_messages_and_other_events_are_ignored(served):
    for body in (recorded("slack_bot_message.json"), {**event("hi"), "type": "app_rate_limited"}):
        status, text, _ = send(served, body)
        assert (status, json.loads(text)) == (200, {"status": "ignored"})
    time.sleep(0.2)
    assert served.agent.received == []


def test_slacks_retry_after_a_timeout_is_not_handled_twice(served):
    status, _, headers = send(
        served, event("hello"), **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert status == 200 and headers["x-slack-no-retry"] == "1"
    time.sleep(0.2)
    assert served.agent.received == []


def test_with_a_channel_secret_only_the_gateway_gets_through(served, monkeypatch):
    monkeypatch.setattr(served.channels["slack"], "channel_secret", "gateway-secret-0123")
    status, text, _ = send(served, event("hello"))
    assert (status, json.loads(text)["error"]) == (401, "invalid_channel_secret")
    assert send(served, event("hello"), **{"X-Channel-Secret": "gateway-secret-0123"})[0] == 200
    # Handled in the background: wait, so that it is not the next test's.
    served.vendors.wait_for("/slack/api/chat.postMessage", 1)
    assert served.agent.texts() == ["hello"]


def test_the_channel_refuses_to_start_without_a_workspace_map():
    from app.channels.slack import SlackChannel

    with pytest.raises(ValueError, match="no workspace is mapped"):
        SlackChannel.from_credentials({"slack_token": "xoxb", "slack_signing_secret": "s"})
