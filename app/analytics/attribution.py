"""Tickets and LLM calls matched to the conversations they belong to.

Both carry only the sender id (their ``conversation_id``) and a creation time: a row belongs to the
conversation (Rasa session, :mod:`app.analytics.sessions`) of that sender whose window holds its time, and
an LLM call also to the user turn whose span holds it (for the answer tier, :mod:`app.analytics.kpis`).

Definitions (the analytics contract, also in docs/analytics.md):

- **Escalated conversation**: it reached a human: an ``action_handoff`` / ``action_forward_to_agent``
  event or ``handoff_active`` set true in the tracker, or a ticket of our store created in its window.
  **Escalation rate** = escalated / conversations; **containment rate** = 1 - escalation rate.
- **Cost and tokens per conversation**: the sum of ``cost`` and ``prompt_tokens + completion_tokens`` of
  the LLM calls attributed to the conversation (0 when none); mean, p50, p95 and total are over all
  conversations in range, so they answer "what does a conversation cost", not "what does an LLM call".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.analytics.frames import LLM_CALL_COLUMNS, TICKET_COLUMNS, as_frame, epoch_seconds
from app.analytics.sessions import CONVERSATION_COLUMNS


def assign_windows(rows: pd.DataFrame, windows: pd.DataFrame, key: str) -> pd.Series:
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


def attach_tickets(convs: pd.DataFrame, windows: pd.DataFrame, tickets: pd.DataFrame | None) -> pd.DataFrame:
    """``escalated`` also true for conversations with a ticket created in their window."""
    rows = as_frame(tickets, TICKET_COLUMNS)
    out = convs.copy()
    if rows.empty or out.empty:
        return out
    rows = pd.DataFrame(
        {"sender_id": rows["conversation_id"].astype(str), "ts": epoch_seconds(rows["created_at"])}
    )
    ticketed = set(assign_windows(rows, windows, "conversation_id").dropna())
    out["escalated"] = out["escalated"] | out["conversation_id"].isin(ticketed)
    return out


def prepare_llm_calls(
    llm_calls: pd.DataFrame | None, windows: pd.DataFrame, turn_rows: pd.DataFrame
) -> pd.DataFrame:
    """LLM calls with ``ts``, ``tokens``, float ``cost``, the ``conversation_id`` (session) and ``turn``
    they belong to (None when no tracker conversation holds them)."""
    calls = as_frame(llm_calls, LLM_CALL_COLUMNS)
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
    calls["conversation_id"] = assign_windows(calls, windows, "conversation_id")
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
    calls["turn_key"] = assign_windows(calls, turn_windows, "turn_key")
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
