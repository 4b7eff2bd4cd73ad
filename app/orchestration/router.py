"""The router: which handler answers a turn, and why.

``decide(turn) -> RouteDecision(handler, reason, tier)``: pure and fast (no I/O besides an optional log line),
so anything can replay it. It runs inside the knowledge action (Rasa's rules route the other turns first), and
speaks the one handler vocabulary of :mod:`app.orchestration.handlers`:

- ``skill``: a deterministic skill (intent + rules/forms), zero model cost;
- ``knowledge``: a knowledge answer at the tier the complexity policy picks (capped by the degradation level);
- ``handoff``: a human (or, in maintenance, a ticket that takes the user's message);
- ``fallback``: the NLU issue's "did you mean ...?" when the intent is unsure;
- ``idk``: the knowledge base has nothing to say: "I don't know", and a person is offered.

Rules, in order (thresholds from the ``router`` section of params.yaml):

1. a handoff is active -> ``handoff`` (the bot stays silent until handed back);
2. maintenance level -> ``handoff`` (acknowledge and take a message);
3. the user asks for a person (a handoff intent): ``handoff`` when confident enough
   (>= ``handoff_min_confidence``), else ``fallback`` (ask first);
4. ``max_failed_turns`` failed turns in a row -> ``handoff``;
   a vague message, one that names a subject but not what about it ("help with payment??": ``Turn.vague``,
   :func:`app.actions.phrasing.is_vague`), not already said again in other words -> ``fallback`` ("did you mean
   ...?" with the intents it may mean: the articles would quote one passage of the subject at random; rule
   ``vague``);
5. unsure intent (``nlu_fallback``: the served model's FallbackClassifier, whose threshold is chosen on
   validation data, was unsure; or confidence < ``nlu_threshold``): ``knowledge`` when retrieval is strong
   (>= ``unsure_nlu_min_retrieval``), or when the message asks a question (``Turn.question``) and retrieval
   reaches the index's cut-off (the intent is unknown, but what is asked is in the articles); else
   ``fallback`` (the knowledge action then starts the two-stage fallback: nlu/data/rules/fallback.yml sends
   ``nlu_fallback`` to it);
6. a skill intent -> ``skill``;
7. anything else (knowledge intents, out of scope, unknown intents): ``knowledge`` when retrieval reaches
   the cut-off (``Turn.cut_off``, chosen by ``build_index`` on the dev questions; a tenant with a line of its
   own has its answerability read on the overall scale, where its line falls on this one), or when the
   question names the user's order (the LLM tiers' tools can look it up; rule ``account_question``), else
   ``handoff`` after an earlier failure or when the message answers the two-stage fallback's "could you say
   that in other words?" (``Turn.rephrased``: asked twice, still not understood; rule
   ``rephrased_nothing_to_answer``), ``fallback`` when the intent is below ``clarify_below`` (neither
   the model nor the articles know what was meant: "did you mean ...?" rather than "I don't know"; rule
   ``unsure_nothing_to_answer``), else ``idk``.

Knowledge decisions carry the policy's tier; at ``reduced`` it is capped to tier 0 and at ``static`` the
answer may come from the cache only (``cache_only=True``, no tier).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app import order_ids
from app.llm.config import LARGE
from app.llm.policy import Features, RulePolicy, TierPolicy
from app.orchestration.handlers import FALLBACK, HANDOFF, IDK, KNOWLEDGE, SKILL, Handler
from app.reliability.degradation import DegradationLevel
from app.settings import validate_section

logger = structlog.get_logger(__name__)

#: The handlers ``decide()`` returns (a subset of the one vocabulary, app/orchestration/handlers.py).
ROUTED: tuple[Handler, ...] = (SKILL, KNOWLEDGE, HANDOFF, FALLBACK, IDK)


class RouterConfig(BaseModel):
    """The ``router`` section of params.yaml (``degradation`` is read by the degradation controller):
    ``get_settings().section("router", RouterConfig)``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    nlu_threshold: float = Field(0.4, ge=0, le=1, description="below it the intent is unsure")
    unsure_nlu_min_retrieval: float = Field(
        0.6, ge=0, le=1, description="unsure intent, yet retrieval this sure"
    )
    clarify_below: float = Field(
        0.6, ge=0, le=1, description="nothing in the articles and the intent below it: ask what was meant"
    )
    handoff_intents: tuple[str, ...] = ("human_handoff",)
    handoff_min_confidence: float = Field(0.5, ge=0, le=1)
    max_failed_turns: int = Field(1, ge=1, description="failed turns in a row before a human takes over")
    skill_intents: tuple[str, ...] = (
        "greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge", "chitchat", "track_order",
        "cancel_order", "request_refund", "inform", "complaint", "feedback",
    )  # fmt: skip

    @model_validator(mode="after")
    def _skill_or_handoff(self) -> RouterConfig:
        if overlap := set(self.skill_intents) & set(self.handoff_intents):
            raise ValueError(f"intents cannot be both skill and handoff intents: {sorted(overlap)}")
        return self

    def asking_the_articles(self, intent: str) -> RouterConfig:
        """This config for a turn whose skill's action asks the help articles instead (a question about
        refunds, a problem stated without an order): ``intent`` routes as a knowledge question (rule 7)."""
        if intent not in self.skill_intents:
            return self
        return self.model_copy(update={"skill_intents": tuple(i for i in self.skill_intents if i != intent)})

    @classmethod
    def from_params(cls, section: Mapping[str, Any] | None) -> RouterConfig:
        """From a ``router`` section given as a mapping; a clear ValueError when invalid."""
        return validate_section("router", cls, section)


