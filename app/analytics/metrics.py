"""Conversation metrics over plain DataFrames: the definitions, in one place, that the analytics page shows.

Inputs (what :mod:`app.analytics.loaders` returns; hand-built frames in the tests):

- ``events``: rows of Rasa's SQL tracker store table ``events`` (``id, sender_id, type_name, timestamp,
  intent_name, action_name, data``; ``timestamp`` is a float epoch, ``data`` the event as JSON text). The
  ``sender_id`` is ``<tenant>:<user>`` (``app/channels/rest.py``); one without a colon belongs to the
  default tenant, as in ``app/actions/context.py``.
- ``tickets``: our ``tickets`` table (``conversation_id`` is the sender id, ``created_at`` a UTC datetime).
- ``llm_calls``: our ``llm_calls`` table (one row per call to an LLM tier, same ``conversation_id``).

Definitions:

- **Conversation**: one Rasa *session* of a sender id that holds at least one user turn. Rasa starts a new
  session (a ``session_started`` event) after ``session_expiration_time`` (60 minutes, ``nlu/domain.yml``)
  of silence and resets the slots then, ``handoff_active`` included; so a customer who comes back the next
  day with the same id is a new conversation, which is what containment should count. (The chat page
  starts a new sender id for every "New conversation", so there sessions and sender ids coincide.) Its id
  is ``<sender_id>#<session number>``; its window (used to attribute tickets and LLM calls, which carry
  only the sender id) runs from its first event to the first event of the sender's next session. It
  belongs to the day (UTC) and date range of its first user turn.
- **User turn**: a ``user`` event sent by the user. Rasa also writes ``user`` events it replays itself (the
  two-stage fallback's clarified message is a copy of the button click, with the same ``message_id``; the
  handoff's hand-back replays the message without one): those are not new turns but part of the turn they
  continue. A turn runs until the next user turn; its *final part* starts at its last ``user`` event
  (replayed or not) and is what the bot finally did with it.
- **Handler of a turn**: from the actions of its final part, by :data:`HANDLER_ACTIONS`, highest first:
  ``handoff`` (``action_handoff``, ``action_forward_to_agent``, or the slot ``handoff_active`` set true, as
  the knowledge action and the fallback do when they open a handoff ticket), ``fallback`` (the two-stage
  fallback and the core fallback actions), ``knowledge`` (``action_answer_knowledge``), ``skill`` (any
  other action: ``utter_*``, orders, refunds); ``none`` when no action ran.
- **Fallback turn**: the final intent is ``nlu_fallback``, or a fallback action ran in the final part. A
  "Did you mean ...?" that the user then clarifies counts once (the turn that asked), not twice.
  **Fallback rate** = fallback turns / user turns.
- **Escalated conversation**: it reached a human: an ``action_handoff`` / ``action_forward_to_agent``
  event or ``handoff_active`` set true in the tracker, or a ticket of our store created in its window.
  **Escalation rate** = escalated / conversations; **containment rate** = 1 - escalation rate.
- **Latency of a turn**: from the user event's timestamp to the first ``bot`` event of the turn (seconds,
  shown in ms). Rasa stamps the user event after NLU parsing, so this is the dialogue + action time; turns
  without a bot message (a human has the conversation) have none. Percentiles are linear (numpy default).
- **Cost and tokens per conversation**: the sum of ``cost`` and ``prompt_tokens + completion_tokens`` of
  the LLM calls attributed to the conversation (0 when none); mean, p50, p95 and total are over all
  conversations in range, so they answer "what does a conversation cost", not "what does an LLM call".
- **Answer tier of a knowledge turn**: the highest tier of a successful (``outcome == "ok"``) LLM call made
  during the turn; tier 0 otherwise (extractive, a cache hit, or "I don't know").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

EVENT_COLUMNS = ("id", "sender_id", "type_name", "timestamp", "intent_name", "action_name", "data")
TICKET_COLUMNS = ("conversation_id", "created_at", "status", "handoff_active")
LLM_CALL_COLUMNS = (
    "conversation_id", "tier", "model", "prompt_tokens", "completion_tokens", "cost", "latency_ms", "outcome",
    "created_at",
)  # fmt: skip

NLU_FALLBACK_INTENT = "nlu_fallback"
HANDOFF_SLOT = "handoff_active"
OK_OUTCOME = "ok"

# Which handler an action stands for. Everything not listed (utter_*, action_track_order, ...) is a skill.
HANDLER_ACTIONS: dict[str, frozenset[str]] = {
    "handoff": frozenset({"action_handoff", "action_forward_to_agent"}),
    "fallback": frozenset(
        {
            "action_two_stage_fallback",
            "action_default_fallback",
            "action_default_ask_affirmation",
            "action_default_ask_rephrase",
        }
    ),  # fmt: skip
    "knowledge": frozenset({"action_answer_knowledge"}),
}
HANDLERS: tuple[str, ...] = ("handoff", "fallback", "knowledge", "skill")  # precedence, highest first
NO_HANDLER = "none"
# Rasa's own bookkeeping actions: they answer nothing.
PLUMBING_ACTIONS = frozenset(
    {"action_listen", "action_session_start", "action_extract_slots", "action_unlikely_intent"}
)


def handler_of(action_name: str | None) -> str | None:
    """The handler an action stands for (:data:`HANDLER_ACTIONS`); None for Rasa's plumbing actions."""
    if not action_name or action_name in PLUMBING_ACTIONS:
        return None
    for handler, actions in HANDLER_ACTIONS.items():
        if action_name in actions:
            return handler
    return "skill"


