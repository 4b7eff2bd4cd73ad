"""Build Rasa tracker-store rows by hand, exactly as Rasa 3.6's ``SQLTrackerStore.save`` writes them.

Each event is the dict of Rasa's ``Event.as_dict()``; the row's ``intent_name`` is the parse data's intent
name and ``action_name`` the dict's ``name`` (so slot and active-loop events carry their slot/loop name
there, as in Rasa). ``create_events_table`` creates the table with the DDL Rasa's model emits on SQLite.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.data.tracker import events

EVENT_COLUMNS = tuple(c.name for c in events.columns)

RASA_EVENTS_DDL = (
    "CREATE TABLE events (id INTEGER NOT NULL, sender_id VARCHAR(255) NOT NULL, "
    "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
    "action_name VARCHAR(255), data TEXT, PRIMARY KEY (id))",
    "CREATE INDEX ix_events_sender_id ON events (sender_id)",
)

_ids = itertools.count(1)


@dataclass
class Conversation:
    """Appends one sender's events; ``at`` is the clock (epoch seconds) and moves forward by ``step``."""

    sender_id: str
    at: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    step: float = 0.01
    runs: list[dict[str, Any]] = field(default_factory=list)  # action_runs rows (:meth:`ran`)
    calls: list[dict[str, Any]] = field(default_factory=list)  # llm_calls rows (:meth:`called`)

    def _add(self, event: dict[str, Any], delay: float | None = None) -> dict[str, Any]:
        self.at += self.step if delay is None else delay
        event = {"event": event.pop("event"), "timestamp": self.at, "metadata": {}, **event}
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        self.rows.append({
            "id": next(_ids), "sender_id": self.sender_id, "type_name": event["event"], "timestamp": self.at,
            "intent_name": intent, "action_name": event.get("name"), "data": json.dumps(event),
        })  # fmt: skip
        return event

    def action(self, name: str, delay: float | None = None) -> Conversation:
        self._add({"event": "action", "name": name, "policy": "RulePolicy", "confidence": 1.0,
                   "action_text": None, "hide_rule_turn": False}, delay)  # fmt: skip
        return self

    def session_start(self, delay: float | None = None) -> Conversation:
        self.action("action_session_start", delay)
        self._add({"event": "session_started"})
        return self.action("action_listen")

    def user(
        self,
        text: str,
        intent: str,
        confidence: float = 0.95,
        *,
        message_id: str | None = "new",
        delay: float | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str = "rest",
    ) -> Conversation:
        """A user message; ``message_id=None`` or a repeated id is what Rasa's own replays look like.
        ``metadata``: the message metadata our REST channel adds (correlation id, tenant, user...); a
        correlation id of its own unless given, as the channel gives every message one."""
        mid = uuid.uuid4().hex if message_id == "new" else message_id
        metadata = {"correlation_id": uuid.uuid4().hex, **(metadata or {})}
        parse = {
            "intent": {"name": intent, "confidence": confidence},
            "entities": [],
            "text": text,
            "message_id": mid,
            "metadata": {},
            "intent_ranking": [{"name": intent, "confidence": confidence}],
        }
        self._add({"event": "user", "text": text, "parse_data": parse, "input_channel": channel,
                   "message_id": mid, "metadata": metadata}, delay)  # fmt: skip
        self._add({"event": "user_featurization", "use_text_for_featurization": False}, delay=0.0)
        return self

    def last_message_id(self) -> str | None:
        users = [json.loads(r["data"]) for r in self.rows if r["type_name"] == "user"]
        return users[-1]["message_id"] if users else None

    def last_correlation_id(self) -> str:
        users = [json.loads(r["data"]) for r in self.rows if r["type_name"] == "user"]
        return str(users[-1]["metadata"].get("correlation_id") or "") if users else ""

    def ran(self, action: str, handler: str, **fields: Any) -> Conversation:
        """The ``action_runs`` row our action writes for the current turn (its correlation id, stamped now),
        kept in :attr:`runs`; ``fields``: the other columns (rule, tier_used, ticket_id, outcome...)."""
        self.runs.append(action_run(self.sender_id, self.last_correlation_id(), action, handler, self.at,
                                    **fields))  # fmt: skip
        return self

    def called(self, call_id: int, **fields: Any) -> Conversation:
        """An ``llm_calls`` row of the current turn (stamped now), kept in :attr:`calls`; ``fields``: tier,
        model, prompt_tokens, completion_tokens, cost, outcome..."""
        tenant, _, user = self.sender_id.rpartition(":")
        self.calls.append({
            "id": call_id, "tenant_id": tenant or "acme", "user_id": user, "conversation_id": self.sender_id,
            "correlation_id": self.last_correlation_id(), "tier": 1, "model": "small", "prompt_tokens": 100,
            "completion_tokens": 20, "cost": 0.001, "latency_ms": 250, "attempts": 1, "outcome": "ok",
            "created_at": utc(self.at), **fields,
        })  # fmt: skip
        return self

    def bot(
        self, text: str, delay: float | None = None, metadata: dict[str, Any] | None = None
    ) -> Conversation:
        self._add({"event": "bot", "text": text, "data": {"elements": None, "quick_replies": None,
                   "buttons": None, "attachment": None, "image": None, "custom": None},
                   "metadata": metadata or {}}, delay)  # fmt: skip
        return self

    def slot(self, name: str, value: Any) -> Conversation:
        self._add({"event": "slot", "name": name, "value": value})
        return self

    def active_loop(self, name: str | None) -> Conversation:
        self._add({"event": "active_loop", "name": name})
        return self

    def rewind(self) -> Conversation:
        self._add({"event": "rewind"})
        return self

    def listen(self) -> Conversation:
        return self.action("action_listen")

    # --- whole turns, as Rasa logs them ---------------------------------------------------------------
    def turn(
        self,
        text: str,
        intent: str,
        action: str,
        reply: str | None,
        latency: float = 0.2,
        confidence: float = 0.95,
        delay: float = 5.0,
        run: dict[str, Any] | None = None,
    ) -> Conversation:
        """A user message answered by ``action`` (its bot message ``latency`` s after the user event);
        ``run``: the action's ``action_runs`` fields (``handler``, ``rule``, ...) when it records one."""
        self.user(text, intent, confidence, delay=delay)
        self.action(action, delay=latency / 2)
        if run is not None:
            self.ran(action, **run)
        if reply is not None:
            self.bot(reply, delay=latency / 2)
        return self.listen()


