"""One record per user turn, built from what is already stored: Rasa's tracker events joined with the action
server's runs (``action_runs``) and LLM calls (``llm_calls``) of the same conversation and correlation id.

:func:`build_turns` is a pure function of one sender's rows (so tests and replays feed it lists);
:class:`TurnRecorder` keeps the ``turn_records`` table up to date from the tracker store (``sync``: senders with
new events since the last sync are rebuilt whole, in one transaction each). ``python -m app.analytics.recorder``
runs it as a service next to the bot; the bot-level evaluation and the Analytics page read the table.

How a turn is cut from the events (the analytics definitions, docs/analytics.md):

- a *user turn* starts at a ``user`` event the user sent; ``user`` events Rasa replays itself (same
  ``message_id`` as an earlier one, or none: the two-stage fallback's clarified message, the hand-back's
  replay) continue the turn they belong to; a ``session_started`` event starts a new Rasa session;
- the turn's *final part* starts at its last ``user`` event (replayed or not): what the bot finally did;
- the *handler* (:mod:`app.orchestration.handlers`) comes from the action runs of the final part (what our
  actions chose and recorded), else from the responses and actions Rasa ran there; the slot
  ``handoff_active`` set true makes it ``handoff``; a turn with no bot message that no person holds is an
  ``error``;
- *latency* runs from the user event to the turn's first bot message (Rasa stamps the user event after NLU,
  so it is dialogue + actions);
- a bot message the Rasa server said itself because an action could not run (``metadata.degraded``,
  ``app/channels/degraded.py``) makes the turn ``degraded`` at that message's level (``static``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog

from app.data import retention
from app.data.db import get_engine
from app.data.schema import action_runs, llm_calls, turn_records
from app.data.tracker import events as tracker_events
from app.identity import parse_conversation_id
from app.observability.pii import mask_pii
from app.orchestration.handlers import ERROR, HANDOFF, first, handler_of_action

logger = structlog.get_logger(__name__)

HANDOFF_SLOT = "handoff_active"
PLUMBING = frozenset(
    {"action_listen", "action_session_start", "action_extract_slots", "action_unlikely_intent"}
)


def _data(row: Mapping[str, Any]) -> dict[str, Any]:
    raw = row.get("data")
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _utc(ts: float | None) -> datetime:
    return datetime.fromtimestamp(float(ts or 0.0), tz=UTC)


def _epoch(value: Any) -> float:
    """A stored datetime (aware, or naive meaning UTC as SQLite returns it) as epoch seconds."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value or 0.0)


@dataclass
class _Turn:
    session: int
    index: int
    user: dict[str, Any]  # the event that started it (parsed data in "_data")
    events: list[dict[str, Any]] = field(default_factory=list)
    final_from: int = 0  # index in ``events`` where the final part starts


def segment(events: Sequence[Mapping[str, Any]]) -> list[_Turn]:
    """One sender's tracker events (any order) -> its user turns, each with all its events."""
    turns: list[_Turn] = []
    session, seen_ids = 0, set()
    for row in sorted(events, key=lambda r: int(r["id"])):
        event = {**row, "_data": _data(row)}
        kind = event["type_name"]
        if kind == "session_started":
            session += 1
        if kind == "user":
            message_id = event["_data"].get("message_id")
            replay = not message_id or message_id in seen_ids
            seen_ids.add(message_id)
            if not replay or not turns:
                turns.append(_Turn(max(session, 1), len(turns) + 1, event))
            else:
                turns[-1].final_from = len(turns[-1].events)
        if turns:
            turns[-1].events.append(event)
    return turns


def _run_time(run: Mapping[str, Any]) -> float:
    return _epoch(run.get("created_at"))


