"""The figures of one tenant and date range, from the turn records (:mod:`app.analytics.turn_records`) and the
LLM calls they name: headline KPIs, daily series and the page's tables.

Pure functions of the records (dicts, as :func:`~app.analytics.turn_records.load_records` or
:func:`~app.analytics.turn_records.build_turns` give them) and the calls (``llm_calls`` rows with their
``id``). Rates are None when there is nothing to divide (:func:`app.analytics.stats.ratio`); percentiles are
linear (:func:`app.analytics.stats.percentile`). Handlers are those of :mod:`app.orchestration.handlers`.

Definitions (the analytics contract, also in docs/analytics.md):

- **Conversation**: a Rasa session of a sender: the records of one ``conversation_id`` (the sender id) and
  ``session_index``; shown as ``<conversation_id>#<session_index>``. It belongs to the UTC day of its first
  turn's ``started_at``; a date range holds the conversations that started in it, with all their turns.
- **User turn**: a record. **Fallback / "I don't know" / error rate**: turns handled as ``fallback`` /
  ``idk`` / ``error``, over user turns.
- **Escalated conversation**: one of its turns was handled as ``handoff``, or names a ticket. **Escalation
  rate** = escalated / conversations; **containment rate** = 1 - escalation rate.
- **Cost and tokens per conversation**: the sum of ``cost`` and ``prompt_tokens + completion_tokens`` of the
  LLM calls its records name (``llm_call_ids``; 0 without any); mean, p50, p95 and total over all
  conversations in range.
- **Latency**: the records' ``latency_ms`` (user event to the turn's first bot message; none without one).
- **Answers by tier**: knowledge turns by what gave the answer: ``cache`` (``cache`` set), else
  ``tier <tier_used>``; ``unrecorded`` when no action run said (a turn Rasa answered on its own).
- **By channel / model variant**: conversations by the channel / model variant of their first turn. **By
  intent**: user turns by the intent NLU gave them; an escalated turn is one handled as ``handoff`` or that
  names a ticket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

import numpy as np
import pandas as pd

from app.analytics.stats import percentile, ratio
from app.orchestration.handlers import ERROR, FALLBACK, HANDOFF, IDK, KNOWLEDGE, Handler

#: The order the page lists handlers in (the vocabulary's own).
HANDLER_ORDER: tuple[str, ...] = get_args(Handler)
OK_OUTCOME = "ok"
NONE_LABEL = "(none)"


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Inclusive UTC days ``start``..``end`` -> the range [start 00:00, day after end 00:00) in UTC."""
    if end < start:
        raise ValueError(f"the date range ends ({end}) before it starts ({start})")
    low = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return low, datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)


CALL_COLUMNS = (
    "id", "tier", "model", "prompt_tokens", "completion_tokens", "tokens", "cost", "latency_ms", "outcome",
)  # fmt: skip


def call_frame(calls: Iterable[Mapping[str, Any]] | None) -> pd.DataFrame:
    """``llm_calls`` rows -> one row per call with numeric ``tier``, tokens (``tokens`` = prompt +
    completion), ``cost`` (float) and ``latency_ms``."""
    frame = pd.DataFrame([dict(c) for c in calls or []], columns=[c for c in CALL_COLUMNS if c != "tokens"])
    for column in ("id", "tier", "prompt_tokens", "completion_tokens", "latency_ms"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype(int)
    frame["cost"] = pd.to_numeric(frame["cost"].map(_float), errors="coerce").fillna(0.0).astype(float)
    frame["tokens"] = frame["prompt_tokens"] + frame["completion_tokens"]
    return frame[list(CALL_COLUMNS)]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)  # Numeric columns come back as Decimal


TURN_COLUMNS = (
    "conversation", "conversation_id", "session_index", "turn_index", "tenant_id", "user_id", "started_at",
    "channel", "model_variant", "intent", "intent_confidence", "handler", "rule", "outcome", "latency_ms",
    "tier_used", "cache", "ticket_id", "escalated", "llm_call_ids", "llm_calls", "cost", "tokens",
)  # fmt: skip


