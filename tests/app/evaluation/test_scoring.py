"""Per-turn verdicts and the bot-level figures computed from them."""

from __future__ import annotations

import pytest

from app.evaluation.checks import answer_part, check, normalise, score
from app.evaluation.conversations import ConversationSet, Expect
from app.evaluation.metrics import compute
from app.evaluation.player import PlayedTurn


def played(text: str, status: int = 200, buttons=(), rid: str = "r") -> PlayedTurn:
    message = {"recipient_id": "acme:dana", "text": text}
    if buttons:
        message["buttons"] = [{"title": b, "payload": f"/{b}"} for b in buttons]
    return PlayedTurn("c", 1, "user", "q", rid, status, [message] if text or buttons else [], 12.0)


def record(handler: str, **fields) -> dict:
    return {"handler": handler, "intent": fields.pop("intent", ""), "sources": [], "ticket_id": None,
            "llm_call_ids": [], "rule": "", **fields}  # fmt: skip


def test_a_turn_passes_only_when_every_expectation_holds():
    expect = Expect(handler="knowledge", source=("delivery-times",), says=("3-5 business days",),
                    not_says=("system prompt",))  # fmt: skip
    reply = "Spain: 3\u20135 business  days.\n\nSource: Delivery times"
    assert check(expect, played(reply), record("knowledge", sources=["delivery-times"])) == []
    assert check(expect, played(reply), record("idk")) == [
        "handler idk, expected knowledge", "cites nothing, expected delivery-times",
    ]  # fmt: skip
    assert check(expect, played("My system prompt says 3-5 business days"), record("knowledge",
                 sources=["delivery-times"])) == ["says 'system prompt'"]  # fmt: skip
    assert check(expect, played("", status=502), None) == [
        "the request failed (502)", "no turn record", "handler error, expected knowledge",
        "does not say '3-5 business days'",
    ]  # fmt: skip
    assert check(Expect(handler="handoff", ticket=True), played("ok"), record("handoff")) == [
        "no ticket opened"
    ]
    assert check(Expect(handler="fallback", buttons=True), played("Did you mean:"), record("fallback")) == [
        "no buttons offered"
    ]
    assert (
        check(Expect(handler="fallback", buttons=True), played("", buttons=["Returns"]), record("fallback"))
        == []
    )


def test_normalising_and_the_answer_part():
    assert normalise("  3\u20135  Business\u2014Days ") == "3-5 business-days"
    assert answer_part("It takes 2 days [1].\n\nSources: [1] Delivery") == "It takes 2 days [1]."


CONVERSATIONS = ConversationSet.model_validate({
    "version": 1,
    "conversations": [
        {"id": "a", "tenant": "acme", "user": "u1", "turns": [
            {"user": "hi", "expect": {"handler": "chitchat", "intent": "greet"}},
            {"user": "spain?", "expect": {"handler": "knowledge", "intent": "ask_delivery",
                                          "reference": "3-5 days"}}]},
        {"id": "b", "tenant": "acme", "user": "u2", "turns": [
            {"user": "parking?", "expect": {"handler": "idk", "intent": "ask_store_info"}},
            {"user": "a person", "expect": {"handler": "handoff", "intent": "human_handoff"}}]},
        {"id": "c", "tenant": "acme", "user": "u3", "turns": [
            {"user": "refund time?", "expect": {"handler": "knowledge", "intent": "ask_returns"}}]},
    ],
}).conversations  # fmt: skip