def build_turns(
    sender_id: str,
    events: Sequence[Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]] = (),
    calls: Sequence[Mapping[str, Any]] = (),
    *,
    default_tenant: str = "acme",
) -> list[dict[str, Any]]:
    """The ``turn_records`` rows of one sender (Rasa's ``sender_id``, ``<tenant>:<user>``) from its tracker
    events, its action runs and its LLM calls (rows as dicts; see the module docstring for the rules)."""
    tenant, user = parse_conversation_id(sender_id, default_tenant)
    turns = segment(events)
    starts = [float(t.user.get("timestamp") or 0.0) for t in turns]
    rows = []
    for position, turn in enumerate(turns):
        window = (starts[position] - 5.0, starts[position + 1] if position + 1 < len(turns) else float("inf"))
        rows.append(_record(sender_id, tenant, user, turn, window, runs, calls))
    return rows


def _record(
    sender_id: str,
    tenant: str,
    user: str,
    turn: _Turn,
    window: tuple[float, float],
    runs: Sequence[Mapping[str, Any]],
    calls: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    data = turn.user["_data"]
    metadata = data.get("metadata") or {}
    parse = data.get("parse_data") or {}
    intent = parse.get("intent") or {}
    correlation = str(metadata.get("correlation_id") or "")
    final = turn.events[turn.final_from :]
    final_actions = [
        e["action_name"] for e in final if e["type_name"] == "action" and e["action_name"] not in PLUMBING
    ]
    mine = [
        r
        for r in runs
        if str(r.get("correlation_id") or "") == correlation
        and window[0] <= _run_time(r) < window[1]
        and r.get("action") in final_actions
    ]
    handoff_set = any(
        e["type_name"] == "slot" and e.get("action_name") == HANDOFF_SLOT and e["_data"].get("value") is True
        for e in final
    )
    bots = [e for e in turn.events if e["type_name"] == "bot"]
    recorded = {r.get("action") for r in mine}  # our actions say what they chose; the others by their name
    handler = first(
        [r["handler"] for r in mine] + [handler_of_action(a) for a in final_actions if a not in recorded]
    )
    if handoff_set:
        handler = HANDOFF
    deciding = next((r for r in mine if r["handler"] == handler), mine[0] if mine else None)
    outcome = "ok"
    if any(r.get("outcome") == "degraded" for r in mine):
        outcome = "degraded"
    # a reply the Rasa server gave itself because the action could not run (app/channels/degraded.py)
    said_by_rasa = [
        m for e in turn.events if e["type_name"] == "bot" and (m := e["_data"].get("metadata") or {})
    ]
    channel_level = next((str(m.get("level") or "static") for m in said_by_rasa if m.get("degraded")), None)
    if channel_level is not None:
        outcome = "degraded"
    if not bots:
        silent = handler == HANDOFF and any(r.get("outcome") == "silent" for r in mine)
        handler, outcome = (HANDOFF, "silent") if silent else (ERROR, "error")
    elif handler is None:
        handler = ERROR
    policy_rule = next(
        (
            f"{e['_data'].get('policy') or 'rasa'}:{e['action_name']}"
            for e in final
            if e["action_name"] in final_actions
        ),
        "",
    )
    started = float(turn.user.get("timestamp") or 0.0)
    ended = max(float(e.get("timestamp") or started) for e in turn.events)
    turn_calls = [c for c in calls if correlation and str(c.get("correlation_id") or "") == correlation]
    return {
        "tenant_id": tenant,
        "user_id": user,
        "conversation_id": sender_id,
        "session_index": turn.session,
        "turn_index": turn.index,
        "correlation_id": correlation[:128],
        "started_at": _utc(started),
        "ended_at": _utc(ended),
        "channel": str(data.get("input_channel") or "")[:32],
        "model_id": str(metadata.get("model_id") or "")[:64],
        "model_variant": str(metadata.get("model_variant") or "")[:32],
        "intent": str(intent.get("name") or "")[:64],
        "intent_confidence": None if intent.get("confidence") is None else float(intent["confidence"]),
        "entities": [  # values as the user typed them: personal data masked (the tracker keeps the rest)
            {"entity": e.get("entity"), "value": _masked_value(e.get("value"))}
            for e in parse.get("entities") or []
        ],
        "handler": handler,
        "rule": (deciding["rule"] if deciding and deciding.get("rule") else policy_rule)[:64],
        "actions": final_actions,
        "tier_tried": deciding.get("tier_tried") if deciding else None,
        "tier_used": deciding.get("tier_used") if deciding else None,
        "cache": (deciding.get("cache") or "") if deciding else "",
        "sources": _union(r.get("sources") for r in mine),
        "question": next((str(r["question"]) for r in mine if r.get("question")), ""),
        "tools": _union(r.get("tools") for r in mine),
        "llm_call_ids": [int(c["id"]) for c in turn_calls],
        "ticket_id": next((r["ticket_id"] for r in mine if r.get("ticket_id") is not None), None),
        "bot_messages": len(bots),
        "latency_ms": round((float(bots[0]["timestamp"]) - started) * 1000, 2) if bots else None,
        "stages": dict(deciding.get("stages") or {}) if deciding else {},
        "level": channel_level or ((deciding.get("level") or "full") if deciding else "full"),
        "outcome": outcome,
        "last_event_id": max(int(e["id"]) for e in turn.events),
    }


def _masked_value(value: Any) -> Any:
    """An entity value with e-mail addresses, phone, card and IBAN numbers masked (strings only)."""
    return mask_pii(value) if isinstance(value, str) else value


def _union(lists: Iterable[Any]) -> list[Any]:
    out: dict[Any, None] = {}
    for values in lists:
        for value in values or []:
            out[value] = None
    return list(out)


#: Events are stamped when Rasa creates them and stored when the turn ends: a sync looks this far back before
#: the previous one (longer than any turn: the gateway gives up on a turn after 30 s).
SYNC_MARGIN_S = 120.0


class TurnRecorder:
    """Keeps ``turn_records`` (in our stores at ``store_url``) up to date with the tracker store.

    Which senders changed: those with events stamped since the previous sync (less :data:`SYNC_MARGIN_S`) whose
    event count or newest event id differ from what was last turned into records. Not "ids above a
    watermark": an erasure deletes a sender's newest events and SQLite hands their ids out again."""

    def __init__(self, tracker_url: str, store_url: str, *, default_tenant: str = "acme") -> None:
        self.tracker = get_engine(tracker_url)
        self.store = get_engine(store_url)
        self.default_tenant = default_tenant
        self.since: float | None = None  # epoch seconds: when the previous sync started
        self.seen: dict[
            str, tuple[int, int, float]
        ] = {}  # sender -> (newest id, events, newest stamp) recorded
        self.watermark: int | None = None  # the newest tracker event id seen (for /health)

    def _start(self) -> float:
        """Where a new recorder starts: the end of the newest stored record (0: everything)."""
        with self.store.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(turn_records.c.ended_at))).scalar()
        return _epoch(newest) if newest is not None else 0.0

    def pending_senders(
        self, senders: Iterable[str] | None = None
    ) -> list[tuple[str, tuple[int, int, float]]]:
        """Senders whose events changed since they were last recorded, with their signature (newest id, count,
        newest time stamp); among ``senders`` when given (the event broker named them), else among those with
        events stamped since the last sync."""
        if self.since is None:
            self.since = self._start()
        with self.tracker.connect() as conn:
            if not sa.inspect(conn).has_table("events"):
                return []
            recent: Any = (
                sorted(set(senders))
                if senders is not None
                else sa.select(tracker_events.c.sender_id)
                .where(tracker_events.c.timestamp >= self.since - SYNC_MARGIN_S)
                .distinct()
            )
            rows = conn.execute(
                sa.select(
                    tracker_events.c.sender_id,
                    sa.func.max(tracker_events.c.id),
                    sa.func.count(),
                    sa.func.max(tracker_events.c.timestamp),
                )
                .where(tracker_events.c.sender_id.in_(recent))
                .group_by(tracker_events.c.sender_id)
            ).all()
        self.watermark = max([self.watermark or 0, *(int(r[1]) for r in rows)])
        candidates = {str(r[0]): (int(r[1]), int(r[2]), float(r[3] or 0.0)) for r in rows}
        if senders is None:  # the others cannot have changed since they were stamped
            self.seen = {s: v for s, v in self.seen.items() if s in candidates}
        return sorted((s, v) for s, v in candidates.items() if self.seen.get(s) != v)

    def sync(self, senders: Iterable[str] | None = None) -> int:
        """Rebuild the records of every sender whose events changed (among ``senders`` when given); return how
        many senders were rebuilt."""
        started = time.time()
        changed = self.pending_senders(senders)
        for sender, signature in changed:
            self.rebuild(sender)
            self.seen[sender] = signature
        if senders is None:
            self.since = started
        return len(changed)

    def rebuild(self, sender_id: str) -> list[dict[str, Any]]:
        """Build one sender's records from the stores and replace the stored ones (one transaction)."""
        with self.tracker.connect() as conn:
            events = [
                dict(r)
                for r in conn.execute(
                    sa.select(tracker_events).where(tracker_events.c.sender_id == sender_id)
                ).mappings()
            ]
        with self.store.connect() as conn:
            runs = [
                dict(r)
                for r in conn.execute(
                    sa.select(action_runs).where(action_runs.c.conversation_id == sender_id)
                ).mappings()
            ]
            calls = [
                dict(r)
                for r in conn.execute(
                    sa.select(llm_calls.c.id, llm_calls.c.correlation_id).where(
                        llm_calls.c.conversation_id == sender_id
                    )
                ).mappings()
            ]
        rows = build_turns(sender_id, events, runs, calls, default_tenant=self.default_tenant)
        with self.store.begin() as conn:
            conn.execute(sa.delete(turn_records).where(turn_records.c.conversation_id == sender_id))
            if rows:
                conn.execute(sa.insert(turn_records), rows)
        return rows


