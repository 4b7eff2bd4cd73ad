"""A custom action that cannot run is answered at the static level instead of in silence, and a tracker store
that fails refuses the turn instead of losing it (app/channels/degraded.py).

Rasa's own ``RemoteAction`` against real local HTTP servers (runs in the Rasa environment): one that refuses
connections, one that answers 500, one that hangs, one that rejects the action, one that works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    FollowupAction,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from app.channels import degraded
from app.channels.degraded import StoreUnavailable
from app.channels.replies import DEFAULT_REPLY, REPLIES
from app.channels.settings import DEFAULT_ACTION_TIMEOUT_S, action_timeout_s

DOMAIN = Domain.load(str(Path(__file__).resolve().parents[4] / "nlu" / "domain.yml"))


class ActionServer(BaseHTTPRequestHandler):
    """Answers ``POST /webhook`` as the test says: ``mode`` is ok, error, hang or reject."""

    mode = "ok"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        call, mode = json.loads(self.rfile.read(int(self.headers["Content-Length"]))), self.mode
        if mode == "hang":
            time.sleep(3)
        if mode == "error":
            return self._send(500, {"error": "boom"})
        if mode == "reject":
            return self._send(400, {"action_name": call["next_action"], "error": "not now"})
        return self._send(200, {"events": [{"event": "slot", "name": "order_id", "value": "ORD-10042"}],
                                "responses": [{"text": "from the action server"}]})  # fmt: skip

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that gave up waiting
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ActionServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/webhook"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def installed(monkeypatch):
    for name in ("on_tracker_store_error", "on_tracker_store_retrieve_error"):  # restored afterwards
        monkeypatch.setattr(FailSafeTrackerStore, name, getattr(FailSafeTrackerStore, name))
    monkeypatch.setattr(RemoteAction, "run", RemoteAction.run)
    degraded.install()
    degraded.install()  # idempotent: wrapped once
    assert not getattr(RemoteAction.run.__wrapped__, "_switchboard_degrades", False)


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/webhook"  # nothing listens there any more


def run(action: str, url: str, *before: object) -> list:
    tracker = DialogueStateTracker.from_events(
        "acme:alice",
        [
            *before,
            ActionExecuted("action_listen"),
            UserUttered("where is my order?", metadata={"correlation_id": "c-1"}),
        ],
    )
    remote = RemoteAction(action, EndpointConfig(url))
    nlg = TemplatedNaturalLanguageGenerator(DOMAIN.responses)
    return asyncio.run(remote.run(CollectingOutputChannel(), nlg, tracker, DOMAIN))


def texts(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, BotUttered)]


def test_a_refused_connection_is_answered_at_once_with_the_actions_static_reply():
    started = time.perf_counter()
    events = run("action_track_order", refused_url())
    assert time.perf_counter() - started < 2.0
    assert texts(events) == [REPLIES["action_track_order"]]
    bot, listen = events
    assert bot.metadata == {"degraded": "action_server_unavailable", "level": "static"}
    assert listen == FollowupAction("action_listen")  # the turn ends here, whatever the rules expected


def test_a_server_error_is_answered_too(server):
    ActionServer.mode = "error"
    assert texts(run("action_answer_knowledge", server)) == [REPLIES["action_answer_knowledge"]]


def test_a_hung_server_is_given_up_on_after_the_timeout(server, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_ACTION_TIMEOUT_S", "0.5")
    ActionServer.mode = "hang"
    started = time.perf_counter()
    events = run("action_handoff", server)
    assert 0.5 <= time.perf_counter() - started < 2.5
    assert texts(events) == [REPLIES["action_handoff"]]


def test_an_unknown_action_gets_the_general_reply():
    assert texts(run("action_something_new", refused_url())) == [DEFAULT_REPLY]


def test_session_start_falls_back_to_rasas_own_with_the_tenant_so_rules_still_answer():
    events = run("action_session_start", refused_url())
    assert isinstance(events[0], SessionStarted)
    assert SlotSet("tenant", "acme") in events  # from the conversation id: the greeting in acme's words
    assert events[-1] == ActionExecuted("action_listen")
    assert not texts(events)  # a session start says nothing


def test_the_session_starts_with_the_tenant_the_channel_named():
    events = run(
        "action_session_start",
        refused_url(),
        SlotSet("session_started_metadata", {"tenant_id": "globex", "user_id": "alice"}),
    )
    assert SlotSet("tenant", "globex") in events


def test_a_working_server_is_untouched(server):
    ActionServer.mode = "ok"
    events = run("action_track_order", server)
    assert texts(events) == ["from the action server"]
    assert SlotSet("order_id", "ORD-10042") in events


def test_a_rejection_is_rasas_control_flow_and_passes_through(server):
    ActionServer.mode = "reject"
    with pytest.raises(ActionExecutionRejection):
        run("action_track_order", server)


def test_the_timeout_setting():
    assert action_timeout_s({}) == DEFAULT_ACTION_TIMEOUT_S
    assert action_timeout_s({"SWITCHBOARD_ACTION_TIMEOUT_S": "2.5"}) == 2.5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValueError, match="SWITCHBOARD_ACTION_TIMEOUT_S"):
            action_timeout_s({"SWITCHBOARD_ACTION_TIMEOUT_S": bad})


class BrokenStore(InMemoryTrackerStore):
    """A tracker store whose database is down."""

    async def retrieve(self, sender_id):
        raise OSError("connection refused")

    async def save(self, tracker):
        raise OSError("connection refused")


def test_a_tracker_store_failure_refuses_the_turn_instead_of_answering_from_memory():
    store = FailSafeTrackerStore(BrokenStore(DOMAIN))
    tracker = DialogueStateTracker.from_events("acme:alice", [ActionExecuted("action_listen")])
    with pytest.raises(StoreUnavailable, match="connection refused"):
        asyncio.run(store.retrieve("acme:alice"))  # Rasa's own: None, and the turn runs on no history
    with pytest.raises(StoreUnavailable):
        asyncio.run(store.save(tracker))  # Rasa's own: saved in memory, answered, never stored
    assert store._fallback_tracker_store is None  # nothing went to memory