def turn_frame(records: Sequence[Mapping[str, Any]], calls: pd.DataFrame) -> pd.DataFrame:
    """One row per record, with its ``conversation`` key, ``escalated`` (handled as ``handoff`` or names a
    ticket), and the ids (``llm_call_ids``), count, ``cost`` and ``tokens`` of the calls it names that are in
    ``calls`` (a call retention deleted counts as none)."""
    if not records:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TURN_COLUMNS})
    cost = dict(zip(calls["id"], calls["cost"], strict=True))
    tokens = dict(zip(calls["id"], calls["tokens"], strict=True))
    rows = []
    for record in records:
        ids = [int(i) for i in record.get("llm_call_ids") or [] if int(i) in cost]
        rows.append({
            **{c: record.get(c) for c in TURN_COLUMNS},
            "conversation": f"{record['conversation_id']}#{record['session_index']}",
            "escalated": record.get("handler") == HANDOFF or record.get("ticket_id") is not None,
            "llm_call_ids": ids,
            "llm_calls": len(ids),
            "cost": float(sum(cost[i] for i in ids)),
            "tokens": int(sum(tokens[i] for i in ids)),
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(TURN_COLUMNS))
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)  # naive from SQLite means UTC
    frame["latency_ms"] = pd.to_numeric(frame["latency_ms"], errors="coerce").astype(float)
    frame["cache"] = frame["cache"].fillna("")
    return frame.sort_values(["conversation_id", "turn_index"], kind="stable").reset_index(drop=True)


CONVERSATION_COLUMNS = (
    "conversation", "conversation_id", "session_index", "tenant_id", "user_id", "start", "day", "channel",
    "model_variant", "intent", "user_turns", "fallback_turns", "idk_turns", "error_turns", "escalated",
    "cost", "tokens", "llm_calls",
)  # fmt: skip


def conversation_frame(turns: pd.DataFrame) -> pd.DataFrame:
    """One row per conversation: its first turn's ``start`` (and UTC ``day``), ``channel``, ``model_variant``
    and ``intent``,
    counts of its turns by handler, ``escalated``, and the sums of its turns' LLM ``cost``, ``tokens`` and
    ``llm_calls``."""
    if turns.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CONVERSATION_COLUMNS})
    grouped = turns.groupby("conversation", sort=False)
    first = grouped.first(skipna=False)  # the first turn's values (turns are in turn order)
    out = pd.DataFrame({
        "conversation_id": first["conversation_id"], "session_index": first["session_index"],
        "tenant_id": first["tenant_id"], "user_id": first["user_id"], "start": grouped["started_at"].min(),
        "channel": first["channel"], "model_variant": first["model_variant"], "intent": first["intent"],
        "user_turns": grouped.size(),
        "fallback_turns": grouped["handler"].agg(lambda h: int(h.eq(FALLBACK).sum())),
        "idk_turns": grouped["handler"].agg(lambda h: int(h.eq(IDK).sum())),
        "error_turns": grouped["handler"].agg(lambda h: int(h.eq(ERROR).sum())),
        "escalated": grouped["escalated"].any().astype(bool), "cost": grouped["cost"].sum().astype(float),
        "tokens": grouped["tokens"].sum().astype(int), "llm_calls": grouped["llm_calls"].sum().astype(int),
    })  # fmt: skip
    out["day"] = out["start"].dt.date
    return out.reset_index()[list(CONVERSATION_COLUMNS)]


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
    idk_turns: int
    idk_rate: float | None
    error_turns: int
    error_rate: float | None
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


def kpis(convs: pd.DataFrame, turns: pd.DataFrame, unattributed_calls: int = 0) -> Kpis:
    """Headline figures over the conversations ``convs`` and their ``turns``."""
    n, user_turns = len(convs), len(turns)
    escalated = int(convs["escalated"].sum()) if n else 0
    handled = turns["handler"].value_counts() if user_turns else pd.Series(dtype=int)
    fallback, idk, error = (int(handled.get(h, 0)) for h in (FALLBACK, IDK, ERROR))
    latency = turns["latency_ms"].dropna().astype(float).tolist() if user_turns else []
    costs = convs["cost"].astype(float).tolist() if n else []
    tokens = convs["tokens"].astype(float).tolist() if n else []
    return Kpis(
        conversations=n,
        user_turns=user_turns,
        contained=n - escalated,
        escalated=escalated,
        containment_rate=ratio(n - escalated, n),
        escalation_rate=ratio(escalated, n),
        fallback_turns=fallback,
        fallback_rate=ratio(fallback, user_turns),
        idk_turns=idk,
        idk_rate=ratio(idk, user_turns),
        error_turns=error,
        error_rate=ratio(error, user_turns),
        cost_total=float(sum(costs)),
        cost_mean=float(np.mean(costs)) if costs else None,
        cost_p50=percentile(costs, 50),
        cost_p95=percentile(costs, 95),
        tokens_total=int(sum(tokens)),
        tokens_mean=float(np.mean(tokens)) if tokens else None,
        tokens_p50=percentile(tokens, 50),
        tokens_p95=percentile(tokens, 95),
        latency_p50_ms=percentile(latency, 50),
        latency_p95_ms=percentile(latency, 95),
        llm_calls=int(convs["llm_calls"].sum()) if n else 0,
        unattributed_llm_calls=unattributed_calls,
    )