def load_records(
    store_url: str,
    *,
    tenant: str | None = None,
    conversation_ids: Sequence[str] | None = None,
    sessions_started: tuple[datetime, datetime] | None = None,
) -> list[dict[str, Any]]:
    """Stored turn records (of one tenant, or of some conversations), in conversation and turn order.

    ``sessions_started=(low, high)``: only the records of the Rasa sessions (``conversation_id`` +
    ``session_index``) whose first turn started in [``low``, ``high``), all of their turns (the Analytics
    page's conversations of a date range)."""
    query = sa.select(turn_records).order_by(turn_records.c.conversation_id, turn_records.c.turn_index)
    if tenant is not None:
        query = query.where(turn_records.c.tenant_id == tenant)
    if conversation_ids is not None:
        query = query.where(turn_records.c.conversation_id.in_(list(conversation_ids)))
    if sessions_started is not None:
        session = (turn_records.c.conversation_id, turn_records.c.session_index)
        first_turn = sa.func.min(turn_records.c.started_at)
        started = sa.select(*session).group_by(*session)
        if tenant is not None:
            started = started.where(turn_records.c.tenant_id == tenant)
        started = started.having(
            first_turn >= sessions_started[0], first_turn < sessions_started[1]
        ).subquery()
        query = query.join(
            started,
            sa.and_(
                turn_records.c.conversation_id == started.c.conversation_id,
                turn_records.c.session_index == started.c.session_index,
            ),
        )
    with get_engine(store_url).connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


# Retention (app/data/retention.py): a forgotten user's records go; records of turns that ended more than
# ``conversation_days`` ago too.
retention.register(retention.TurnLevelRows(turn_records, "ended_at"))