def rows(*conversations: Conversation) -> list[dict[str, Any]]:
    """The ``events`` rows of the conversations, in insertion (id) order."""
    return sorted((r for c in conversations for r in c.rows), key=lambda r: r["id"])


def create_events_table(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        for statement in RASA_EVENTS_DDL:
            conn.execute(statement)


def write_tracker(path: Path, *conversations: Conversation) -> None:
    """Create (if needed) a SQLite tracker store at ``path`` and append the conversations' events."""
    if not path.exists():
        create_events_table(path)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO events (id, sender_id, type_name, timestamp, intent_name, action_name, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [tuple(row[c] for c in EVENT_COLUMNS) for row in rows(*conversations)],
        )


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def action_run(
    sender_id: str, correlation: str, action: str, handler: str, at: float, **fields: Any
) -> dict[str, Any]:
    """An ``action_runs`` row as :class:`app.actions.records.ActionRun` writes it (defaults for the rest)."""
    tenant, _, user = sender_id.rpartition(":")
    return {
        "tenant_id": tenant or "acme", "user_id": user, "conversation_id": sender_id,
        "correlation_id": correlation, "action": action, "handler": handler, "rule": "", "reason": "",
        "tier_tried": None, "tier_used": None, "attempts": [], "cache": "", "sources": [], "tools": [],
        "ticket_id": None, "level": "full", "outcome": "ok", "stages": {}, "created_at": utc(at), **fields,
    }  # fmt: skip
