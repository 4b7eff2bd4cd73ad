"""Conversation analytics for one tenant and date range: containment, escalation, fallback, "I don't know"
and error rates, cost and tokens per conversation, latency by handler, answers by tier, containment by channel
and model variant, and escalation by intent.

Read from the turn records (``app.analytics.turn_records``, kept up to date by the recorder service) and the
LLM calls they name; the definitions are in ``app/analytics/kpis.py`` and docs/analytics.md. Cached for a
short while so that a busy page does not query the store on every widget change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import altair as alt
import sqlalchemy as sa
import streamlit as st

from app.analytics.formatting import format_cost, format_ms, format_number, format_rate
from app.analytics.kpis import Analytics
from app.analytics.loaders import list_tenants, load_analytics
from app.settings import get_settings

CACHE_TTL_S = 30  # fresh enough for a demo, and a rerun storm hits the store at most twice a minute
DEFAULT_DAYS = 30
TENANT, DATES = "analytics_tenant", "analytics_dates"
RATES = {
    "containment_rate": "containment", "escalation_rate": "escalation", "fallback_rate": "fallback",
    "idk_rate": "I don't know", "error_rate": "error",
}  # fmt: skip


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def cached_tenants(store: str, default_tenant: str) -> list[str]:
    return list_tenants(store, default_tenant)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Computing the metrics…")
def cached_analytics(store: str, tenant: str, start: date, end: date) -> Analytics:
    return load_analytics(store, tenant, start, end)


def date_range(today: date) -> tuple[date, date]:
    """The sidebar's date range (the last 30 days by default); one date picked so far means that day."""
    picked = st.sidebar.date_input(
        "Dates (UTC)", value=(today - timedelta(days=DEFAULT_DAYS - 1), today), key=DATES,
        help="Conversations that started on these days (UTC).",
    )  # fmt: skip
    if isinstance(picked, date):
        return picked, picked
    picked = tuple(picked)
    return (picked[0], picked[-1]) if picked else (today, today)


def render_kpis(result: Analytics) -> None:
    """The headline tiles: each value is formatted by app.analytics.formatting, as the tests expect."""
    k = result.kpis
    row = st.columns(5)
    row[0].metric("Conversations", format_number(k.conversations), help="Rasa sessions with a user turn.")
    row[1].metric(
        "Containment",
        format_rate(k.containment_rate),
        help="Conversations that never reached a human (no turn handled as handoff, no ticket).",
    )
    row[2].metric("Escalation", format_rate(k.escalation_rate), help="Conversations handed to a human.")
    row[3].metric(
        "Fallback rate",
        format_rate(k.fallback_rate),
        help="User turns handled as fallback: the bot was unsure what was meant and asked.",
    )
    row[4].metric(
        "I don't know rate",
        format_rate(k.idk_rate),
        help="User turns where the bot said it does not know and offered a person.",
    )
    row = st.columns(5)
    row[0].metric("Error rate", format_rate(k.error_rate), help="User turns the bot failed to answer at all.")
    row[1].metric(
        "Cost / conversation",
        format_cost(k.cost_mean),
        help="Mean LLM cost per conversation (conversations without LLM calls count as 0).",
    )
    row[2].metric(
        "Tokens / conversation", format_number(k.tokens_mean), help="Mean prompt + completion tokens."
    )
    row[3].metric("Latency p50", format_ms(k.latency_p50_ms), help="User message -> first bot message.")
    row[4].metric("Latency p95", format_ms(k.latency_p95_ms))
    st.caption(
        f'{k.user_turns} user turns · {k.fallback_turns} fallback · {k.idk_turns} "I don\'t know" · '
        f"{k.error_turns} errors · {k.escalated} escalated · "
        f"cost p50 {format_cost(k.cost_p50)}, p95 {format_cost(k.cost_p95)}, total {format_cost(k.cost_total)} · "
        f"tokens p50 {format_number(k.tokens_p50)}, p95 {format_number(k.tokens_p95)} · "
        f"{k.llm_calls} LLM calls"
        + (f" ({k.unattributed_llm_calls} more outside any user turn)" if k.unattributed_llm_calls else "")
    )


def render_daily(result: Analytics) -> None:
    st.subheader("Per day")
    daily = result.daily
    left, right = st.columns(2)
    left.altair_chart(
        alt.Chart(daily, title="Conversations").mark_bar().encode(
            x=alt.X("day:T", title=None), y=alt.Y("conversations:Q", title="conversations"),
            tooltip=["day:T", "conversations:Q", "escalated:Q", "user_turns:Q"],
        ),
        width="stretch",
    )  # fmt: skip
    rates = daily.melt(id_vars="day", value_vars=list(RATES), var_name="rate", value_name="value")
    rates["rate"] = rates["rate"].map(RATES)
    right.altair_chart(
        alt.Chart(rates.dropna(subset=["value"]), title="Rates per day").mark_line(
            point=True
        ).encode(
            x=alt.X("day:T", title=None), y=alt.Y("value:Q", title="rate", axis=alt.Axis(format="%")),
            color=alt.Color("rate:N", title=None), tooltip=["day:T", "rate:N", alt.Tooltip("value:Q", format=".1%")],
        ),
        width="stretch",
    )  # fmt: skip


