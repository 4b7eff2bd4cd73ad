"""End to end: real REST turns to the real bot, the turn recorder syncs the bot's tracker store into turn
records, then the analytics computed on those records and the bot's stores. The knowledge base is the default
tenant's, so the turns are sent as ``acme`` with sender ids of this test's own; the other e2e tests'
conversations are in the tenant's figures too, so per-conversation checks select this test's senders."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from app.analytics.loaders import load_analytics
from app.analytics.recorder import recorder_for
from app.data.db import get_engine
from app.data.schema import llm_calls

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TENANT = "acme"  # the tenant the pipeline indexed the knowledge base for (params base.tenant)
VAGUE = ["details", "info", "box", "paper", "when", "qzxv bnmt plork"]  # as in test_conversation.py


def say(bot, sender: str, text: str) -> tuple[list[dict], float]:
    """Send one turn as ``sender`` of :data:`TENANT`; the bot's messages and the round trip in seconds."""
    started = time.time()
    headers = {"X-Tenant-Id": TENANT, **bot.settings.channel_headers}
    reply = httpx.post(bot.settings.webhook_url, json={"sender": sender, "message": text},
                       headers=headers, timeout=60)  # fmt: skip
    elapsed = time.time() - started
    assert reply.status_code == 200, reply.text
    return reply.json(), elapsed


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


# Personal answers (built from the user's order) are never cached: this one always reaches an LLM tier.
LLM_QUESTION = "Is the kettle I got in order ORD-10042 still under warranty after 14 months?"


def test_metrics_on_the_bots_real_tracker_store(bot, llm):
    llm.reset()  # no rules or faults left over from other tests
    llm.add_rule(quote=1)  # a grounded, cited answer (what the grounding check lets through)
    run = uuid.uuid4().hex[:6]
    round_trips: dict[str, float] = {}

    def turn(sender: str, text: str) -> list[dict]:
        """One turn; the longest round trip of each conversation is kept to bound its latencies."""
        messages, elapsed = say(bot, sender, text)
        round_trips[f"{TENANT}:{sender}"] = max(round_trips.get(f"{TENANT}:{sender}", 0.0), elapsed)
        return messages

    helped = f"helped-{run}"
    assert "Northwind Goods assistant" in texts(turn(helped, "hello there"))
    assert "Source:" in texts(turn(helped, "How long does delivery to Germany take?"))

    fallback_sender = None
    for number, text in enumerate(VAGUE):  # the first vague message the NLU is unsure about
        sender = f"vague-{run}-{number}"
        if "Did you mean" in texts(turn(sender, text)):
            fallback_sender = sender
            break
    assert fallback_sender is not None, f"none of {VAGUE} started the two-stage fallback"
    clarified = f"clarified-{run}"  # "Did you mean ...?", then the user picks the first suggestion
    first = turn(clarified, text)
    assert "Did you mean" in texts(first)
    reply = texts(turn(clarified, first[0]["buttons"][0]["payload"]))
    assert reply and "Did you mean" not in reply and "in other words" not in reply

    tiered = f"tiered-{run}"
    assert texts(turn(tiered, LLM_QUESTION))

    handed = f"handed-{run}"
    assert "ticket #" in texts(turn(handed, "I want to talk to a human agent"))

    senders = set(round_trips)
    recorder_for(bot.settings).sync()  # what the stack's recorder service does every second
    today = datetime.now(UTC).date()
    result = load_analytics(bot.settings.db_url, TENANT, today - timedelta(days=1), today + timedelta(days=1))
    convs = result.conversations[result.conversations["conversation_id"].isin(senders)]
    turns = result.turns[result.turns["conversation_id"].isin(senders)]
    assert set(convs["conversation_id"]) == senders and len(convs) == len(senders)  # one session per sender
    assert result.kpis.conversations >= len(senders)  # (a rerun of this test adds its own)

    by_sender = turns.groupby("conversation_id")
    assert list(by_sender.get_group(f"{TENANT}:{helped}")["handler"]) == ["chitchat", "knowledge"]
    assert list(by_sender.get_group(f"{TENANT}:{helped}")["intent"]) == ["greet", "ask_delivery"]
    assert list(by_sender.get_group(f"{TENANT}:{fallback_sender}")["handler"]) == ["fallback"]
    # Rasa replays the clarified message as a user event of its own: still two turns, one a fallback
    picked = list(by_sender.get_group(f"{TENANT}:{clarified}")["handler"])
    assert len(picked) == 2 and picked[0] == "fallback" and picked[1] != "fallback"
    assert result.kpis.fallback_turns >= 2 and 0 < result.kpis.fallback_rate < 1

    escalated = set(convs.loc[convs["escalated"], "conversation_id"])
    assert escalated == {f"{TENANT}:{handed}"}
    assert list(by_sender.get_group(f"{TENANT}:{handed}")["handler"]) == ["handoff"]
    assert not turns["handler"].eq("error").any()

    # every turn got a reply: its latency is positive and within what the client measured for the request
    assert turns["latency_ms"].notna().all()
    for row in turns.itertuples():
        assert 0 < row.latency_ms <= (round_trips[row.conversation_id] + 0.05) * 1000, row
    handlers = result.latency_by_handler.set_index("handler")
    assert {"chitchat", "knowledge", "fallback", "handoff"} <= set(handlers.index)
    assert (handlers["p50_ms"] > 0).all() and (handlers["p95_ms"] >= handlers["p50_ms"]).all()
    assert 0 < result.kpis.latency_p50_ms <= result.kpis.latency_p95_ms < 60_000

    # LLM cost: the figures are the store's rows of these conversations
    with get_engine(bot.settings.db_url).connect() as conn:
        stored = conn.execute(
            sa.select(
                llm_calls.c.conversation_id, llm_calls.c.tier, llm_calls.c.outcome, llm_calls.c.cost
            ).where(llm_calls.c.tenant_id == TENANT, llm_calls.c.conversation_id.in_(senders))
        ).all()
    assert int(convs["llm_calls"].sum()) == len(stored)
    assert float(convs["cost"].sum()) == pytest.approx(sum(float(row.cost) for row in stored))
    mine = [row for row in stored if row.conversation_id == f"{TENANT}:{tiered}"]
    answered_at = max(row.tier for row in mine if row.outcome == "ok")
    assert answered_at >= 1
    cost = convs.set_index("conversation_id").loc[f"{TENANT}:{tiered}", "cost"]
    assert cost == pytest.approx(sum(float(row.cost) for row in mine)) and cost > 0
    tiered_turn = by_sender.get_group(f"{TENANT}:{tiered}").iloc[0]
    assert tiered_turn["handler"] == "knowledge" and tiered_turn["tier_used"] == answered_at
    tiers = result.answers_by_tier.set_index("answered_by")["answers"]
    assert tiers.loc[f"tier {answered_at}"] >= 1
    knowledge_turns = int(result.turns["handler"].eq("knowledge").sum())
    assert int(tiers.sum()) == knowledge_turns >= 2
    assert result.kpis.cost_total > 0 and result.kpis.tokens_total > 0
