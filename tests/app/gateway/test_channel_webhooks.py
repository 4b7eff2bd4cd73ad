"""Vendor webhooks through the gateway: relayed byte for byte with the headers their signatures cover, the
channel's answer (JSON or TwiML) back unchanged, and the gateway's own limits applied before Rasa."""

from __future__ import annotations

import httpx
import pytest

from app.gateway.config import GatewayConfig
from tests.app.gateway.conftest import UPSTREAM, make_config
from tests.openapi_contract import Contract

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hi</Say></Response>'
SLACK_BODY = b'{"type": "event_callback", "team_id": "T1", "event": {"type": "message", "text": "hi"}}'
SLACK_HEADERS = {
    "Content-Type": "application/json",
    "X-Slack-Request-Timestamp": "1531420618",
    "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    "X-Slack-Retry-Num": "1",
    "X-Slack-Retry-Reason": "http_timeout",
}


def channel_reply(request: httpx.Request) -> httpx.Response:
    """Plays Rasa's channels: TwiML for voice, JSON otherwise (with Slack's no-retry header)."""
    if request.url.path == "/webhooks/twilio_voice/webhook":
        return httpx.Response(200, text=TWIML, headers={"Content-Type": "text/xml", "X-Internal": "x"})
    return httpx.Response(
        200, json={"status": "accepted"}, headers={"X-Slack-No-Retry": "1", "X-Internal": "x"}
    )


def with_secret() -> GatewayConfig:
    return make_config().model_copy(update={"channel_secret": "channel-secret-0123456789"})


def test_a_slack_event_is_relayed_unchanged_with_its_signature_headers(gateway, upstream):
    upstream.behaviour[UPSTREAM] = channel_reply
    client = gateway(with_secret())
    reply = client.post(
        "/webhooks/slack/webhook", content=SLACK_BODY, headers={**SLACK_HEADERS, "X-Request-Id": "req-1"}
    )
    assert (reply.status_code, reply.json()) == (200, {"status": "accepted"})
    assert reply.headers["X-Request-Id"] == "req-1" and reply.headers["X-Slack-No-Retry"] == "1"
    assert "X-Internal" not in reply.headers
    [sent] = upstream.posts()
    assert str(sent.url) == f"{UPSTREAM}/webhooks/slack/webhook"
    assert sent.content == SLACK_BODY
    for name, value in SLACK_HEADERS.items():
        assert sent.headers[name] == value
    assert sent.headers["X-Request-Id"] == "req-1"
    assert sent.headers["X-Channel-Secret"] == "channel-secret-0123456789"


def test_twilio_voice_gets_its_twiml_back_and_its_query_and_signature_are_relayed(gateway, upstream):
    upstream.behaviour[UPSTREAM] = channel_reply
    client = gateway()
    form = b"AccountSid=AC1&From=%2B15557654321&To=%2B15550100002&FromZip="
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "c2lnbmF0dXJl"}
    reply = client.post("/webhooks/twilio_voice/webhook?reprompts=1", content=form, headers=headers)
    assert reply.status_code == 200 and reply.text == TWIML
    assert reply.headers["Content-Type"].startswith("text/xml")
    [sent] = upstream.posts()
    assert sent.url.path == "/webhooks/twilio_voice/webhook" and sent.url.query == b"reprompts=1"
    assert sent.content == form and sent.headers["X-Twilio-Signature"] == "c2lnbmF0dXJl"


def test_a_teams_token_is_relayed_and_the_gateway_asks_for_no_jwt_of_its_own(gateway, upstream):
    upstream.behaviour[UPSTREAM] = channel_reply
    reply = gateway().post(
        "/webhooks/botframework/webhook",
        json={"type": "message"},
        headers={"Authorization": "Bearer ms-token"},
    )
    assert reply.status_code == 200
    assert upstream.posts()[0].headers["Authorization"] == "Bearer ms-token"


def test_the_channels_refusals_pass_through(gateway, upstream):
    upstream.behaviour[UPSTREAM] = lambda request: httpx.Response(
        401, json={"error": "invalid_signature", "message": "X-Slack-Signature does not match the body."}
    )
    reply = gateway().post("/webhooks/slack/webhook", content=SLACK_BODY, headers=SLACK_HEADERS)
    assert (reply.status_code, reply.json()["error"]) == (401, "invalid_signature")


def test_a_channel_the_bot_does_not_serve_and_an_unknown_one_are_404(gateway, upstream):
    upstream.behaviour[UPSTREAM] = lambda request: httpx.Response(404, text="Requested URL not found")
    client = gateway()
    reply = client.post("/webhooks/twilio/webhook", content=b"a=b")
    assert (reply.status_code, reply.json()["error"]) == (404, "channel_off")
    reply = client.post("/webhooks/telegram/webhook", content=b"{}")
    assert (reply.status_code, reply.json()["error"]) == (404, "unknown_channel")
    assert len(upstream.posts()) == 1


def test_an_oversized_body_is_refused_before_rasa(gateway, upstream):
    reply = gateway(make_config(max_body_bytes=1024)).post("/webhooks/slack/webhook", content=b"x" * 2000)
    assert (reply.status_code, reply.json()["error"]) == (413, "body_too_large")
    assert upstream.posts() == []


def test_the_channels_rate_limit_refuses_with_retry_after(gateway, upstream):
    upstream.behaviour[UPSTREAM] = channel_reply
    client = gateway(make_config(channel_limit="2/minute"))
    statuses = [client.post("/webhooks/slack/webhook", content=SLACK_BODY).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = client.post("/webhooks/slack/webhook", content=SLACK_BODY)
    assert refused.json()["error"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1
    assert client.post("/webhooks/twilio/webhook", content=b"a=b").status_code == 200  # per channel
    assert len(upstream.posts()) == 3


@pytest.mark.parametrize(
    ("behaviour", "status", "code"),
    [
        (lambda request: httpx.Response(500, json={"error": "internal_error"}), 502, "bad_upstream"),
        (httpx.ReadTimeout("no answer"), 504, "upstream_timeout"),
        (httpx.ConnectError("refused"), 503, "upstream_unavailable"),
    ],
    ids=["rasa-500", "timeout", "down"],
)
def test_upstream_failures_map_as_for_turns(gateway, upstream, behaviour, status, code):
    upstream.behaviour[UPSTREAM] = behaviour
    reply = gateway().post("/webhooks/slack/webhook", content=SLACK_BODY, headers=SLACK_HEADERS)
    assert (reply.status_code, reply.json()["error"]) == (status, code)


def test_every_status_is_declared_in_the_description(gateway, upstream):
    client = gateway(make_config(channel_limit="1/minute", max_body_bytes=1024))
    contract = Contract(client.get("/openapi.json").json())
    assert contract.schema_errors() == []
    upstream.behaviour[UPSTREAM] = channel_reply
    replies = [
        client.post("/webhooks/slack/webhook", content=SLACK_BODY),
        client.post("/webhooks/slack/webhook", content=SLACK_BODY),
        client.post("/webhooks/twilio/webhook", content=b"x" * 2000),
        client.post("/webhooks/nope/webhook", content=b"{}"),
    ]
    assert [r.status_code for r in replies] == [200, 429, 413, 404]
    for reply in replies:
        contract.check(reply)