# --- helpers ---------------------------------------------------------------------------------------------


def _frame(rows: pd.DataFrame | Iterable[dict[str, Any]] | None, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of ``rows`` (a frame or a list of dicts) with at least ``columns`` (empty for None)."""
    columns = list(columns)
    if rows is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame


def _json(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def epoch_seconds(values: pd.Series) -> pd.Series:
    """Datetimes (aware, or naive meaning UTC as SQLite returns them) -> float seconds since the epoch."""
    stamps = pd.to_datetime(values, utc=True, format="mixed")
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def split_sender(sender_id: str, default_tenant: str) -> tuple[str, str]:
    """``<tenant>:<user>`` -> (tenant, user); a sender id without a colon belongs to ``default_tenant``."""
    tenant, sep, user = str(sender_id).partition(":")
    return (tenant, user) if sep and user else (default_tenant, str(sender_id))


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (linear interpolation) of the finite values; None when there are none."""
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    return float(np.percentile(array, q)) if array.size else None


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``, or None when ``whole`` is 0 (a rate of nothing is undefined, not 0)."""
    return part / whole if whole else None


def day_bounds(start: date, end: date) -> tuple[float, float]:
    """Inclusive UTC days ``start``..``end`` -> the epoch range [start 00:00, day after end 00:00)."""
    if end < start:
        raise ValueError(f"the date range ends ({end}) before it starts ({start})")
    low = datetime(start.year, start.month, start.day, tzinfo=UTC)
    high = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return low.timestamp(), high.timestamp()


def _assign(rows: pd.DataFrame, windows: pd.DataFrame, key: str) -> pd.Series:
    """For each row (``sender_id``, ``ts``), the ``key`` of the window (``sender_id``, ``window_start``,
    ``window_end``) of the same sender that holds ``ts``; NaN when none does. Windows must not overlap."""
    if rows.empty or windows.empty:
        return pd.Series([None] * len(rows), index=rows.index, dtype="object")
    left = pd.DataFrame(
        {
            "sender_id": rows["sender_id"].astype(str),
            "ts": rows["ts"].astype(float),
            "_row": np.arange(len(rows)),
        }
    ).sort_values("ts", kind="stable")
    right = windows[["sender_id", "window_start", "window_end", key]].copy()
    right["sender_id"] = right["sender_id"].astype(str)
    right["window_start"] = right["window_start"].astype(float)
    right = right.sort_values("window_start", kind="stable")
    merged = pd.merge_asof(
        left, right, left_on="ts", right_on="window_start", by="sender_id", direction="backward"
    )
    inside = merged["window_end"].notna() & (merged["ts"] < merged["window_end"])
    merged[key] = merged[key].where(inside, None)
    merged = merged.sort_values("_row")
    return pd.Series(merged[key].to_numpy(dtype=object), index=rows.index, dtype="object")


# --- events -> turns and conversations -----------------------------------------------------------------


def prepare_events(events: pd.DataFrame | None, default_tenant: str) -> pd.DataFrame:
    """Tracker events in order, with ``tenant``, ``user_id``, ``session``, ``conversation_id``,
    ``message_id``, ``confidence``, ``replay`` (a user event Rasa replayed), ``turn`` (0 before the first
    user turn of the conversation), ``part`` (counts every user event) and ``handler`` (of the event)."""
    frame = _frame(events, EVENT_COLUMNS)
    frame = frame[frame["sender_id"].notna()].copy()
    frame["sender_id"] = frame["sender_id"].astype(str)
    frame["timestamp"] = pd.to_numeric(frame["timestamp"], errors="coerce").astype(float)
    frame = frame.sort_values(["sender_id", "id"], kind="stable").reset_index(drop=True)
    parsed = frame["data"].map(_json)
    parts = frame["sender_id"].map(lambda s: split_sender(s, default_tenant))
    frame["tenant"] = parts.map(lambda p: p[0]).astype(object)
    frame["user_id"] = parts.map(lambda p: p[1]).astype(object)

    frame["session"] = frame["type_name"].eq("session_started").groupby(frame["sender_id"]).cumsum()
    frame["conversation_id"] = frame["sender_id"] + "#" + frame["session"].astype(str)

    is_user = frame["type_name"].eq("user")
    frame["message_id"] = parsed.map(lambda d: d.get("message_id") or None).where(is_user, None)
    frame["confidence"] = parsed.map(
        lambda d: ((d.get("parse_data") or {}).get("intent") or {}).get("confidence")
    ).where(is_user, None)
    seen_before = frame.loc[is_user].duplicated(["sender_id", "message_id"], keep="first")
    frame["replay"] = False
    frame.loc[is_user, "replay"] = seen_before | frame.loc[is_user, "message_id"].isna()
    frame["replay"] = frame["replay"].astype(bool)
    real_user = is_user & ~frame["replay"]
    frame["turn"] = real_user.groupby(frame["conversation_id"]).cumsum()
    frame["part"] = is_user.groupby(frame["conversation_id"]).cumsum()

    handoff_slot = (
        frame["type_name"].eq("slot")
        & frame["action_name"].eq(HANDOFF_SLOT)
        & parsed.map(lambda d: d.get("value") is True)
    )
    handlers = frame["action_name"].map(handler_of).where(frame["type_name"].eq("action"), None)
    frame["handler"] = handlers.where(~handoff_slot, "handoff").astype(object)
    return frame


TURN_COLUMNS = (
    "conversation_id", "sender_id", "tenant", "turn", "ts", "intent", "confidence", "final_intent",
    "handler", "is_fallback", "latency_s", "bot_messages",
)  # fmt: skip


def turns(prepared: pd.DataFrame) -> pd.DataFrame:
    """One row per user turn: ``ts`` (epoch s), ``intent``/``confidence`` (as understood first),
    ``final_intent`` (after any clarification), ``handler``, ``is_fallback``, ``latency_s`` (NaN without a
    bot message) and ``bot_messages``."""
    events = prepared[prepared["turn"] > 0]
    real = events[events["type_name"].eq("user") & ~events["replay"]]
    if real.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in TURN_COLUMNS})
    key = ["conversation_id", "turn"]
    out = (
        real[[*key, "sender_id", "tenant", "timestamp", "intent_name", "confidence"]]
        .rename(columns={"timestamp": "ts", "intent_name": "intent"})
        .set_index(key)
    )

    last_part = events.groupby(key)["part"].transform("max")
    final = events[events["part"].eq(last_part)]
    out["final_intent"] = final[final["type_name"].eq("user")].groupby(key)["intent_name"].last()
    present = final.dropna(subset=["handler"]).groupby(key)["handler"].agg(set)
    out["handler"] = present.map(lambda hs: next((h for h in HANDLERS if h in hs), NO_HANDLER))
    out["handler"] = out["handler"].fillna(NO_HANDLER)
    fell_back = present.map(lambda hs: "fallback" in hs).reindex(out.index, fill_value=False).astype(bool)
    out["is_fallback"] = fell_back | out["final_intent"].eq(NLU_FALLBACK_INTENT)

    bots = events[events["type_name"].eq("bot")].groupby(key)["timestamp"]
    out["latency_s"] = (bots.min() - out["ts"]).where(lambda s: s >= 0)
    out["latency_s"] = out["latency_s"].astype(float)
    out["bot_messages"] = bots.size().reindex(out.index, fill_value=0).astype(int)
    out["confidence"] = pd.to_numeric(out["confidence"], errors="coerce")
    return out.reset_index()[list(TURN_COLUMNS)]


def conversation_windows(prepared: pd.DataFrame) -> pd.DataFrame:
    """Per conversation (session): ``sender_id``, ``window_start`` (its first event) and ``window_end``
    (the first event of the sender's next session, +inf for the last one)."""
    grouped = prepared.groupby("conversation_id", sort=False).agg(
        sender_id=("sender_id", "first"), session=("session", "first"), window_start=("timestamp", "min")
    )
    grouped = grouped.sort_values(["sender_id", "session"]).reset_index()
    grouped["window_end"] = grouped.groupby("sender_id")["window_start"].shift(-1).fillna(math.inf)
    return grouped[["conversation_id", "sender_id", "window_start", "window_end"]]


CONVERSATION_COLUMNS = (
    "conversation_id", "sender_id", "tenant", "user_id", "start", "day", "user_turns", "fallback_turns",
    "escalated", "cost", "tokens", "llm_calls",
)  # fmt: skip


def conversations(prepared: pd.DataFrame, turn_rows: pd.DataFrame) -> pd.DataFrame:
    """One row per conversation with at least one user turn: ``start`` (epoch s of its first user turn),
    ``day`` (UTC date), ``user_turns``, ``fallback_turns`` and ``escalated`` as seen in the tracker (tickets
    and LLM costs are added by :func:`attach_tickets` and :func:`attach_llm_calls`)."""
    if turn_rows.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in CONVERSATION_COLUMNS})
    by_conv = turn_rows.groupby("conversation_id")
    out = pd.DataFrame({
        "start": by_conv["ts"].min(),
        "user_turns": by_conv.size(),
        "fallback_turns": by_conv["is_fallback"].sum().astype(int),
    })  # fmt: skip
    info = prepared.groupby("conversation_id").agg(
        sender_id=("sender_id", "first"), tenant=("tenant", "first"), user_id=("user_id", "first")
    )
    out = out.join(info)
    handed = prepared["handler"].eq("handoff").groupby(prepared["conversation_id"]).any()
    out["escalated"] = handed.reindex(out.index, fill_value=False).astype(bool)
    out["day"] = pd.to_datetime(out["start"], unit="s", utc=True).dt.date
    out["cost"], out["tokens"], out["llm_calls"] = 0.0, 0, 0
    return out.reset_index()[list(CONVERSATION_COLUMNS)]