@dataclass(frozen=True)
class Turn:
    """What the router knows about one user turn."""

    intent: str
    confidence: float
    text: str = ""
    entities: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    handoff_active: bool = False
    failed_turns: int = 0
    # answerability on the overall scale (KnowledgeBase.on_overall_scale); None: retrieval not run (or failed)
    retrieval_confidence: float | None = None
    retrieval_margin: float = 0.0
    supporting_docs: int = 0
    level: DegradationLevel = DegradationLevel.FULL
    tenant_id: str = ""
    conversation_id: str = ""
    mentions_account: bool = False  # names the user's own order/ticket (see Features)
    # the "I don't know" line, on the same scale (KnowledgeBase.cut_off): below it, say so
    cut_off: float = 0.3
    question: bool = False  # the text asks something, by its form (app.actions.phrasing.is_question)
    rephrased: bool = (
        False  # it answers "could you say that in other words?" (nlu.context.answers_rephrase_request)
    )
    vague: bool = False  # it names a subject but not what about it (app.actions.phrasing.is_vague)

    def __post_init__(self) -> None:
        if not 0 <= self.confidence <= 1:
            raise ValueError(f"confidence must be in [0, 1], not {self.confidence!r}")
        if self.failed_turns < 0:
            raise ValueError("failed_turns must not be negative")
        if not isinstance(self.level, DegradationLevel):
            object.__setattr__(self, "level", DegradationLevel.parse(self.level))

    def features(self) -> Features:
        """The complexity policy's view of this turn."""
        return Features(
            retrieval_confidence=self.retrieval_confidence or 0.0,
            retrieval_margin=self.retrieval_margin,
            supporting_docs=self.supporting_docs,
            question_words=len(self.text.split()),
            nlu_confidence=self.confidence,
            failed_before=self.failed_turns > 0,
            mentions_account=self.mentions_account,
        )


@dataclass(frozen=True)
class RouteDecision:
    """The handler, the rule that chose it, and for knowledge answers the tier and its limits."""

    handler: Handler
    reason: str
    tier: int | None = None
    max_tier: int | None = None
    cache_only: bool = False
    level: str = "full"
    rule: str = ""

    def log_fields(self) -> dict[str, Any]:
        return {
            "handler": self.handler, "reason": self.reason, "rule": self.rule, "tier": self.tier,
            "max_tier": self.max_tier, "cache_only": self.cache_only, "level": self.level,
        }  # fmt: skip


_DEFAULT_CONFIG = RouterConfig()
_DEFAULT_POLICY = RulePolicy()


def decide(
    turn: Turn,
    config: RouterConfig | None = None,
    policy: TierPolicy | None = None,
    *,
    log: bool = True,
) -> RouteDecision:
    """Route one turn (see the module docstring for the rules). ``log=False`` for bulk offline replays."""
    decision = _decide(turn, config or _DEFAULT_CONFIG, policy or _DEFAULT_POLICY)
    if log:
        logger.info(
            "router.decision", intent=turn.intent, confidence=round(turn.confidence, 4),
            retrieval_confidence=None if turn.retrieval_confidence is None else round(turn.retrieval_confidence, 4),
            failed_turns=turn.failed_turns, tenant_id=turn.tenant_id, conversation_id=turn.conversation_id,
            **decision.log_fields(),
        )  # fmt: skip
    return decision


