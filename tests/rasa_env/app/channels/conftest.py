"""Our vendor channels served by Sanic as Rasa registers them, with a scripted agent and the vendor stand-in.

The agent stands in for Rasa's: it keeps real Rasa trackers in Rasa's in-memory tracker store (so the
channels' option and handoff look-ups read what Rasa would store) and answers from a script. The channels
talk to the stand-in (:mod:`tests.app.channels.vendors`) for Slack's Web API, Microsoft's keys, token and
Bot Connector, and Twilio's REST API.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage, register
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from sanic import Sanic

from app.channels.slack import SlackChannel
from app.channels.sms import SmsChannel
from app.channels.teams import TeamsChannel
from app.channels.voice import VoiceChannel
from tests.app.channels.vendors import VendorStandIn

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
ACCOUNT = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
APP_ID = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
MS_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SMS_NUMBER, VOICE_NUMBER, CALLER, TRANSFER = "+15550100001", "+15550100002", "+15557654321", "+15550100999"
LINKS = {"acme": "https://help.northwind.example/search?q={title}"}

# Sanic 21.12 refuses to start a second app in one process (test_rest.py serves one too) unless in test mode.
Sanic.test_mode = True

OPTIONS = [
    {"title": "Track an order", "payload": "/track_order"},
    {"title": "Talk to a person", "payload": "/human_handoff"},
]
SCRIPT: dict[str, list[dict[str, Any]]] = {
    "hello": [{"text": "Hi! I'm the Northwind Goods assistant."}],
    "menu": [{"text": "Sorry, I'm not sure I understood. Did you mean:", "buttons": OPTIONS}],
    "/track_order": [{"text": "Sure! What's your order number? It looks like ORD-12345."}],
    "delivery": [
        {"text": "Delivery to Germany takes **2-4 business days**.\n\nSource: Shipping › Delivery times"}
    ],
    "/human_handoff": [
        {
            "text": "I've opened ticket #7 for you. A member of our support team will pick up this conversation shortly."
        },
        {"text": "Until then I'll stay quiet: everything you write here goes to them."},
    ],
}


@dataclass
class ScriptedAgent:
    """Rasa's agent as the channels see it: ``handle_message`` and ``tracker_store``."""

    tracker_store: InMemoryTrackerStore = field(
        default_factory=lambda: InMemoryTrackerStore(
            Domain.from_dict(
                {"slots": {"handoff_active": {"type": "bool", "mappings": [{"type": "custom"}]}}}
            )
        )
    )
    received: list[UserMessage] = field(default_factory=list)

    async def handle_message(self, message: UserMessage) -> None:
        if message.text == "boom":
            raise RuntimeError("the bot failed")
        self.received.append(message)
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(
            UserUttered(message.text, metadata=message.metadata, input_channel=message.input_channel)
        )
        for reply in SCRIPT.get(message.text, [{"text": f"You said: {message.text}"}]):
            await message.output_channel.send_response(message.sender_id, dict(reply))
            tracker.update(BotUttered(reply.get("text"), data={"buttons": reply.get("buttons")}))
        if message.text == "/human_handoff":
            tracker.update(SlotSet("handoff_active", True))
        await self.tracker_store.save(tracker)

    def texts(self) -> list[str]:
        return [m.text for m in self.received]


@dataclass
class Served:
    url: str
    agent: ScriptedAgent
    vendors: VendorStandIn
    channels: dict[str, Any]

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        """POST to the server; the status, the body as text and the headers (names in lower case)."""
        request = urllib.request.Request(f"{self.url}{path}", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.read().decode(), {k.lower(): v for k, v in reply.headers.items()}
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), {k.lower(): v for k, v in error.headers.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def credentials(vendors: VendorStandIn, public_url: str) -> dict[str, dict[str, Any]]:
    twilio = {
        "account_sid": ACCOUNT,
        "auth_token": TWILIO_TOKEN,
        "public_url": public_url,
        "source_links": LINKS,
    }
    return {
        "slack": {
            "slack_token": "xoxb-test",
            "slack_signing_secret": SLACK_SECRET,
            "workspaces": {"T0NORTHWND": "acme"},
            "api_url": f"{vendors.url}/slack/api/",
            "source_links": LINKS,
            "max_body_bytes": 4096,
        },
        "teams": {
            "app_id": APP_ID,
            "app_password": "teams-secret",
            "tenants": {MS_TENANT: "acme"},
            "openid_url": f"{vendors.url}/microsoft/openid",
            "token_url": f"{vendors.url}/microsoft/token",
            "service_urls": [f"{vendors.url}/teams/"],
            "source_links": LINKS,
        },
        "sms": {**twilio, "numbers": {SMS_NUMBER: "acme"}, "api_url": f"{vendors.url}/twilio"},
        "voice": {
            **twilio,
            "numbers": {VOICE_NUMBER: "acme"},
            "transfer_number": TRANSFER,
            "max_reprompts": 1,
        },
    }


@contextmanager
def serving(app: Sanic, port: int) -> Iterator[None]:
    """``app`` served on ``port`` of loopback by a Sanic server on an event loop in a thread."""

    async def start():
        server = await app.create_server(
            host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
        )
        await server.startup()
        return server

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield
    finally:
        server.close()
        asyncio.run_coroutine_threadsafe(server.wait_closed(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="session")
def served_channels() -> Iterator[Served]:
    """All four channels on one Sanic app, on a free port, as Rasa registers them."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with VendorStandIn() as vendors:
        config = credentials(vendors, url)
        channels = {
            "slack": SlackChannel.from_credentials(config["slack"]),
            "teams": TeamsChannel.from_credentials(config["teams"]),
            "sms": SmsChannel.from_credentials(config["sms"]),
            "voice": VoiceChannel.from_credentials(config["voice"]),
        }
        assert vendors.seen == []  # no channel called a vendor to start (Rasa's Bot Framework channel does)
        agent = ScriptedAgent()
        app = Sanic("switchboard_vendor_channels_test")
        app.ctx.agent = agent
        register(list(channels.values()), app, route="/webhooks/")
        with serving(app, port):
            yield Served(url, agent, vendors, channels)


@pytest.fixture
def served(served_channels: Served) -> Served:
    """The served channels with nothing received or sent yet."""
    served_channels.agent.received.clear()
    served_channels.vendors.seen.clear()
    return served_channels
