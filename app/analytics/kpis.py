"""The figures of one tenant and date range: headline KPIs, daily series and the page's tables.

:func:`compute` runs everything: tracker events -> conversations and turns (:mod:`app.analytics.sessions`),
tickets and LLM calls attributed to them (:mod:`app.analytics.attribution`), then the aggregates here.
Rates are None when there is nothing to divide (:func:`app.analytics.stats.ratio`); percentiles are linear
(:func:`app.analytics.stats.percentile`).

Definitions (the analytics contract, also in docs/analytics.md):

- **Answer tier of a knowledge turn**: the highest tier of a successful (``outcome == "ok"``) LLM call made
  during the turn; tier 0 otherwise (extractive, a cache hit, or "I don't know").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from app.analytics.attribution import attach_llm_calls, attach_tickets, prepare_llm_calls
from app.analytics.frames import LLM_CALL_COLUMNS, TICKET_COLUMNS, as_frame
from app.analytics.handlers import HANDLERS, NO_HANDLER
from app.analytics.sessions import conversation_windows, conversations, prepare_events, turns
from app.analytics.stats import percentile, ratio

OK_OUTCOME = "ok"


def day_bounds(start: date, end: date) -> tuple[float, float]:
    """Inclusive UTC days ``start``..``end`` -> the epoch range [start 00:00, day after end 00:00)."""
    if end < start:
        raise ValueError(f"the date range ends ({end}) before it starts ({start})")
    low = datetime(start.year, start.month, start.day, tzinfo=UTC)
    high = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return low.timestamp(), high.timestamp()


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

    ticket_rows = as_frame(tickets, TICKET_COLUMNS)
    if "tenant_id" in ticket_rows.columns:
        ticket_rows = ticket_rows[ticket_rows["tenant_id"].eq(tenant)]
    convs = attach_tickets(convs, windows, ticket_rows)

    call_rows = as_frame(llm_calls, LLM_CALL_COLUMNS)
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