def attach_tickets(convs: pd.DataFrame, windows: pd.DataFrame, tickets: pd.DataFrame | None) -> pd.DataFrame:
    """``escalated`` also true for conversations with a ticket created in their window."""
    rows = _frame(tickets, TICKET_COLUMNS)
    out = convs.copy()
    if rows.empty or out.empty:
        return out
    rows = pd.DataFrame(
        {"sender_id": rows["conversation_id"].astype(str), "ts": epoch_seconds(rows["created_at"])}
    )
    ticketed = set(_assign(rows, windows, "conversation_id").dropna())
    out["escalated"] = out["escalated"] | out["conversation_id"].isin(ticketed)
    return out


def prepare_llm_calls(
    llm_calls: pd.DataFrame | None, windows: pd.DataFrame, turn_rows: pd.DataFrame
) -> pd.DataFrame:
    """LLM calls with ``ts``, ``tokens``, float ``cost``, the ``conversation_id`` (session) and ``turn``
    they belong to (None when no tracker conversation holds them)."""
    calls = _frame(llm_calls, LLM_CALL_COLUMNS)
    calls = calls.rename(columns={"conversation_id": "sender_id"})
    calls["sender_id"] = calls["sender_id"].astype(str)
    calls["ts"] = epoch_seconds(calls["created_at"]) if len(calls) else pd.Series(dtype=float)
    for column in ("prompt_tokens", "completion_tokens", "latency_ms", "tier"):
        calls[column] = pd.to_numeric(calls[column], errors="coerce").fillna(0).astype(int)
    calls["cost"] = (
        pd.to_numeric(calls["cost"].map(lambda v: None if v is None else float(v)), errors="coerce")
        .fillna(0.0)
        .astype(float)
    )
    calls["tokens"] = calls["prompt_tokens"] + calls["completion_tokens"]
    calls["conversation_id"] = _assign(calls, windows, "conversation_id")
    if turn_rows.empty:
        calls["turn_key"] = None
        return calls
    turn_windows = turn_rows[["conversation_id", "sender_id", "turn", "ts"]].copy()
    turn_windows = turn_windows.sort_values(["conversation_id", "turn"])
    turn_windows["window_start"] = turn_windows["ts"]
    ends = windows.set_index("conversation_id")["window_end"]
    turn_windows["window_end"] = turn_windows.groupby("conversation_id")["ts"].shift(-1)
    turn_windows["window_end"] = turn_windows["window_end"].fillna(turn_windows["conversation_id"].map(ends))
    turn_windows["turn_key"] = turn_windows["conversation_id"] + "@" + turn_windows["turn"].astype(str)
    calls["turn_key"] = _assign(calls, turn_windows, "turn_key")
    return calls