def latency_by_handler(turns: pd.DataFrame) -> pd.DataFrame:
    """Per handler with a bot reply (vocabulary order): ``turns`` measured, ``p50_ms``, ``p95_ms``."""
    answered = turns[turns["latency_ms"].notna()] if len(turns) else turns
    present = set(answered["handler"]) if len(answered) else set()
    rows = []
    for handler in [*HANDLER_ORDER, *sorted(present - set(HANDLER_ORDER))]:
        values = answered.loc[answered["handler"].eq(handler), "latency_ms"].astype(float).tolist()
        if values:
            rows.append({"handler": handler, "turns": len(values), "p50_ms": percentile(values, 50),
                         "p95_ms": percentile(values, 95)})  # fmt: skip
    return pd.DataFrame(rows, columns=["handler", "turns", "p50_ms", "p95_ms"])


COST_COLUMNS = (
    "tier", "model", "calls", "ok_calls", "prompt_tokens", "completion_tokens", "tokens", "cost",
    "cost_per_conversation", "latency_ms_mean",
)  # fmt: skip


def cost_by_tier_model(calls: pd.DataFrame, n_conversations: int) -> pd.DataFrame:
    """Per (tier, model) of ``calls``: ``calls``, ``ok_calls``, tokens, ``cost``, ``cost_per_conversation``
    (over all ``n_conversations``) and mean ``latency_ms``."""
    if calls.empty:
        return pd.DataFrame(columns=list(COST_COLUMNS))
    grouped = calls.assign(ok=calls["outcome"].eq(OK_OUTCOME)).groupby(["tier", "model"])
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
    return out[list(COST_COLUMNS)]


ALWAYS_LISTED = ("tier 0", "tier 1", "tier 2", "cache")


def answered_by(turn: Mapping[str, Any]) -> str:
    """What gave a knowledge turn its answer: ``cache``, ``tier <n>``, or ``unrecorded``."""
    if turn.get("cache"):
        return "cache"
    tier = turn.get("tier_used")
    return "unrecorded" if tier is None or pd.isna(tier) else f"tier {int(tier)}"


def answers_by_tier(turns: pd.DataFrame) -> pd.DataFrame:
    """Knowledge turns by what answered them (:func:`answered_by`): ``answered_by``, ``answers``, ``share``;
    tiers 0-2 and the cache always listed."""
    knowledge = turns[turns["handler"].eq(KNOWLEDGE)] if len(turns) else turns
    counts = pd.Series([answered_by(t) for t in knowledge.to_dict("records")], dtype=object).value_counts()
    labels = [*ALWAYS_LISTED, *sorted(set(counts.index) - set(ALWAYS_LISTED))]
    total = int(counts.sum())
    return pd.DataFrame(
        [{"answered_by": k, "answers": int(counts.get(k, 0)), "share": ratio(int(counts.get(k, 0)), total)}
         for k in labels],
        columns=["answered_by", "answers", "share"],
    )  # fmt: skip


def handler_funnel(turns: pd.DataFrame) -> pd.DataFrame:
    """Where user turns went, per handler (vocabulary order, then any other): ``turns``, ``share`` of all
    turns, ``conversations`` that had at least one such turn and their ``conversation_share``."""
    columns = ["handler", "turns", "share", "conversations", "conversation_share"]
    if turns.empty:
        return pd.DataFrame(columns=columns)
    n_turns, n_convs = len(turns), turns["conversation"].nunique()
    present = set(turns["handler"])
    rows = []
    for handler in [*HANDLER_ORDER, *sorted(present - set(HANDLER_ORDER))]:
        mine = turns[turns["handler"].eq(handler)]
        if len(mine):
            convs = mine["conversation"].nunique()
            rows.append({"handler": handler, "turns": len(mine), "share": len(mine) / n_turns,
                         "conversations": convs, "conversation_share": convs / n_convs})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


SEGMENT_COLUMNS = ("conversations", "contained", "escalated", "containment_rate", "escalation_rate")