def render_cost(result: Analytics) -> None:
    st.subheader("Cost and tokens per conversation")
    left, right = st.columns(2)
    left.altair_chart(
        alt.Chart(result.conversations[["cost"]], title="Cost per conversation").mark_bar().encode(
            x=alt.X("cost:Q", bin=alt.Bin(maxbins=20), title="LLM cost"), y=alt.Y("count():Q", title="conversations"),
        ),
        width="stretch",
    )  # fmt: skip
    right.altair_chart(
        alt.Chart(result.answers_by_tier, title="Knowledge answers by tier").mark_bar().encode(
            x=alt.X("answered_by:N", title=None, sort=None), y=alt.Y("answers:Q", title="answers"),
            tooltip=["answered_by:N", "answers:Q", alt.Tooltip("share:Q", format=".1%")],
        ),
        width="stretch",
    )  # fmt: skip
    st.caption(
        "Tier 0 is the extractive answer, tiers 1 and 2 the LLMs, cache the answer cache; "
        '"I don\'t know" is a handler of its own, not a tier.'
    )
    if result.cost_by_tier_model.empty:
        st.caption("No LLM calls in these conversations.")
    else:
        st.dataframe(result.cost_by_tier_model, hide_index=True)


def render_latency(result: Analytics) -> None:
    st.subheader("Latency by handler")
    frame = result.latency_by_handler
    if frame.empty:
        st.caption("No bot replies to measure.")
        return
    bars = frame.melt(id_vars=["handler", "turns"], value_vars=["p50_ms", "p95_ms"], var_name="stat",
                      value_name="ms")  # fmt: skip
    bars["stat"] = bars["stat"].str.removesuffix("_ms")
    st.altair_chart(
        alt.Chart(bars).mark_bar().encode(
            x=alt.X("handler:N", title=None), xOffset="stat:N", y=alt.Y("ms:Q", title="ms"),
            color=alt.Color("stat:N", title=None), tooltip=["handler:N", "stat:N", alt.Tooltip("ms:Q", format=",.0f"),
                                                           "turns:Q"],
        ),
        width="stretch",
    )  # fmt: skip
    st.dataframe(frame, hide_index=True)


#: The segment tables' rates, shown as percentages.
AS_PERCENT = {
    column: st.column_config.NumberColumn(format="percent")
    for column in ("containment_rate", "escalation_rate")
}


def render_segments(result: Analytics) -> None:
    st.subheader("Containment by channel and model variant, escalation by intent")
    left, right = st.columns(2)
    left.caption("Conversations by the channel of their first turn.")
    left.dataframe(result.containment_by_channel, hide_index=True, column_config=AS_PERCENT)
    right.caption("Conversations by the model variant that answered their first turn (champion, challenger).")
    right.dataframe(result.containment_by_variant, hide_index=True, column_config=AS_PERCENT)
    st.caption("User turns by intent: escalated = handled as handoff or opened a ticket.")
    st.dataframe(result.escalation_by_intent, hide_index=True, column_config=AS_PERCENT)


def main() -> None:
    st.set_page_config(page_title="Switchboard · Analytics", page_icon="📊", layout="wide")
    settings = get_settings()
    store = settings.db_url
    st.title("Analytics")
    try:
        tenants = cached_tenants(store, settings.tenant)
    except sa.exc.SQLAlchemyError as exc:
        st.error(f"The stores cannot be read: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        return
    with st.sidebar:
        tenant = st.selectbox("Tenant", tenants, key=TENANT)
        start, end = date_range(datetime.now(UTC).date())
        if st.button("Refresh", key="refresh"):
            st.cache_data.clear()
    try:
        result = cached_analytics(store, tenant, start, end)
    except sa.exc.SQLAlchemyError as exc:
        st.error(f"The stores cannot be read: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        return
    except ValueError as exc:  # e.g. a date range that ends before it starts
        st.error(str(exc))
        return
    st.caption(f"Tenant **{tenant}** · conversations started {start} – {end} (UTC) · from the turn records")
    if result.kpis.conversations == 0:
        st.info(
            f"No conversations yet for tenant {tenant} between {start} and {end}. "
            "Talk to the bot on the Chat page, then come back (the turn recorder of `make run` keeps the "
            f"records up to date; figures refresh every {CACHE_TTL_S} seconds, or press Refresh)."
        )
        return
    render_kpis(result)
    render_daily(result)
    render_cost(result)
    render_latency(result)
    render_segments(result)
    with st.expander("Conversations"):
        st.dataframe(result.conversations.sort_values("start", ascending=False), hide_index=True)
    with st.expander("User turns"):
        st.dataframe(result.turns.drop(columns=["llm_call_ids"]), hide_index=True)


main()
