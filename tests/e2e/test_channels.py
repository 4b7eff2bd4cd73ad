"""End to end: Slack, Microsoft Teams, SMS and voice requests, shaped as the vendors document them (recorded
in ``tests/data/channels``) and signed as they sign them, through the real gateway to a real Rasa server with
our channels and the ``bot`` fixture's action server, CRM and model.

The launcher (``Stack``) starts Rasa and the gateway with channel credentials in its settings and the tenant
maps in a params file: it writes the run's credentials file itself. Every outbound call (Slack's
``chat.postMessage``, Microsoft's keys, token and Bot Connector, Twilio's REST API) goes to a local stand-in
(``tests/app/channels/vendors.py``). Rasa's channels require the gateway's channel secret, so the gateway is
the one way in, as in production.

Each channel: a greeting, a knowledge answer with its source, an order lookup, the two-stage fallback's
buttons answered the channel's way (a click, a number, a key or a word), a handoff; a bad signature gets
401/403 and reaches no conversation; a malformed or oversized request gets a clear 4xx and stores nothing.
Then the turn records carry each channel and the analytics count containment and escalation by channel.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from pydantic import SecretStr

from app.analytics.loaders import load_analytics
from app.analytics.recorder import recorder_for
from app.data.__main__ import main as data_cli
from app.data.db import get_engine
from app.integrations.ticketing import TicketingClient
from app.stack import Stack
from tests.app.channels.vendors import VendorStandIn, recorded, slack_headers, twilio_request, with_fields
from tests.conftest import free_port, seed_order, start_guarded

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEAM, MS_TENANT = "T0NORTHWND", "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP_ID = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
ACCOUNT = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
SMS_NUMBER, VOICE_NUMBER, TRANSFER = "+15550100001", "+15550100002", "+15550100999"
SLACK_SECRET, TWILIO_TOKEN = secrets.token_hex(16), secrets.token_hex(16)
KNOWLEDGE = "How long does delivery to Germany take?"
HANDOFF = "I want to talk to a person"
VAGUE = ["details", "info", "box", "paper", "when", "qzxv bnmt plork"]  # as in test_conversation.py


@dataclass
class Channels:
    stack: Stack
    vendors: VendorStandIn
    bot: object

    @property
    def url(self) -> str:
        return self.stack.settings.gateway_url

    def post(
        self, path: str, body: bytes, headers: dict[str, str], base: str | None = None
    ) -> httpx.Response:
        return httpx.post(f"{base or self.url}{path}", content=body, headers=headers, timeout=60)

    def events(self, conversation: str) -> list[dict]:
        """The conversation's events in this Rasa's tracker store."""
        with sqlite3.connect(self.stack.settings.tracker_db) as conn:
            rows = conn.execute("SELECT data FROM events WHERE sender_id = ? ORDER BY id", (conversation,))
            return [json.loads(row[0]) for row in rows.fetchall()]

    def user_texts(self, conversation: str) -> list[str]:
        return [e["text"] for e in self.events(conversation) if e["event"] == "user"]

    def wait_answered(self, conversation: str, correlation_id: str, timeout: float = 60.0) -> None:
        """Until the turn with ``correlation_id`` is stored, answered (Slack's are handled after the 200: the
        tracker is saved once the bot's messages are sent)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events(conversation)
            mine = [
                e
                for e in events
                if e["event"] == "user" and e["metadata"].get("correlation_id") == correlation_id
            ]
            if mine and events[-1].get("name") == "action_listen":
                return
            time.sleep(0.1)
        raise AssertionError(f"{conversation}: turn {correlation_id} not stored within {timeout} s")


@pytest.fixture(scope="module")
def channels(bot, llm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Channels]:
    """Rasa (our channels on) and the gateway, started by the launcher next to the ``bot`` fixture's action
    server and CRM, with every vendor played by the local stand-in."""
    llm.reset()
    llm.add_rule(quote=1)  # an LLM tier, when the router picks one, answers grounded and cited
    state = tmp_path_factory.mktemp("channels")
    with VendorStandIn() as vendors:
        params = yaml.safe_load(bot.settings.params_file.read_text())
        params["channels"] = {
            **params.get("channels", {}),
            "slack": {"workspaces": {TEAM: "acme"}},
            "teams": {"tenants": {MS_TENANT: "acme"}, "service_urls": [f"{vendors.url}/teams/"]},
            "sms": {"numbers": {SMS_NUMBER: "acme"}},
            "voice": {"numbers": {VOICE_NUMBER: "acme"}},
        }
        (state / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        gateway_port = free_port()
        settings = bot.settings.model_copy(
            update={
                "state_dir": state,
                "params_file": state / "params.yaml",
                "rasa_port": free_port(),
                "gateway_port": gateway_port,
                "database_url": bot.settings.db_url,  # the bot's stores: its CRM, tickets and action runs
                "tracker_store_db": str(state / "tracker.db"),
                "jwt_secret": SecretStr(secrets.token_urlsafe(32)),
                "channel_secret": SecretStr(secrets.token_urlsafe(24)),
                "public_url": f"http://127.0.0.1:{gateway_port}",
                "slack_bot_token": SecretStr("xoxb-e2e"),
                "slack_signing_secret": SecretStr(SLACK_SECRET),
                "slack_api_url": f"{vendors.url}/slack/api/",
                "teams_app_id": APP_ID,
                "teams_app_password": SecretStr("teams-e2e-secret"),
                "teams_openid_url": f"{vendors.url}/microsoft/openid",
                "teams_token_url": f"{vendors.url}/microsoft/token",
                "twilio_account_sid": ACCOUNT,
                "twilio_auth_token": SecretStr(TWILIO_TOKEN),
                "twilio_api_url": f"{vendors.url}/twilio",
                "voice_transfer_number": TRANSFER,
            }
        )
        stack = Stack(settings, services=("rasa", "gateway"))
        start_guarded(stack, timeout=240)
        try:
            assert [c.name for c in stack.channels if c.on] == [
                "rest",
                "slack",
                "botframework",
                "twilio",
                "twilio_voice",
            ]
            yield Channels(stack, vendors, bot)
        finally:
            stack.stop()


@pytest.fixture(scope="module")
def vague(bot) -> str:
    """A message the NLU is unsure about: the bot offers the two-stage fallback's buttons."""
    for text in VAGUE:
        reply = httpx.post(
            bot.settings.webhook_url,
            json={"sender": f"probe-{uuid.uuid4().hex[:8]}", "message": text},
            headers=bot.settings.channel_headers,
            timeout=60,
        ).json()
        if any("Did you mean" in (m.get("text") or "") for m in reply):
            return text
    pytest.fail(f"none of {VAGUE} made the NLU unsure")


# --- Slack -----------------------------------------------------------------------------------------------


class SlackUser:
    """One Slack user in a direct message with the bot."""

    def __init__(self, channels: Channels) -> None:
        self.channels, self.user = channels, f"U{uuid.uuid4().hex[:10].upper()}"
        self.dm = f"D{uuid.uuid4().hex[:10].upper()}"
        self.conversation = f"acme:slack-{TEAM}-{self.user}"

    def send(self, body: bytes, content_type: str = "application/json", secret: str = SLACK_SECRET):
        headers = slack_headers(secret, body, content_type=content_type)
        return self.channels.post("/webhooks/slack/webhook", body, headers)

    def exchange(self, body: bytes, content_type: str = "application/json") -> list[dict]:
        """Send ``body``; the bot's messages of that turn (posted to Slack after the 200)."""
        before = len(self.channels.vendors.slack_messages(self.dm))
        reply = self.send(body, content_type)
        assert reply.status_code == 200, reply.text
        self.channels.wait_answered(self.conversation, reply.headers["X-Request-Id"])
        return self.channels.vendors.slack_messages(self.dm)[before:]

    def say(self, text: str) -> list[dict]:
        body = recorded("slack_message_im.json")
        body["event"].update(user=self.user, channel=self.dm, text=text, ts=f"{time.time():.6f}")
        body["event_id"] = f"Ev{uuid.uuid4().hex[:10].upper()}"
        return self.exchange(json.dumps(body).encode())

    def click(self, message: dict, number: int = 0) -> list[dict]:
        button = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][number]
        payload = recorded("slack_block_actions.json")
        payload["user"]["id"], payload["channel"]["id"] = self.user, self.dm
        payload["actions"][0].update(
            value=button["value"], action_id=button["action_id"], text=button["text"]
        )
        return self.exchange(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )


def slack_text(messages: list[dict]) -> str:
    return "\n".join(m["text"] for m in messages)


def test_slack(channels, vague):
    user = SlackUser(channels)
    assert "Northwind Goods assistant" in slack_text(user.say("hello"))
    [answer] = user.say(KNOWLEDGE)
    context = answer["blocks"][-1]
    assert context["type"] == "context" and context["elements"][0]["text"].startswith("Source: <https://")
    assert all(m["thread_ts"] for m in channels.vendors.slack_messages(user.dm))  # replies in the thread
    order = seed_order(channels.bot, f"slack-{TEAM}-{user.user}")
    assert f"Your order {order} has shipped with DHL" in slack_text(user.say(f"Where is my order {order}?"))
    [offer] = user.say(vague)
    assert "Did you mean" in offer["text"] and any(b["type"] == "actions" for b in offer["blocks"])
    payload = next(b for b in offer["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    assert "Did you mean" not in slack_text(user.click(offer))
    assert channels.user_texts(user.conversation)[-1] == payload
    assert "ticket #" in slack_text(user.say(HANDOFF))
    user_event = [e for e in channels.events(user.conversation) if e["event"] == "user"][0]
    assert user_event["input_channel"] == "slack"
    assert user_event["metadata"]["tenant_id"] == "acme" and user_event["metadata"]["correlation_id"]


def test_slack_refuses_bad_signatures_and_bad_bodies_storing_nothing(channels):
    user = SlackUser(channels)
    body = recorded("slack_message_im.json")
    body["event"].update(user=user.user, channel=user.dm, text="hello")
    raw = json.dumps(body).encode()
    bad = user.send(raw, secret="not-the-signing-secret")
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_signature")
    stale = channels.post(
        "/webhooks/slack/webhook", raw, slack_headers(SLACK_SECRET, raw, int(time.time()) - 3600)
    )
    assert stale.status_code == 401
    assert user.send(b"{not json").status_code == 400
    assert user.send(raw + b" " * 70_000).json()["error"] == "body_too_large"  # the gateway's limit
    long = json.loads(raw)
    long["event"]["text"] = "x" * 2001
    assert user.send(json.dumps(long).encode()).status_code == 413
    time.sleep(1)
    assert channels.events(user.conversation) == [] and channels.vendors.slack_messages(user.dm) == []
    # Rasa's channel answers the gateway only: a correctly signed request straight to Rasa is refused
    direct = channels.post(
        "/webhooks/slack/webhook", raw, slack_headers(SLACK_SECRET, raw), base=channels.stack.rasa_urls[0]
    )
    assert (direct.status_code, direct.json()["error"]) == (401, "invalid_channel_secret")


# --- Microsoft Teams -------------------------------------------------------------------------------------


class TeamsUser:
    """One Teams user in a personal chat with the bot."""

    def __init__(self, channels: Channels) -> None:
        self.channels, self.object_id = channels, str(uuid.uuid4())
        self.chat = f"a:{uuid.uuid4().hex}"
        self.conversation = f"acme:teams-{self.object_id}"

    def activity(self, text: str, recording: str = "teams_message.json") -> dict:
        body = recorded(recording)
        body.update(id=uuid.uuid4().hex, text=text, serviceUrl=f"{self.channels.vendors.url}/teams/")
        body["from"]["aadObjectId"], body["conversation"]["id"] = self.object_id, self.chat
        return body

    def send(self, body: dict | bytes, token: str | None = None) -> httpx.Response:
        service_url = f"{self.channels.vendors.url}/teams/"
        token = token or self.channels.vendors.teams_token(APP_ID, service_url)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return self.channels.post("/webhooks/botframework/webhook", raw, headers)

    def say(self, text: str, recording: str = "teams_message.json") -> list[dict]:
        before = len(self.channels.vendors.teams_replies(self.chat))
        reply = self.send(self.activity(text, recording))
        assert reply.status_code == 200, reply.text
        return self.channels.vendors.teams_replies(self.chat)[before:]


def teams_text(activities: list[dict]) -> str:
    return "\n".join(a["text"] for a in activities)


def test_teams(channels, vague):
    user = TeamsUser(channels)
    assert "Northwind Goods assistant" in teams_text(user.say("hello"))
    assert "Source: [" in teams_text(user.say(KNOWLEDGE))
    order = seed_order(channels.bot, f"teams-{user.object_id}")
    assert f"Your order {order} has shipped" in teams_text(user.say(f"Where is my order {order}?"))
    [offer] = user.say(vague)
    buttons = offer["attachments"][0]["content"]["buttons"]
    assert {b["type"] for b in buttons} == {"messageBack"}
    assert "Did you mean" not in teams_text(user.say(buttons[0]["text"], "teams_message_back.json"))
    assert channels.user_texts(user.conversation)[-1] == buttons[0]["text"]
    assert "ticket #" in teams_text(user.say(HANDOFF))
    token_requests = channels.vendors.requests("/microsoft/token")
    assert token_requests and token_requests[0].form()["client_id"] == APP_ID


def test_teams_refuses_bad_tokens_and_bad_activities_storing_nothing(channels):
    user = TeamsUser(channels)
    body = user.activity("hello")
    service_url = body["serviceUrl"]
    for token in (
        channels.vendors.teams_token("another-bot", service_url),
        channels.vendors.teams_token(APP_ID, service_url, iss="https://evil.example"),
        channels.vendors.teams_token(APP_ID, service_url, exp=int(time.time()) - 3600),
    ):
        assert user.send(body, token=token).status_code == 401
    assert (
        user.send(body, token=channels.vendors.teams_token(APP_ID, "https://elsewhere.example/")).status_code
        == 403
    )
    assert user.send(b"{nope").status_code == 400
    assert user.send({k: v for k, v in body.items() if k != "from"}).status_code == 400
    assert user.send({**body, "text": "x" * 2001}).status_code == 413
    assert channels.events(user.conversation) == [] and channels.vendors.teams_replies(user.chat) == []


# --- SMS -------------------------------------------------------------------------------------------------


class Phone:
    """A caller's phone number, texting or calling our numbers."""

    def __init__(self, channels: Channels) -> None:
        self.channels, self.number = channels, f"+1555{uuid.uuid4().int % 10**7:07d}"

    def sign(self, path: str, fields: list[tuple[str, str]], token: str = TWILIO_TOKEN):
        return twilio_request(token, f"{self.channels.url}{path}", fields)  # the public URL Twilio called

    def text(self, body: str, token: str = TWILIO_TOKEN) -> httpx.Response:
        fields = with_fields(recorded("twilio_sms.form"), Body=body, From=self.number, AccountSid=ACCOUNT)
        raw, headers = self.sign("/webhooks/twilio/webhook", fields, token)
        return self.channels.post("/webhooks/twilio/webhook", raw, headers)

    def sms(self, body: str) -> list[str]:
        before = len(self.channels.vendors.sms_to(self.number))
        reply = self.text(body)
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/xml"), reply.text
        return self.channels.vendors.sms_to(self.number)[before:]

    def call(
        self, recording: str, query: str = "", token: str = TWILIO_TOKEN, **fields: str
    ) -> httpx.Response:
        form = with_fields(
            recorded(recording),
            **{"From": self.number, "Caller": self.number, "AccountSid": ACCOUNT, **fields},
        )
        path = f"/webhooks/twilio_voice/webhook{query}"
        raw, headers = self.sign(path, form, token)
        return self.channels.post(path, raw, headers)

    def hear(self, recording: str = "twilio_voice_speech.form", **fields: str) -> ET.Element:
        reply = self.call(recording, **fields)
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/xml"), reply.text
        return ET.fromstring(reply.text)


def spoken(twiml: ET.Element) -> str:
    return " ".join(say.text or "" for say in twiml.iter("Say"))


def test_sms(channels, vague):
    phone = Phone(channels)
    conversation = f"acme:sms-{phone.number[1:]}"
    assert "Northwind Goods assistant" in "\n".join(phone.sms("hello"))
    answer = phone.sms(KNOWLEDGE)
    assert any("Source: " in part for part in answer)
    assert all(len(part) <= 160 and "**" not in part for part in answer)
    order = seed_order(channels.bot, f"sms-{phone.number[1:]}")
    assert f"Your order {order} has shipped" in " ".join(phone.sms(f"Where is my order {order}?"))
    offer = "\n".join(phone.sms(vague))
    assert "Did you mean" in offer and "Reply 1 for " in offer
    assert "Did you mean" not in "\n".join(phone.sms("1"))
    assert channels.user_texts(conversation)[-1].startswith("/")  # the first option's payload
    assert "ticket #" in "\n".join(phone.sms(HANDOFF))


def test_sms_refuses_bad_signatures_and_bad_messages_storing_nothing(channels):
    phone = Phone(channels)
    forged = phone.text("hello", token="not-the-auth-token")
    assert (forged.status_code, forged.json()["error"]) == (403, "invalid_signature")
    assert phone.text("").status_code == 400
    assert phone.text("x" * 2001).status_code == 413
    assert (
        channels.events(f"acme:sms-{phone.number[1:]}") == [] and channels.vendors.sms_to(phone.number) == []
    )


# --- voice -----------------------------------------------------------------------------------------------


def test_voice(channels, vague):
    phone = Phone(channels)
    greeting = phone.hear("twilio_voice_incoming.form")
    gather = greeting.find("Gather")
    assert (
        gather is not None
        and gather.get("bargeIn") == "true"
        and "Northwind Goods assistant" in spoken(greeting)
    )
    answer = spoken(phone.hear(SpeechResult=KNOWLEDGE))
    assert "This is from our article" in answer and "http" not in answer and "›" not in answer
    order = seed_order(channels.bot, f"voice-{phone.number[1:]}")
    said = spoken(phone.hear(SpeechResult=f"Where is my order {order}?"))
    assert " ".join(order.replace("-", "")) in said  # "O R D 6 1 2 3 4"
    silence = spoken(phone.hear("twilio_voice_silence.form"))  # the re-prompt, then the last words again
    assert silence.startswith("Sorry, I didn't catch that.") and " ".join(order.replace("-", "")) in silence
    offer = phone.hear(SpeechResult=vague)
    assert "Say or press 1 for" in spoken(offer) and offer.find("Gather").get("input") == "dtmf speech"
    form = [(k, v) for k, v in recorded("twilio_voice_speech.form") if k != "SpeechResult"]
    raw, headers = phone.sign(
        "/webhooks/twilio_voice/webhook",
        with_fields(form, From=phone.number, Caller=phone.number, AccountSid=ACCOUNT, Digits="1"),
    )
    pressed = channels.post("/webhooks/twilio_voice/webhook", raw, headers)
    assert pressed.status_code == 200 and "Did you mean" not in pressed.text
    assert channels.user_texts(f"acme:voice-{phone.number[1:]}")[-1].startswith("/")
    transfer = phone.hear(SpeechResult=HANDOFF)
    assert transfer.find("Dial").text == TRANSFER and "ticket number" in spoken(transfer)


def test_voice_refuses_bad_signatures_storing_nothing(channels):
    phone = Phone(channels)
    assert phone.call("twilio_voice_incoming.form", token="wrong").status_code == 403
    assert phone.call("twilio_voice_incoming.form", To="+15550109999").status_code == 403
    assert phone.call("twilio_voice_speech.form", SpeechResult="x" * 2001).status_code == 413
    assert channels.events(f"acme:voice-{phone.number[1:]}") == []


# --- analytics -------------------------------------------------------------------------------------------


def test_turn_records_and_analytics_count_each_channel(channels):
    """After the conversations above: each channel's turns carry its name, and each channel had a handoff."""
    recorder_for(channels.stack.settings).sync()  # our Rasa's tracker store into the bot's turn records
    today = datetime.now(UTC).date()
    result = load_analytics(
        channels.stack.settings.db_url, "acme", today - timedelta(days=1), today + timedelta(days=1)
    )
    mine = result.conversations[
        result.conversations["conversation_id"].str.contains(r"^acme:(?:slack|teams|sms|voice)-", regex=True)
    ]
    by_channel = mine.groupby("channel")["escalated"].agg(["size", "sum"])
    assert set(by_channel.index) >= {"slack", "botframework", "twilio", "twilio_voice"}
    assert (by_channel.loc[["slack", "botframework", "twilio", "twilio_voice"], "sum"] >= 1).all()
    table = result.containment_by_channel.set_index("channel")
    for channel in ("slack", "botframework", "twilio", "twilio_voice"):
        assert table.loc[channel, "escalated"] >= 1 and 0 <= table.loc[channel, "containment_rate"] < 1


def test_a_channel_user_is_erased_as_a_rest_user_is(channels):
    """``forget-user`` with the channel's user id (as the README says) erases that person's conversation and
    tickets, as for a REST user."""
    user = SlackUser(channels)
    assert "ticket #" in slack_text(user.say(HANDOFF))
    person, settings = f"slack-{TEAM}-{user.user}", channels.stack.settings
    stores = get_engine(settings.db_url)
    assert TicketingClient(stores).list_tickets("acme", person)
    argv = ["forget-user", "--tenant", "acme", "--user", person, "--url", settings.db_url]
    assert data_cli([*argv, "--tracker-url", settings.tracker_db, "--params", str(settings.params_file)]) == 0
    assert channels.events(user.conversation) == []
    assert TicketingClient(stores).list_tickets("acme", person) == []