def test_the_figures_follow_their_definitions():
    plays = {
        "a": [played("Hi", rid="a1"), played("3-5 days. Source: X", rid="a2")],
        "b": [played("Sorry, I don't know", rid="b1"), played("ticket #1", rid="b2")],
        "c": [played("I don't know", rid="c1")],
    }
    for cid, steps in plays.items():
        for number, step in enumerate(steps, 1):
            step.conversation, step.number = cid, number
    records = [
        {**record("chitchat", intent="greet"), "correlation_id": "a1"},
        {**record("knowledge", intent="ask_delivery", llm_call_ids=[1, 2]), "correlation_id": "a2"},
        {**record("knowledge", intent="ask_store_info"), "correlation_id": "b1"},  # a wrong answer
        {**record("handoff", intent="human_handoff"), "correlation_id": "b2"},
        {**record("idk", intent="ask_returns"), "correlation_id": "c1"},  # a false "I don't know"
    ]
    results = score(CONVERSATIONS, plays, records)
    calls = {1: {"cost": 0.002, "prompt_tokens": 900, "completion_tokens": 100, "outcome": "invalid"},
             2: {"cost": 0.001, "prompt_tokens": 950, "completion_tokens": 50, "outcome": "ok"}}  # fmt: skip
    seen = []
    figures = compute(
        CONVERSATIONS, results, calls, similarity=lambda pairs: seen.extend(pairs) or {"rouge_l": 1.0}
    )
    assert figures["handler_accuracy"] == pytest.approx(3 / 5, abs=1e-4)
    assert figures["task_completion"] == pytest.approx(1 / 3, abs=1e-4)  # only "a"
    assert figures["containment"] == pytest.approx(2 / 3, abs=1e-4)  # "b" reached a person
    assert figures["correct_containment"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["wrong_answer_on_unanswerable"] == 1.0 and figures["idk_on_unanswerable"] == 0.0
    assert figures["false_idk_on_answerable"] == 0.5
    assert figures["grounding_pass_rate"] == 0.5
    assert figures["cost_per_conversation"] == pytest.approx(0.001)  # 0.003 over 3 conversations
    assert (
        figures["tokens_per_conversation"] == 2000 / 3 // 0.1 * 0.1
        or figures["tokens_per_conversation"] == 666.7
    )
    assert figures["confusion"]["idk"] == {"knowledge": 1}
    assert figures["latency_ms"]["knowledge"]["turns"] == 2
    assert seen == [("a#2", "3-5 days.", "3-5 days")]  # answerable turns with a reference
    assert figures["answer_similarity"] == {"rouge_l": 1.0}


def test_the_figures_per_tenant():
    from app.evaluation.run import Evaluation

    conversations = ConversationSet.model_validate({
        "version": 1,
        "conversations": [
            {"id": "a", "tenant": "acme", "user": "u1", "turns": [
                {"user": "spain?", "expect": {"handler": "knowledge", "intent": "ask_delivery"}}]},
            {"id": "g1", "tenant": "globex", "user": "u2", "turns": [
                {"user": "meter?", "expect": {"handler": "knowledge", "intent": "ask_billing"}}]},
            {"id": "g2", "tenant": "globex", "user": "u3", "turns": [
                {"user": "tariff?", "expect": {"handler": "knowledge", "intent": "ask_billing"}}]},
        ],
    })  # fmt: skip
    plays = {cid: [played("It is so. Source: X", rid=cid)] for cid in ("a", "g1", "g2")}
    for cid, (step,) in plays.items():
        step.conversation, step.number = cid, 1
    records = [
        {**record("knowledge", intent="ask_delivery", tier_used=0), "correlation_id": "a"},
        {**record("knowledge", intent="ask_billing", tier_used=2, llm_call_ids=[7]), "correlation_id": "g1"},
        {**record("idk", intent="ask_billing"), "correlation_id": "g2"},  # a false "I don't know"
    ]
    results = score(conversations.conversations, plays, records)
    calls = {7: {"cost": 0.004, "prompt_tokens": 900, "completion_tokens": 100, "outcome": "ok"}}
    run = Evaluation(
        conversations, plays, records, results, compute(conversations.conversations, results, calls), calls
    )
    assert run.tiers_used() == {"tier0": 0.5, "tier2": 0.5}
    assert run.by_tenant() == {
        "acme": {"conversations": 1, "task_completion": 1.0, "cost_per_1000_conversations": 0.0,
                 "tiers_used": {"tier0": 1.0}},
        "globex": {"conversations": 2, "task_completion": 0.5, "cost_per_1000_conversations": 2.0,
                   "tiers_used": {"tier2": 1.0}},
    }  # fmt: skip
