"""The LLM tiers call tools from the shared registry (function calling) against the test LLM server."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict

from app.llm.client import TierClient
from app.llm.config import BreakerConfig
from app.llm.policy import Decision, RulePolicy
from app.llm.tiers import TOOLS_PROMPT, AnswerRequest, TieredAnswerer
from app.tools import Tool, ToolContext, ToolRegistry
from tests.llm_server import LLMTestServer

from .conftest import CTX, FAST_RETRY, ListSink, tier_config


class OrderArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str


def order_registry(seen: list[ToolContext]) -> ToolRegistry:
    def order_status(ctx: ToolContext, args: OrderArgs) -> dict:
        seen.append(ctx)
        return {"found": True, "order_id": args.order_id, "status": "shipped", "carrier": "DHL"}

    def refund(ctx: ToolContext, args: OrderArgs) -> dict:
        raise AssertionError("a side-effect tool must never be offered to a model")

    return ToolRegistry(
        [
            Tool(
                "order_status", "Status of an order.", OrderArgs, order_status, breaker="test-crm", llm=True
            ),
            Tool("request_refund", "Refund an order.", OrderArgs, refund, breaker="test-crm"),
        ]
    )


def answerer(llm: LLMTestServer, tools: ToolRegistry | None, sink: ListSink) -> TieredAnswerer:
    client = TierClient(
        1, tier_config(llm, 1), retry=FAST_RETRY, breaker=BreakerConfig(fail_max=2), usage=sink
    )
    return TieredAnswerer({1: client}, lambda r: None, RulePolicy(available=(0, 1)), tools=tools)


def ask(answerer: TieredAnswerer, question: str):
    return answerer.answer(
        AnswerRequest(question, ["Orders ship within 2 days."], CTX), decision=Decision(1, "test"), max_tier=1
    )


def script(llm: LLMTestServer) -> None:
    llm.add_rule(
        pattern="ORD-10042", tool_call={"name": "order_status", "arguments": {"order_id": "ORD-10042"}}
    )
    llm.add_rule(
        tool_result_pattern='"status": "shipped"', content="Your order ORD-10042 has shipped with DHL."
    )


def test_the_model_calls_a_tool_and_answers_from_its_result_as_a_personal_answer(llm: LLMTestServer):
    from app.observability.metrics import REGISTRY

    def ok_calls() -> float:
        return (
            REGISTRY.get_sample_value(
                "switchboard_llm_calls_total", {"tier": "1", "model": "small", "outcome": "ok"}
            )
            or 0.0
        )

    before = ok_calls()
    script(llm)
    seen: list[ToolContext] = []
    sink = ListSink()
    outcome = ask(answerer(llm, order_registry(seen), sink), "Is ORD-10042 on its way?")
    assert outcome.text == "Your order ORD-10042 has shipped with DHL." and outcome.tier == 1
    assert outcome.tools_used == ("order_status",) and outcome.personal
    assert seen == [ToolContext("acme", "alice", "acme:alice")]  # identity from the turn, not the model
    first, second = llm.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["order_status"]  # no side-effect tools
    assert TOOLS_PROMPT.strip() in first["messages"][0]["content"]
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and json.loads(tool_message["content"])["carrier"] == "DHL"
    assert [r.outcome for r in sink.calls] == ["ok", "ok"]  # both calls are accounted for
    assert ok_calls() == before + 2  # and counted in the Prometheus metrics


def test_without_a_tool_call_the_answer_is_not_personal(llm: LLMTestServer):
    script(llm)
    outcome = ask(answerer(llm, order_registry([]), ListSink()), "How fast do orders ship?")
    assert outcome.text.startswith("Echo: ") and "Question: How fast do orders ship?" in outcome.text
    assert outcome.tools_used == () and not outcome.personal
    assert len(llm.requests) == 1


def test_a_model_that_keeps_calling_tools_must_answer_in_the_last_round(llm: LLMTestServer):
    registry = order_registry([])
    registry.register(
        Tool(
            "order_history",
            "Past orders.",
            OrderArgs,
            lambda ctx, args: {"orders": []},
            breaker="test-crm",
            llm=True,
        )
    )
    llm.add_rule(pattern="ORD", tool_call={"name": "order_status", "arguments": {"order_id": "ORD-1"}})
    llm.add_rule(pattern="ORD", tool_call={"name": "order_history", "arguments": {"order_id": "ORD-1"}})
    tiered = answerer(llm, registry, ListSink())
    tiered.max_tool_rounds = 1
    outcome = ask(tiered, "ORD please")
    assert "Question: ORD please" in outcome.text and outcome.tools_used == ("order_status",)
    first, last = llm.requests  # one tool round, then an answer with no tools offered
    assert "tools" in first and "tools" not in last


def test_no_registry_means_no_tools_offered(llm: LLMTestServer):
    script(llm)
    outcome = ask(answerer(llm, None, ListSink()), "Is ORD-10042 on its way?")
    assert "tools" not in llm.requests[0] and outcome.tools_used == ()


def test_a_failing_tool_is_reported_to_the_model_not_raised(llm: LLMTestServer):
    def broken(ctx: ToolContext, args: OrderArgs) -> dict:
        from app.tools import ToolUnavailable

        raise ToolUnavailable("CRM down")

    registry = ToolRegistry(
        [Tool("order_status", "Status.", OrderArgs, broken, breaker="test-crm2", llm=True)]
    )
    llm.add_rule(
        pattern="ORD-10042", tool_call={"name": "order_status", "arguments": {"order_id": "ORD-10042"}}
    )
    llm.add_rule(tool_result_pattern='"error": "unavailable"', content="I can't check orders right now.")
    outcome = ask(answerer(llm, registry, ListSink()), "Is ORD-10042 on its way?")
    assert outcome.text == "I can't check orders right now." and not outcome.personal