def attach_llm_calls(convs: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """``cost``, ``tokens`` and ``llm_calls`` per conversation from the attributed calls (0 when none)."""
    out = convs.copy()
    if out.empty:
        return out
    mine = calls[calls["conversation_id"].notna()].groupby("conversation_id")
    out = out.set_index("conversation_id")
    out["cost"] = mine["cost"].sum().reindex(out.index, fill_value=0.0).astype(float)
    out["tokens"] = mine["tokens"].sum().reindex(out.index, fill_value=0).astype(int)
    out["llm_calls"] = mine.size().reindex(out.index, fill_value=0).astype(int)
    return out.reset_index()[list(CONVERSATION_COLUMNS)]


# --- aggregates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpis:
    """The headline figures of one tenant and date range; rates are None when there is nothing to divide."""

    conversations: int
    user_turns: int
    contained: int
    escalated: int
    containment_rate: float | None
    escalation_rate: float | None
    fallback_turns: int
    fallback_rate: float | None
    cost_total: float
    cost_mean: float | None
    cost_p50: float | None
    cost_p95: float | None
    tokens_total: int
    tokens_mean: float | None
    tokens_p50: float | None
    tokens_p95: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    llm_calls: int
    unattributed_llm_calls: int


def kpis(convs: pd.DataFrame, turn_rows: pd.DataFrame, unattributed_calls: int = 0) -> Kpis:
    """Headline figures over the conversations ``convs`` and their turns ``turn_rows``."""
    n = len(convs)
    escalated = int(convs["escalated"].sum()) if n else 0
    user_turns = len(turn_rows)
    fallback_turns = int(turn_rows["is_fallback"].sum()) if user_turns else 0
    latency_ms = (turn_rows["latency_s"].astype(float) * 1000).tolist() if user_turns else []
    costs = convs["cost"].astype(float).tolist() if n else []
    tokens = convs["tokens"].astype(float).tolist() if n else []
    return Kpis(
        conversations=n,
        user_turns=user_turns,
        contained=n - escalated,
        escalated=escalated,
        containment_rate=ratio(n - escalated, n),
        escalation_rate=ratio(escalated, n),
        fallback_turns=fallback_turns,
        fallback_rate=ratio(fallback_turns, user_turns),
        cost_total=float(sum(costs)),
        cost_mean=float(np.mean(costs)) if costs else None,
        cost_p50=percentile(costs, 50),
        cost_p95=percentile(costs, 95),
        tokens_total=int(sum(tokens)),
        tokens_mean=float(np.mean(tokens)) if tokens else None,
        tokens_p50=percentile(tokens, 50),
        tokens_p95=percentile(tokens, 95),
        latency_p50_ms=percentile(latency_ms, 50),
        latency_p95_ms=percentile(latency_ms, 95),
        llm_calls=int(convs["llm_calls"].sum()) if n else 0,
        unattributed_llm_calls=unattributed_calls,
    )


def latency_by_handler(turn_rows: pd.DataFrame) -> pd.DataFrame:
    """Per handler that answered (``HANDLERS`` order): ``turns`` with a bot reply, ``p50_ms``, ``p95_ms``."""
    rows = []
    answered = turn_rows[turn_rows["latency_s"].notna()] if len(turn_rows) else turn_rows
    for handler in (*HANDLERS, NO_HANDLER):
        values = (answered.loc[answered["handler"].eq(handler), "latency_s"].astype(float) * 1000).tolist()
        if values:
            rows.append(
                {
                    "handler": handler,
                    "turns": len(values),
                    "p50_ms": percentile(values, 50),
                    "p95_ms": percentile(values, 95),
                }
            )
    return pd.DataFrame(rows, columns=["handler", "turns", "p50_ms", "p95_ms"])


def cost_by_tier_model(calls: pd.DataFrame, n_conversations: int) -> pd.DataFrame:
    """Per (tier, model) of the attributed LLM calls: ``calls``, ``ok_calls``, tokens, ``cost``,
    ``cost_per_conversation`` (over all ``n_conversations``) and mean ``latency_ms``."""
    columns = [
        "tier",
        "model",
        "calls",
        "ok_calls",
        "prompt_tokens",
        "completion_tokens",
        "tokens",
        "cost",
        "cost_per_conversation",
        "latency_ms_mean",
    ]
    mine = calls[calls["conversation_id"].notna()] if len(calls) else calls
    if mine.empty:
        return pd.DataFrame(columns=columns)
    grouped = mine.assign(ok=mine["outcome"].eq(OK_OUTCOME)).groupby(["tier", "model"])
    out = grouped.agg(
        calls=("tokens", "size"),
        ok_calls=("ok", "sum"),
        prompt_tokens=("prompt_tokens", "sum"),
        completion_tokens=("completion_tokens", "sum"),
        tokens=("tokens", "sum"),
        cost=("cost", "sum"),
        latency_ms_mean=("latency_ms", "mean"),
    ).reset_index()
    out["ok_calls"] = out["ok_calls"].astype(int)
    out["cost_per_conversation"] = out["cost"] / n_conversations if n_conversations else float("nan")
    return out[columns]


def answers_by_tier(turn_rows: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """Knowledge turns by the tier that answered (see the module docstring): ``tier``, ``answers``,
    ``share``; tiers 0-2 always listed."""
    knowledge = turn_rows[turn_rows["handler"].eq("knowledge")] if len(turn_rows) else turn_rows
    keys = knowledge["conversation_id"] + "@" + knowledge["turn"].astype(str) if len(knowledge) else []
    ok = calls[calls["outcome"].eq(OK_OUTCOME) & calls["turn_key"].notna()] if len(calls) else calls
    best = ok.groupby("turn_key")["tier"].max() if len(ok) else pd.Series(dtype=int)
    tiers = pd.Series(list(keys), dtype=object).map(best).fillna(0).astype(int)
    counts = tiers.value_counts()
    all_tiers = sorted({0, 1, 2, *counts.index.tolist()})
    total = int(counts.sum())
    return pd.DataFrame(
        [
            {"tier": t, "answers": int(counts.get(t, 0)), "share": ratio(int(counts.get(t, 0)), total)}
            for t in all_tiers
        ],
        columns=["tier", "answers", "share"],
    )


DAILY_COLUMNS = (
    "day", "conversations", "escalated", "containment_rate", "escalation_rate", "user_turns",
    "fallback_turns", "fallback_rate", "cost_total", "cost_per_conversation", "tokens_per_conversation",
    "latency_p50_ms", "latency_p95_ms",
)  # fmt: skip


def daily(convs: pd.DataFrame, turn_rows: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """One row per UTC day of ``start``..``end`` (days without conversations included: 0 conversations,
    rates NaN): the KPIs of the conversations that started that day and of their turns."""
    rows = []
    day_of = convs.set_index("conversation_id")["day"] if len(convs) else pd.Series(dtype=object)
    turn_days = turn_rows["conversation_id"].map(day_of) if len(turn_rows) else pd.Series(dtype=object)
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        figures = kpis(
            convs[convs["day"].eq(day)] if len(convs) else convs,
            turn_rows[turn_days.eq(day)] if len(turn_rows) else turn_rows,
        )
        rows.append({
            "day": pd.Timestamp(day), "conversations": figures.conversations, "escalated": figures.escalated,
            "containment_rate": figures.containment_rate, "escalation_rate": figures.escalation_rate,
            "user_turns": figures.user_turns, "fallback_turns": figures.fallback_turns,
            "fallback_rate": figures.fallback_rate, "cost_total": figures.cost_total,
            "cost_per_conversation": figures.cost_mean, "tokens_per_conversation": figures.tokens_mean,
            "latency_p50_ms": figures.latency_p50_ms, "latency_p95_ms": figures.latency_p95_ms,
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(DAILY_COLUMNS))
    rate_columns = [
        c
        for c in DAILY_COLUMNS
        if c not in ("day", "conversations", "escalated", "user_turns", "fallback_turns")
    ]
    frame[rate_columns] = frame[rate_columns].astype(float)
    return frame


@dataclass(frozen=True)
class Analytics:
    """Everything the analytics page shows for one tenant and date range."""

    tenant: str
    start: date
    end: date
    kpis: Kpis
    conversations: pd.DataFrame
    turns: pd.DataFrame
    daily: pd.DataFrame
    latency_by_handler: pd.DataFrame
    cost_by_tier_model: pd.DataFrame
    answers_by_tier: pd.DataFrame


def compute(
    events: pd.DataFrame | None,
    tickets: pd.DataFrame | None,
    llm_calls: pd.DataFrame | None,
    *,
    tenant: str,
    start: date,
    end: date,
    default_tenant: str = "acme",
) -> Analytics:
    """All metrics of ``tenant`` for the conversations that started on UTC days ``start``..``end``.

    The inputs may hold other tenants and other days (they are filtered here, so the loaders may be
    coarse); ``tickets`` and ``llm_calls`` are matched to conversations by sender id and time window.
    """
    low, high = day_bounds(start, end)
    prepared = prepare_events(events, default_tenant)
    prepared = prepared[prepared["tenant"].eq(tenant)]
    windows = conversation_windows(prepared)
    all_turns = turns(prepared)
    convs = conversations(prepared, all_turns)
    if len(convs):
        convs = convs[(convs["start"] >= low) & (convs["start"] < high)].reset_index(drop=True)
    in_range = set(convs["conversation_id"])
    turn_rows = all_turns[all_turns["conversation_id"].isin(in_range)].reset_index(drop=True)

    ticket_rows = _frame(tickets, TICKET_COLUMNS)
    if "tenant_id" in ticket_rows.columns:
        ticket_rows = ticket_rows[ticket_rows["tenant_id"].eq(tenant)]
    convs = attach_tickets(convs, windows, ticket_rows)

    call_rows = _frame(llm_calls, LLM_CALL_COLUMNS)
    if "tenant_id" in call_rows.columns:
        call_rows = call_rows[call_rows["tenant_id"].eq(tenant)]
    calls = prepare_llm_calls(call_rows, windows, all_turns)
    if len(calls):
        in_window = (calls["ts"] >= low) & (calls["ts"] < high)
        unattributed = int((calls["conversation_id"].isna() & in_window).sum())
        calls = calls[calls["conversation_id"].isin(in_range)]
    else:
        unattributed = 0
    convs = attach_llm_calls(convs, calls)
    return Analytics(
        tenant=tenant,
        start=start,
        end=end,
        kpis=kpis(convs, turn_rows, unattributed),
        conversations=convs,
        turns=turn_rows,
        daily=daily(convs, turn_rows, start, end),
        latency_by_handler=latency_by_handler(turn_rows),
        cost_by_tier_model=cost_by_tier_model(calls, len(convs)),
        answers_by_tier=answers_by_tier(turn_rows, calls),
    )


# --- display -------------------------------------------------------------------------------------------


def format_rate(value: float | None) -> str:
    """A rate as the page shows it: ``"87.5%"``, or ``"–"`` when undefined."""
    return "–" if value is None or math.isnan(value) else f"{value:.1%}"


def format_cost(value: float | None) -> str:
    """A cost as the page shows it (model prices are tiny: 4 decimals)."""
    return "–" if value is None or math.isnan(value) else f"{value:.4f}"


def format_ms(value: float | None) -> str:
    """A latency in ms as the page shows it."""
    return "–" if value is None or math.isnan(value) else f"{value:,.0f} ms"


def format_number(value: float | None) -> str:
    """A count or mean as the page shows it (one decimal unless whole)."""
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
