"""Tracker events -> user turns and conversations: the segmentation every metric counts on.

Definitions (the analytics contract, also in docs/analytics.md):

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
- **Fallback turn**: the final intent is ``nlu_fallback``, or a fallback action ran in the final part. A
  "Did you mean ...?" that the user then clarifies counts once (the turn that asked), not twice.
  **Fallback rate** = fallback turns / user turns.
- **Latency of a turn**: from the user event's timestamp to the first ``bot`` event of the turn (seconds,
  shown in ms). Rasa stamps the user event after NLU parsing, so this is the dialogue + action time; turns
  without a bot message (a human has the conversation) have none. Percentiles are linear (numpy default).

Which handler a turn had comes from :mod:`app.analytics.handlers`; tickets and LLM calls are matched to
these conversations by :mod:`app.analytics.attribution`.
"""

from __future__ import annotations

import math

import pandas as pd

from app.analytics.frames import EVENT_COLUMNS, as_frame, empty_frame, event_data
from app.analytics.handlers import NO_HANDLER, event_handlers, turn_handler
from app.identity import parse_conversation_id

NLU_FALLBACK_INTENT = "nlu_fallback"


def prepare_events(events: pd.DataFrame | None, default_tenant: str) -> pd.DataFrame:
    """Tracker events in order, with ``tenant``, ``user_id``, ``session``, ``conversation_id``,
    ``message_id``, ``confidence``, ``replay`` (a user event Rasa replayed), ``turn`` (0 before the first
    user turn of the conversation), ``part`` (counts every user event) and ``handler`` (of the event)."""
    frame = as_frame(events, EVENT_COLUMNS)
    frame = frame[frame["sender_id"].notna()].copy()
    frame["sender_id"] = frame["sender_id"].astype(str)
    frame["timestamp"] = pd.to_numeric(frame["timestamp"], errors="coerce").astype(float)
    frame = frame.sort_values(["sender_id", "id"], kind="stable").reset_index(drop=True)
    parsed = frame["data"].map(event_data)
    parts = frame["sender_id"].map(lambda s: parse_conversation_id(s, default_tenant))
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

    frame["handler"] = event_handlers(frame, parsed)
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
        return empty_frame(TURN_COLUMNS)
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
    out["handler"] = present.map(turn_handler)
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
    and LLM costs are added by :mod:`app.analytics.attribution`)."""
    if turn_rows.empty:
        return empty_frame(CONVERSATION_COLUMNS)
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
