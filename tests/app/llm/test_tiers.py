"""Tier selection, escalation and degradation against the test LLM server, with cost accounting in the store."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from app.data.db import get_engine, upgrade
from app.llm.client import TierClient
from app.llm.config import BreakerConfig, RetryConfig, TiersConfig
from app.llm.policy import Decision, Features, RulePolicy
from app.llm.tiers import AnswerRequest, TieredAnswerer, build_messages
from app.llm.usage import UsageRecorder
from app.reliability.degradation import DegradationController, DegradationLevel, DegradationSettings
from tests.llm_server import LLMTestServer, count_tokens

from .conftest import CTX, FAST_RETRY, ListSink, tier_config

PASSAGES = ["Refunds are paid back to the original payment method within 5 working days."]
SURE = Features(retrieval_confidence=0.8, retrieval_margin=0.2, supporting_docs=2, question_words=5)
UNSURE = Features(retrieval_confidence=0.45, retrieval_margin=0.01, supporting_docs=1, question_words=5)


def request(question: str = "How long do refunds take?", features: Features | None = SURE) -> AnswerRequest:
    return AnswerRequest(question, PASSAGES, CTX, features)


def answerer(
    llm: LLMTestServer,
    extractive=lambda r: "Refunds take 5 working days.",
    sink: ListSink | None = None,
    breaker: BreakerConfig | None = None,
    tiers: tuple[int, ...] = (1, 2),
) -> TieredAnswerer:
    clients = {
        t: TierClient(
            t, tier_config(llm, t), retry=FAST_RETRY, breaker=breaker or BreakerConfig(fail_max=2), usage=sink
        )
        for t in tiers
    }
    return TieredAnswerer(clients, extractive, RulePolicy(available=(0, *tiers)))


def test_sure_retrieval_is_answered_at_tier_0_without_any_llm_call(llm: LLMTestServer) -> None:
    outcome = answerer(llm).answer(request())
    assert (outcome.tier, outcome.text) == (0, "Refunds take 5 working days.")
    assert not outcome.escalated and not outcome.degraded
    assert llm.request_counts == {}


def test_tier_0_not_confident_escalates_to_tier_1(llm: LLMTestServer) -> None:
    llm.add_rule(
        model="small", pattern="refunds", content="About 5 working days, to your original payment method."
    )
    outcome = answerer(llm, extractive=lambda r: None).answer(request())
    assert outcome.tier == 1 and outcome.escalated
    assert outcome.text.startswith("About 5 working days")
    assert [(a.tier, a.outcome) for a in outcome.attempts] == [(0, "not_confident"), (1, "ok")]
    assert llm.request_counts == {"small": 1}


def test_policy_picks_tier_1_for_fair_retrieval(llm: LLMTestServer) -> None:
    outcome = answerer(llm).answer(request(features=UNSURE))
    assert outcome.decision.tier == 1 and outcome.tier == 1
    assert llm.request_counts == {"small": 1}
    # the prompt carries the passages and the question
    sent = llm.requests[0]["messages"]
    assert sent == build_messages(request(features=UNSURE))


def test_invalid_tier_1_output_escalates_to_tier_2(llm: LLMTestServer) -> None:
    llm.add_rule(model="small", content="I don't know.")
    llm.add_rule(model="large", content="Refunds are paid within 5 working days.")
    outcome = answerer(llm).answer(request(features=UNSURE))
    assert (outcome.tier, outcome.text) == (2, "Refunds are paid within 5 working days.")
    assert [(a.tier, a.outcome) for a in outcome.attempts] == [(1, "invalid"), (2, "ok")]


def test_a_cut_off_answer_is_invalid(llm: LLMTestServer) -> None:
    llm.add_rule(model="small", content="word " * 500)  # longer than the tier's max_tokens (400)
    llm.add_rule(model="large", content="Short and complete.")
    outcome = answerer(llm).answer(request(features=UNSURE))
    assert outcome.tier == 2
    assert outcome.attempts[0].detail == "answer cut off at the token limit"


def test_failing_llm_tiers_degrade_to_the_extractive_answer(llm: LLMTestServer) -> None:
    llm.set_faults(error_rate=1.0)
    outcome = answerer(llm).answer(request(features=UNSURE))
    assert (outcome.tier, outcome.degraded) == (0, True)
    assert [(a.tier, a.outcome) for a in outcome.attempts] == [
        (1, "server_error"),
        (2, "server_error"),
        (0, "ok"),
    ]


def test_nothing_answers_gives_no_text(llm: LLMTestServer) -> None:
    llm.set_faults(error_rate=1.0)
    outcome = answerer(llm, extractive=lambda r: None).answer(request(features=UNSURE))
    assert outcome.text is None and outcome.tier is None and outcome.degraded


def test_an_unconfigured_tier_is_skipped(llm: LLMTestServer) -> None:
    outcome = answerer(llm, tiers=(2,)).answer(request(), decision=Decision(1, "forced for the test"))
    assert outcome.tier == 2
    assert [(a.tier, a.outcome) for a in outcome.attempts] == [(1, "unavailable"), (2, "ok")]


def test_max_tier_caps_escalation(llm: LLMTestServer) -> None:
    outcome = answerer(llm, extractive=lambda r: None).answer(request(), max_tier=0)
    assert outcome.text is None
    assert llm.request_counts == {}


def test_an_extractive_function_that_raises_is_a_tier_failure(llm: LLMTestServer) -> None:
    def broken(r):
        raise RuntimeError("index unreadable")

    outcome = answerer(llm, extractive=broken).answer(request())
    assert outcome.tier == 1
    assert outcome.attempts[0].outcome == "error"


def test_a_request_needs_a_question_and_a_decision_source(llm: LLMTestServer) -> None:
    with pytest.raises(ValueError, match="question"):
        AnswerRequest("  ", PASSAGES, CTX)
    with pytest.raises(ValueError, match="decision"):
        answerer(llm).answer(request(features=None))


def test_tier_1_outage_opens_its_breaker_degrades_and_recovers(llm: LLMTestServer) -> None:
    """Tier 1 fails -> its breaker opens -> answers continue at tier 2 with no calls to tier 1 and the
    bot degrades to the extractive tier when tier 2 fails too; recovery closes the breaker."""
    sink = ListSink()
    tiered = answerer(llm, sink=sink, breaker=BreakerConfig(fail_max=2, reset_timeout_s=0.3))
    controller = DegradationController(
        DegradationSettings(), breaker_states=lambda prefix: {f"llm:{t}": s for t, s in tiered.breaker_states().items()},
        flag=lambda tenant: "auto",
    )  # fmt: skip
    llm.set_faults(model="small", error_rate=1.0)
    for _ in range(2):
        assert tiered.answer(request(features=UNSURE)).tier == 2
    assert tiered.breaker_states() == {1: "open", 2: "closed"}
    assert controller.level() is DegradationLevel.FULL  # tier 2 still works

    small_requests = llm.request_counts["small"]
    assert tiered.answer(request(features=UNSURE)).tier == 2
    assert llm.request_counts["small"] == small_requests  # open breaker: tier 1 not even tried

    llm.set_faults(model="large", error_rate=1.0)  # now tier 2 fails as well
    for _ in range(2):
        outcome = tiered.answer(request(features=UNSURE))
        assert (outcome.tier, outcome.degraded) == (0, True)
    assert tiered.breaker_states() == {1: "open", 2: "open"}
    assert controller.level() is DegradationLevel.REDUCED

    llm.clear_model_faults("small")
    llm.clear_model_faults("large")
    deadline = time.monotonic() + 10
    while set(tiered.breaker_states().values()) != {"half-open"}:
        assert time.monotonic() < deadline, "breakers never became half-open"
        time.sleep(0.05)
    assert tiered.answer(request(features=UNSURE)).tier == 1
    assert tiered.breaker_states()[1] == "closed"
    assert controller.level() is not DegradationLevel.REDUCED  # recovered by itself
    assert ("breaker_open" in {c.outcome for c in sink.calls}) and sink.calls[-1].outcome == "ok"


def test_every_call_is_recorded_with_tokens_and_cost(llm: LLMTestServer, db_url: str) -> None:
    upgrade(db_url)
    recorder = UsageRecorder(get_engine(db_url))
    llm.add_rule(model="small", content="I don't know.")
    llm.add_rule(model="large", content="Refunds are paid back within 5 working days [1].")
    config = TiersConfig(
        endpoints={1: tier_config(llm, 1), 2: tier_config(llm, 2)},
        retry=RetryConfig(attempts=1),
    )
    tiered = TieredAnswerer.from_config(config, lambda r: None, RulePolicy(), usage=recorder)
    outcome = tiered.answer(request(features=UNSURE))
    assert outcome.tier == 2

    rows = recorder.calls("acme")
    assert [(r["tier"], r["model"], r["outcome"]) for r in rows] == [
        (1, "small", "invalid"),
        (2, "large", "ok"),
    ]
    prompt = count_tokens("\n".join(m["content"] for m in build_messages(request())))
    for row, (price_in, price_out), reply in zip(
        rows, [(Decimal("0.5"), Decimal("1.5")), (Decimal("5"), Decimal("15"))],
        ["I don't know.", "Refunds are paid back within 5 working days [1]."], strict=True,
    ):  # fmt: skip
        completion = count_tokens(reply)
        assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)
        assert Decimal(row["cost"]) == ((price_in * prompt + price_out * completion) / 1000).quantize(
            Decimal("1e-8")
        )
        assert (row["tenant_id"], row["user_id"], row["conversation_id"]) == ("acme", "alice", "acme:alice")
        assert row["latency_ms"] >= 0 and row["created_at"] is not None
    totals = recorder.totals("acme")
    assert totals.calls == 2 and totals.cost == sum(Decimal(r["cost"]) for r in rows)
    assert recorder.totals("other-tenant").calls == 0
