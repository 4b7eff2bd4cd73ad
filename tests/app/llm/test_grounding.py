"""Grounded LLM tiers: the knowledge prompts and ``knowledge.grounding.validate`` decide what the user sees."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from app.llm.config import GroundingConfig, RetryConfig, TiersConfig
from app.llm.policy import Decision, RulePolicy
from app.llm.tiers import AnswerRequest, TieredAnswerer
from app.tools import Tool, ToolRegistry
from tests.llm_server import LLMTestServer

from .conftest import CTX, tier_config

PASSAGES = [
    "Refunds are paid back to the original payment method within 5 working days.",
    "Express delivery costs 9.95 EUR and arrives the next working day.",
]
SOURCES = ["Refunds › Timing", "Delivery › Express"]


def tiered(llm: LLMTestServer, tools: ToolRegistry | None = None, **grounding) -> TieredAnswerer:
    config = TiersConfig(
        endpoints={1: tier_config(llm, 1), 2: tier_config(llm, 2)},
        retry=RetryConfig(attempts=1),
        grounding=GroundingConfig(**grounding),
    )
    return TieredAnswerer.from_config(config, lambda r: None, RulePolicy(), tools=tools)


def ask(answerer: TieredAnswerer, question: str = "How long do refunds take?"):
    return answerer.answer(
        AnswerRequest(question, PASSAGES, CTX, sources=SOURCES), decision=Decision(1, "test"), max_tier=2
    )


def test_the_model_sees_numbered_excerpts_with_their_sources_and_the_citation_rules(llm: LLMTestServer):
    llm.add_rule(content="Refunds are paid back within 5 working days [1].")
    outcome = ask(tiered(llm))
    assert outcome.tier == 1 and outcome.text == "Refunds are paid back within 5 working days [1]."
    system, user = llm.requests[0]["messages"]
    assert "NO_ANSWER" in system["content"] and "[1] Refunds › Timing" in user["content"]
    assert "[2] Delivery › Express" in user["content"]


def test_ungrounded_answers_escalate_and_the_reason_is_kept(llm: LLMTestServer):
    llm.add_rule(model="small", content="Refunds take 3 days [1].")  # a number the excerpt does not state
    llm.add_rule(model="large", content="Refunds are paid back within 5 working days [1].")
    outcome = ask(tiered(llm))
    assert outcome.tier == 2 and outcome.escalated
    first = outcome.attempts[0]
    assert (first.tier, first.outcome) == (
        1,
        "invalid",
    ) and "numbers not in the cited excerpts" in first.detail


def test_uncited_made_up_and_no_answer_replies_never_reach_the_user(llm: LLMTestServer):
    llm.add_rule(model="small", content="Refunds are instant with our partner bank.")  # cites nothing
    llm.add_rule(model="large", content="NO_ANSWER")
    outcome = ask(tiered(llm))
    assert outcome.text is None
    assert [(a.tier, a.outcome) for a in outcome.attempts][:2] == [(1, "invalid"), (2, "invalid")]
    assert "no answer" in outcome.attempts[1].detail


def test_grounding_can_be_turned_off(llm: LLMTestServer):
    llm.add_rule(content="Refunds are instant with our partner bank.")
    assert ask(tiered(llm, enabled=False)).tier == 1


class OrderArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str


def test_an_answer_from_a_tool_result_is_grounded_in_that_result(llm: LLMTestServer):
    registry = ToolRegistry(
        [
            Tool(
                "order_status",
                "Status of an order.",
                OrderArgs,
                breaker="grounding-crm",
                llm=True,
                handler=lambda ctx, args: {
                    "order_id": args.order_id,
                    "status": "shipped",
                    "carrier": "DHL",
                    "tracking_number": "JD0146",
                },
            )
        ]
    )
    llm.add_rule(
        pattern="ORD-10042", tool_call={"name": "order_status", "arguments": {"order_id": "ORD-10042"}}
    )
    llm.add_rule(
        model="small",
        tool_result_pattern="JD0146",
        content="Your order ORD-10042 has shipped with DHL, tracking number JD0146.",
    )
    outcome = ask(tiered(llm, tools=registry), "Where is ORD-10042?")
    assert outcome.tier == 1 and outcome.personal and "JD0146" in outcome.text
    llm.reset()
    llm.add_rule(
        pattern="ORD-10042", tool_call={"name": "order_status", "arguments": {"order_id": "ORD-10042"}}
    )
    llm.add_rule(
        model="small", tool_result_pattern="JD0146", content="Your order ORD-10042 arrives on 12 May."
    )
    llm.add_rule(model="large", content="NO_ANSWER")
    made_up = ask(tiered(llm, tools=registry), "Where is ORD-10042?")
    assert made_up.attempts[0].outcome == "invalid" and "12" in made_up.attempts[0].detail