def _segments(rows: pd.DataFrame, column: str, unit: str) -> pd.DataFrame:
    """Per value of ``column`` (most frequent first): how many ``unit`` rows, escalated, and the rates."""
    columns = [column, unit, "contained", "escalated", "containment_rate", "escalation_rate"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    keys = rows[column].fillna("").astype(str).replace("", NONE_LABEL)
    grouped = rows["escalated"].astype(bool).groupby(keys)
    out = pd.DataFrame({unit: grouped.size(), "escalated": grouped.sum().astype(int)})
    out["contained"] = out[unit] - out["escalated"]
    out["containment_rate"] = out["contained"] / out[unit]
    out["escalation_rate"] = out["escalated"] / out[unit]
    out = out.rename_axis(column).reset_index()
    return out.sort_values([unit, column], ascending=[False, True], kind="stable")[columns].reset_index(
        drop=True
    )


def containment_by_channel(convs: pd.DataFrame) -> pd.DataFrame:
    """Conversations by the channel of their first turn: ``channel``, ``conversations``, ``contained``,
    ``escalated`` and the rates."""
    return _segments(convs, "channel", "conversations")


def containment_by_variant(convs: pd.DataFrame) -> pd.DataFrame:
    """Conversations by the model variant (champion, challenger) that answered their first turn: as
    :func:`containment_by_channel`, to compare a canary with the champion on live traffic."""
    return _segments(convs, "model_variant", "conversations")


def escalation_by_intent(turns: pd.DataFrame) -> pd.DataFrame:
    """User turns by intent: ``intent``, ``turns``, ``contained``, ``escalated`` (handed to a person) and
    the rates."""
    return _segments(turns, "intent", "turns")


DAILY_COLUMNS = (
    "day", "conversations", "escalated", "containment_rate", "escalation_rate", "user_turns",
    "fallback_turns", "fallback_rate", "idk_rate", "error_rate", "cost_total", "cost_per_conversation",
    "tokens_per_conversation", "latency_p50_ms", "latency_p95_ms",
)  # fmt: skip
COUNT_COLUMNS = ("day", "conversations", "escalated", "user_turns", "fallback_turns")


def daily(convs: pd.DataFrame, turns: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """One row per UTC day of ``start``..``end`` (days without conversations included: 0 conversations,
    rates NaN): the KPIs of the conversations that started that day and of their turns."""
    day_of = convs.set_index("conversation")["day"] if len(convs) else pd.Series(dtype=object)
    turn_days = turns["conversation"].map(day_of) if len(turns) else pd.Series(dtype=object)
    rows = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        k = kpis(
            convs[convs["day"].eq(day)] if len(convs) else convs,
            turns[turn_days.eq(day)] if len(turns) else turns,
        )
        rows.append({
            "day": pd.Timestamp(day), "conversations": k.conversations, "escalated": k.escalated,
            "containment_rate": k.containment_rate, "escalation_rate": k.escalation_rate,
            "user_turns": k.user_turns, "fallback_turns": k.fallback_turns, "fallback_rate": k.fallback_rate,
            "idk_rate": k.idk_rate, "error_rate": k.error_rate, "cost_total": k.cost_total,
            "cost_per_conversation": k.cost_mean, "tokens_per_conversation": k.tokens_mean,
            "latency_p50_ms": k.latency_p50_ms, "latency_p95_ms": k.latency_p95_ms,
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(DAILY_COLUMNS))
    figures = [c for c in DAILY_COLUMNS if c not in COUNT_COLUMNS]
    frame[figures] = frame[figures].astype(float)
    return frame


@dataclass(frozen=True)
class Analytics:
    """Everything the Analytics page shows for one tenant and date range."""

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
    containment_by_channel: pd.DataFrame
    containment_by_variant: pd.DataFrame
    escalation_by_intent: pd.DataFrame


def compute(
    records: Sequence[Mapping[str, Any]],
    llm_calls: Iterable[Mapping[str, Any]] | None = None,
    *,
    tenant: str,
    start: date,
    end: date,
    unattributed_calls: int = 0,
) -> Analytics:
    """All figures of ``tenant``'s conversations that started on UTC days ``start``..``end``.

    ``records`` may hold other tenants and conversations of other days (they are left out here);
    ``llm_calls`` are the calls the records name, by ``id`` (others are ignored); ``unattributed_calls``
    is the count of the tenant's calls in range that no record names (the loader's, shown apart)."""
    low, high = day_bounds(start, end)
    calls = call_frame(llm_calls)
    turns = turn_frame([r for r in records if r.get("tenant_id") == tenant], calls)
    convs = conversation_frame(turns)
    if len(convs):
        convs = convs[(convs["start"] >= low) & (convs["start"] < high)].reset_index(drop=True)
        turns = turns[turns["conversation"].isin(set(convs["conversation"]))].reset_index(drop=True)
    named = {i for ids in turns["llm_call_ids"] for i in ids}
    used = calls[calls["id"].isin(named)].reset_index(drop=True)
    return Analytics(
        tenant=tenant,
        start=start,
        end=end,
        kpis=kpis(convs, turns, unattributed_calls),
        conversations=convs,
        turns=turns,
        daily=daily(convs, turns, start, end),
        latency_by_handler=latency_by_handler(turns),
        cost_by_tier_model=cost_by_tier_model(used, len(convs)),
        answers_by_tier=answers_by_tier(turns),
        containment_by_channel=containment_by_channel(convs),
        containment_by_variant=containment_by_variant(convs),
        escalation_by_intent=escalation_by_intent(turns),
    )
