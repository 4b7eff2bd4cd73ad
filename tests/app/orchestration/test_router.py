"""The router: table-driven decisions, degradation caps, logging and configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from app.llm.policy import RulePolicy
from app.orchestration.router import RouterConfig, Turn, decide
from app.reliability.degradation import DegradationLevel
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
CONFIG = RouterConfig(max_failed_turns=2)
FULL, REDUCED, STATIC, MAINT = (DegradationLevel.FULL, DegradationLevel.REDUCED, DegradationLevel.STATIC,
                                DegradationLevel.MAINTENANCE)  # fmt: skip


def turn(intent: str = "ask_delivery", conf: float = 0.9, retrieval: float | None = 0.8, **kw) -> Turn:
    kw.setdefault("retrieval_margin", 0.1)
    kw.setdefault("supporting_docs", 2)
    kw.setdefault("text", "How long does delivery to Germany take?")
    return Turn(intent=intent, confidence=conf, retrieval_confidence=retrieval, **kw)


@pytest.mark.parametrize(
    ("case", "t", "handler", "rule", "tier"),
    [
        ("greeting is a skill", turn("greet", retrieval=None), "skill", "skill_intent", None),
        ("order status is a skill", turn("track_order", retrieval=0.1), "skill", "skill_intent", None),
        ("sure knowledge at tier 0", turn(), "knowledge", "knowledge_intent", 0),
        ("fair retrieval at tier 1", turn(retrieval=0.5), "knowledge", "knowledge_intent", 1),
        ("weak retrieval at tier 2", turn(retrieval=0.35), "knowledge", "knowledge_intent", 2),
        ("nothing retrieved", turn(retrieval=0.1), "idk", "nothing_to_answer", None),
        ("retrieval not run", turn(retrieval=None), "idk", "nothing_to_answer", None),
        ("nothing again", turn(retrieval=0.1, failed_turns=1), "handoff", "nothing_to_answer_again", None),
        (  # neither the model nor the articles know what was meant: "did you mean ...?", not "I don't know"
            "nothing retrieved, intent below clarify_below",
            turn(conf=0.55, retrieval=0.1),
            "fallback",
            "unsure_nothing_to_answer",
            None,
        ),
        (
            "nothing retrieved, intent at clarify_below",
            turn(conf=0.6, retrieval=0.1),
            "idk",
            "nothing_to_answer",
            None,
        ),
        (
            "an unsure intent the articles answer",
            turn(conf=0.55, retrieval=0.8),
            "knowledge",
            "knowledge_intent",
            0,
        ),
        ("earlier failure: one tier up", turn(failed_turns=1), "knowledge", "knowledge_intent", 1),
        (  # "help with payment??": the articles would quote one passage of the subject at random
            "a vague message, however sure",
            turn("ask_payment_methods", conf=0.95, retrieval=0.9, vague=True),
            "fallback",
            "vague",
            None,
        ),
        (  # asked once already ("could you say that in other words?"): what it says is routed as usual
            "a vague message said again",
            turn("ask_payment_methods", conf=0.95, retrieval=0.9, vague=True, rephrased=True),
            "knowledge",
            "knowledge_intent",
            0,
        ),
        (
            "served model unsure, retrieval below the cut-off",
            turn("nlu_fallback", conf=0.45, retrieval=0.25, question=True),
            "fallback",
            "nlu_fallback",
            None,
        ),
        (
            "served model unsure, not a question, retrieval above the cut-off",
            turn("nlu_fallback", conf=0.45, retrieval=0.5, text="the link in the email says invalid"),
            "fallback",
            "nlu_fallback",
            None,
        ),
        (  # the intent is unknown, but what is asked is in the articles
            "served model unsure, a question the articles answer",
            turn("nlu_fallback", conf=0.45, retrieval=0.5, question=True),
            "knowledge",
            "unsure_intent_question",
            1,
        ),
        (
            "served model unsure, a question, nothing retrieved",
            turn("nlu_fallback", conf=0.45, retrieval=None, question=True),
            "fallback",
            "nlu_fallback",
            None,
        ),
        (  # the articles first: nlu/data/rules/fallback.yml sends nlu_fallback to the knowledge action
            "served model unsure, retrieval strong",
            turn("nlu_fallback", conf=0.45, retrieval=0.9),
            "knowledge",
            "unsure_intent_strong_retrieval",
            1,
        ),
        (
            "names an order: tier 1 with tools",
            turn(mentions_account=True),
            "knowledge",
            "knowledge_intent",
            1,
        ),
        (
            "names an order, nothing retrieved",
            turn(retrieval=0.1, mentions_account=True),
            "knowledge",
            "account_question",
            2,
        ),
        (
            "unsure intent",
            turn("ask_delivery", conf=0.3, retrieval=0.5),
            "fallback",
            "unsure_intent",
            None,
        ),
        (
            "unsure intent, a question the articles answer",
            turn("ask_delivery", conf=0.3, retrieval=0.5, question=True),
            "knowledge",
            "unsure_intent_question",
            1,
        ),
        (
            "unsure intent, strong retrieval",
            turn("ask_returns", conf=0.3, retrieval=0.75),
            "knowledge",
            "unsure_intent_strong_retrieval",
            1,
        ),  # nlu confidence < 0.5 skips tier 0
        (
            "unsure skill intent",
            turn("track_order", conf=0.2, retrieval=0.1),
            "fallback",
            "unsure_intent",
            None,
        ),
        (
            "out of scope but the KB knows",
            turn("out_of_scope", retrieval=0.7),
            "knowledge",
            "knowledge_intent",
            0,
        ),
        ("asked for a human", turn("human_handoff", retrieval=None), "handoff", "asked_for_human", None),
        (
            "unsure ask for a human",
            turn("human_handoff", conf=0.45, retrieval=None),
            "fallback",
            "unsure_handoff",
            None,
        ),
        ("too many failures", turn(failed_turns=2), "handoff", "too_many_failures", None),
        (
            "handoff active silences the bot",
            turn("greet", handoff_active=True),
            "handoff",
            "handoff_active",
            None,
        ),
        ("maintenance takes a message", turn(level=MAINT), "handoff", "maintenance", None),
        ("reduced caps to tier 0", turn(retrieval=0.35, level=REDUCED), "knowledge", "knowledge_intent", 0),
        ("static: cache only", turn(retrieval=None, level=STATIC), "knowledge", "knowledge_cache_only", None),
        ("static: skills still run", turn("greet", level=STATIC), "skill", "skill_intent", None),
    ],
)
def test_decisions(case: str, t: Turn, handler: str, rule: str, tier: int | None) -> None:
    decision = decide(t, CONFIG, log=False)
    assert (decision.handler, decision.rule, decision.tier) == (handler, rule, tier), case
    assert decision.reason
    assert decision.level == t.level.label


def test_degradation_caps_are_explained() -> None:
    reduced = decide(turn(retrieval=0.35, level=REDUCED), CONFIG, log=False)
    assert reduced.max_tier == 0 and "capped to tier 0 at level reduced" in reduced.reason
    static = decide(turn(level=STATIC), CONFIG, log=False)
    assert static.cache_only and static.tier is None and "cached answers only" in static.reason
    full = decide(turn(retrieval=0.5), CONFIG, log=False)
    assert (full.max_tier, full.cache_only) == (2, False)


def test_the_policy_only_picks_available_tiers() -> None:
    decision = decide(turn(retrieval=0.5), CONFIG, RulePolicy(available=(0,)), log=False)
    assert decision.tier == 0 and "tier 1 unavailable" in decision.reason


def test_every_decision_is_logged_with_its_reason() -> None:
    with capture_logs() as logs:
        decision = decide(turn(tenant_id="acme", conversation_id="acme:alice"), CONFIG)
    [event] = [e for e in logs if e["event"] == "router.decision"]
    assert event["handler"] == "knowledge" and event["reason"] == decision.reason
    assert (event["tenant_id"], event["conversation_id"], event["intent"]) == (
        "acme",
        "acme:alice",
        "ask_delivery",
    )
    with capture_logs() as logs:
        decide(turn(), CONFIG, log=False)
    assert logs == []


def test_turns_and_config_are_validated() -> None:
    with pytest.raises(ValueError, match="confidence"):
        Turn(intent="greet", confidence=1.5)
    with pytest.raises(ValueError, match="failed_turns"):
        Turn(intent="greet", confidence=0.9, failed_turns=-1)
    assert Turn(intent="greet", confidence=0.9, level="static").level is STATIC
    with pytest.raises(ValueError, match="both skill and handoff"):
        RouterConfig.from_params({"skill_intents": ["human_handoff"]})
    with pytest.raises(ValueError, match="invalid `router` section"):
        RouterConfig.from_params({"nlu_threshold": 2})


def test_the_repository_params_load() -> None:
    config = Settings(params_file=ROOT / "params.yaml").section("router", RouterConfig)
    assert "human_handoff" in config.handoff_intents and "greet" in config.skill_intents
    assert decide(turn("greet"), config, log=False).handler == "skill"


def test_a_skill_asking_the_articles_routes_its_turn_as_a_knowledge_question() -> None:
    # action_report_problem asks the articles for "my kettle arrived broken": rule 7, not the skill again
    served = RouterConfig(skill_intents=("track_order", "damaged_item"))
    config = served.asking_the_articles("damaged_item")
    assert config.skill_intents == ("track_order",) and served.asking_the_articles("ask_delivery") is served
    below = turn("damaged_item", retrieval=0.1, cut_off=0.3)
    assert decide(below, served, log=False).handler == "skill"
    assert decide(below, config, log=False).rule == "nothing_to_answer"  # the intent's re-reading may follow
    assert decide(turn("damaged_item", retrieval=0.8), config, log=False).rule == "knowledge_intent"