def _decide(turn: Turn, c: RouterConfig, policy: TierPolicy) -> RouteDecision:
    level = turn.level.label

    def route(handler: Handler, rule: str, reason: str) -> RouteDecision:
        return RouteDecision(handler, reason, level=level, rule=rule)

    if turn.handoff_active:
        return route(HANDOFF, "handoff_active", "a human agent has this conversation: the bot stays silent")
    if turn.level is DegradationLevel.MAINTENANCE:
        return route(HANDOFF, "maintenance", "maintenance level: acknowledge and take a message")
    if turn.intent in c.handoff_intents:
        if turn.confidence >= c.handoff_min_confidence:
            return route(HANDOFF, "asked_for_human", f"intent {turn.intent} ({turn.confidence:.2f})")
        return route(FALLBACK, "unsure_handoff",
                     f"intent {turn.intent} unsure ({turn.confidence:.2f} < {c.handoff_min_confidence}): ask first")  # fmt: skip
    if turn.failed_turns >= c.max_failed_turns:
        return route(
            HANDOFF, "too_many_failures", f"{turn.failed_turns} failed turns (>= {c.max_failed_turns})"
        )
    if turn.vague and not turn.rephrased:
        return route(FALLBACK, "vague", "it names a subject but not what about it: ask what was meant")
    retrieval = turn.retrieval_confidence
    unsure = turn.intent == NLU_FALLBACK or turn.confidence < c.nlu_threshold
    if unsure:  # the articles first: strong retrieval, or a question they answer
        why = ("the model was unsure (nlu_fallback)" if turn.intent == NLU_FALLBACK
               else f"intent {turn.intent} unsure ({turn.confidence:.2f} < {c.nlu_threshold})")  # fmt: skip
        if retrieval is not None and retrieval >= c.unsure_nlu_min_retrieval:
            return _knowledge(turn, policy, "unsure_intent_strong_retrieval",
                              f"{why} but retrieval is strong ({retrieval:.2f})")  # fmt: skip
        if turn.question and retrieval is not None and retrieval >= turn.cut_off:
            return _knowledge(turn, policy, "unsure_intent_question",
                              f"{why}, but it asks a question the articles answer "
                              f"({retrieval:.2f} >= {turn.cut_off:.2f})")  # fmt: skip
        if turn.intent == NLU_FALLBACK:
            return route(FALLBACK, "nlu_fallback", f"{why} and the articles do not answer it")
        return route(FALLBACK, "unsure_intent", why)
    if turn.intent in c.skill_intents:
        return route(SKILL, "skill_intent", f"intent {turn.intent} ({turn.confidence:.2f}) has a skill")
    if turn.level is DegradationLevel.STATIC:  # retrieval is down: only the cache can answer
        return _knowledge(turn, policy, "knowledge_cache_only", f"intent {turn.intent}: knowledge question")
    if retrieval is not None and retrieval >= turn.cut_off:
        return _knowledge(turn, policy, "knowledge_intent",
                          f"intent {turn.intent}, retrieval {retrieval:.2f} >= {turn.cut_off:.2f}")  # fmt: skip
    shown = "not run" if retrieval is None else f"{retrieval:.2f}"
    if turn.mentions_account:  # the articles say nothing, but the LLM tiers' tools can look the order up
        return _knowledge(turn, policy, "account_question",
                          f"intent {turn.intent}, retrieval {shown}, names the user's order: tools may answer")  # fmt: skip
    if turn.failed_turns > 0:
        return route(HANDOFF, "nothing_to_answer_again",
                     f"retrieval {shown} < {turn.cut_off:.2f} after an earlier failure")  # fmt: skip
    if turn.rephrased:
        return route(HANDOFF, "rephrased_nothing_to_answer",
                     f"said again in other words, and retrieval {shown} < {turn.cut_off:.2f}: a person takes over")  # fmt: skip
    if turn.confidence < c.clarify_below:
        return route(FALLBACK, "unsure_nothing_to_answer",
                     f"intent {turn.intent} ({turn.confidence:.2f} < {c.clarify_below}) and retrieval {shown} "
                     f"< {turn.cut_off:.2f}: ask what was meant")  # fmt: skip
    return route(IDK, "nothing_to_answer", f"retrieval {shown} < {turn.cut_off:.2f}")


def _knowledge(turn: Turn, policy: TierPolicy, rule: str, reason: str) -> RouteDecision:
    level = turn.level
    if level is DegradationLevel.STATIC:
        return RouteDecision(KNOWLEDGE, f"{reason}; static level: cached answers only", None, None, True,
                             level.label, rule)  # fmt: skip
    choice = policy.choose_tier(turn.features())
    max_tier = level.max_tier if level.max_tier is not None else LARGE
    tier = min(choice.tier, max_tier)
    reason = f"{reason}; tier {choice.tier}: {choice.reason}"
    if tier < choice.tier:
        reason += f"; capped to tier {tier} at level {level.label}"
    return RouteDecision(KNOWLEDGE, reason, tier, max_tier, False, level.label, rule)


NLU_FALLBACK = "nlu_fallback"  # the intent Rasa's FallbackClassifier predicts below its threshold
ORDER_ID_IN_TEXT = order_ids.ORDER_ID_IN_TEXT  # an explicit order id in a text: app/order_ids.py
