"""Answer a knowledge question at the tier the policy chose, escalating one tier or degrading on failure.

Order of events for one question (:meth:`TieredAnswerer.answer`):

1. the start tier comes from the policy (or the caller), capped by ``max_tier`` (the degradation level);
2. a tier that fails (error, open breaker, timeout) or whose output fails validation hands over to the next
   higher available tier;
3. when no tier up to ``max_tier`` answered, the answerer degrades to the extractive tier 0 (if it was not
   tried yet) and finally gives up with ``text=None``: the caller then offers a human.

Tier 0 is a callable supplied by the caller (``extractive(request) -> str | None``; None means "not confident").

Function calling: with a tool registry (``app.tools``), the LLM tiers are offered its read-only tools (order
status, the user's tickets). A reply that calls tools gets the results (run for the asking user, whatever the
model put in the arguments) and is asked again, at most ``max_tool_rounds`` times; the last round offers no
tools, so it must answer. An answer built on a personal tool result is marked ``personal`` (never cached).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from app.llm.client import CallContext, LLMResult, TierClient, TierUnavailable
from app.llm.config import EXTRACTIVE, LARGE, GroundingConfig, TierConfig, TiersConfig
from app.llm.policy import Decision, Features, TierPolicy
from app.tools.registry import ToolContext, ToolRegistry

logger = structlog.get_logger(__name__)

TOOLS_PROMPT = (
    "\n\nTools: you may call the tools to look up the user's own orders and support tickets. Use them only "
    "when the question is about the user's own order or ticket, and state only what their results say."
)
IDK_MARKERS = ("i don't know", "i do not know", "i'm not sure", "i am not sure", "cannot answer")


@dataclass(frozen=True)
class AnswerRequest:
    """A question, its retrieved passages and who asks it."""

    question: str
    passages: Sequence[str]
    context: CallContext
    features: Features | None = None
    sources: Sequence[str] = ()  # a label per passage ("Title › Section"), shown to the model with it

    def __post_init__(self) -> None:
        if not self.question or not self.question.strip():
            raise ValueError("question must not be empty")


@dataclass(frozen=True)
class Attempt:
    tier: int
    outcome: str  # ok, unavailable, breaker_open, timeout, invalid, not_confident, ...
    detail: str = ""
    tools: tuple[str, ...] = ()  # tools whose results the answer used
    personal: bool = False  # one of them returned the user's own data


@dataclass(frozen=True)
class AnswerOutcome:
    """What the user gets: ``text`` None means no tier could answer (offer a human)."""

    text: str | None
    tier: int | None
    decision: Decision
    attempts: tuple[Attempt, ...] = ()
    result: LLMResult | None = None
    degraded: bool = False
    reason: str = ""

    @property
    def tools_used(self) -> tuple[str, ...]:
        """Tools whose results the answer was built on (from the answering attempt)."""
        return self.attempts[-1].tools if self.text is not None and self.attempts else ()

    @property
    def personal(self) -> bool:
        """The answer used the user's own data: it must not be cached or shown to anyone else."""
        return self.text is not None and bool(self.attempts) and self.attempts[-1].personal

    @property
    def escalated(self) -> bool:
        return self.tier is not None and self.tier > self.decision.tier


def default_validator(max_chars: int = 2000) -> Callable[[LLMResult], str | None]:
    """Reject empty, cut-off (finish_reason=length), over-long and "I don't know" answers."""

    def validate(result: LLMResult) -> str | None:
        text = result.text.strip()
        if not text:
            return "empty answer"
        if result.finish_reason == "length":
            return "answer cut off at the token limit"
        if len(text) > max_chars:
            return f"answer longer than {max_chars} characters"
        if any(marker in text.lower() for marker in IDK_MARKERS) and len(text) < 120:
            return "model said it does not know"
        return None

    return validate


@dataclass(frozen=True)
class _Excerpt:
    source_label: str
    text: str


def build_messages(request: AnswerRequest, *, with_tools: bool = False) -> list[dict[str, Any]]:
    """The versioned knowledge prompts (``knowledge/prompts/``): numbered excerpts with their sources, the
    question, the rules (cite [n], NO_ANSWER when the excerpts do not answer); plus the tool rules."""
    from knowledge.llm_prompts import build_messages as knowledge_messages

    labels = list(request.sources) + [""] * (len(request.passages) - len(request.sources))
    excerpts = [
        _Excerpt(label or f"excerpt {i}", text)
        for i, (label, text) in enumerate(zip(labels, request.passages, strict=False), 1)
    ]
    messages: list[dict[str, Any]] = [dict(m) for m in knowledge_messages(request.question.strip(), excerpts)]
    if with_tools:
        messages[0]["content"] += TOOLS_PROMPT
    return messages


def grounded_validator(
    request: AnswerRequest, tool_results: Sequence[str], config: GroundingConfig
) -> Callable[[LLMResult], str | None]:
    """The basic checks, then ``knowledge.grounding.validate``: cited excerpts exist, numbers and most words
    come from the cited excerpts (or, for answers built on tool results, from excerpts and results together),
    no prompt leak; ``NO_ANSWER`` means the model found no answer (the next tier may)."""
    from knowledge.grounding import NO_ANSWER, validate
    from knowledge.llm_prompts import system_prompt

    basic = default_validator(config.max_answer_chars)

    def check(result: LLMResult) -> str | None:
        if result.text.strip(" .\"'`").upper() == NO_ANSWER:
            return "model found no answer in the excerpts"
        if problem := basic(result):
            return problem
        verdict = validate(
            result.text,
            list(request.passages),
            system_prompt=system_prompt(),
            max_chars=config.max_answer_chars,
            min_grounding=config.min_grounding,
            extra_sources=tool_results,
        )
        return None if verdict.ok else verdict.reason

    return check


class TieredAnswerer:
    """Tier selection, escalation and degradation over tier 0 plus the configured LLM tiers."""

    def __init__(
        self,
        clients: Mapping[int, TierClient],
        extractive: Callable[[AnswerRequest], str | None] | None,
        policy: TierPolicy,
        *,
        validator: Callable[[LLMResult], str | None] | None = None,
        tools: ToolRegistry | None = None,
        max_tool_rounds: int = 2,
        grounding: GroundingConfig | None = None,
    ) -> None:
        self.clients = dict(clients)
        self.extractive = extractive
        self.policy = policy
        self.validator = validator or default_validator()
        self.tools = tools
        self.max_tool_rounds = max_tool_rounds
        self.grounding = grounding  # None or disabled: only the basic checks (``validator``)

    @classmethod
    def from_config(
        cls,
        config: TiersConfig,
        extractive: Callable[[AnswerRequest], str | None] | None,
        policy: TierPolicy,
        *,
        usage: Any = None,
        validator: Callable[[LLMResult], str | None] | None = None,
        tools: ToolRegistry | None = None,
    ) -> TieredAnswerer:
        """One :class:`TierClient` per configured endpoint; unconfigured tiers stay unavailable."""
        clients = {
            tier: TierClient(tier, endpoint, retry=config.retry, breaker=config.breaker, usage=usage)
            for tier, endpoint in config.endpoints.items()
        }
        return cls(
            clients,
            extractive,
            policy,
            validator=validator,
            tools=tools if config.function_calling else None,
            max_tool_rounds=config.max_tool_rounds,
            grounding=config.grounding,
        )

    def _with_extractive(self, extractive: Callable[[AnswerRequest], str | None]) -> TieredAnswerer:
        """This answerer with another tier 0 (the same clients, breakers and policy)."""
        twin = copy.copy(self)
        twin.extractive = extractive
        return twin

    def tier_configs(self) -> dict[int, TierConfig]:
        return {tier: client.config for tier, client in self.clients.items()}

    def breaker_states(self) -> dict[int, str]:
        """``{tier: closed | open | half-open}`` of the LLM tiers."""
        return {tier: client.breaker_state for tier, client in sorted(self.clients.items())}

    def _has(self, tier: int) -> bool:
        return self.extractive is not None if tier == EXTRACTIVE else tier in self.clients

    def answer(
        self,
        request: AnswerRequest,
        *,
        decision: Decision | None = None,
        max_tier: int = LARGE,
        extractive: Callable[[AnswerRequest], str | None] | None = None,
    ) -> AnswerOutcome:
        """Answer ``request``; see the module docstring for the order of tiers tried. ``extractive``: this
        question's tier 0 (e.g. one that quotes the retrieval the LLM tiers' passages come from) instead of
        the answerer's own."""
        if extractive is not None:
            return self._with_extractive(extractive).answer(request, decision=decision, max_tier=max_tier)
        if decision is None:
            if request.features is None:
                raise ValueError("give either a decision or request.features for the policy")
            decision = self.policy.choose_tier(request.features)
        attempts: list[Attempt] = []
        start = min(decision.tier, max_tier)
        for tier in range(start, max_tier + 1):
            if not self._has(tier):
                attempts.append(Attempt(tier, "unavailable", "not configured"))
                continue
            text, result, attempt = self._try(tier, request)
            attempts.append(attempt)
            if text is not None:
                return self._done(
                    request, decision, attempts, text, tier, result, degraded=tier < decision.tier
                )
        if start > EXTRACTIVE and self._has(EXTRACTIVE):  # degrade: the extractive answer beats none
            text, result, attempt = self._try(EXTRACTIVE, request)
            attempts.append(attempt)
            if text is not None:
                return self._done(request, decision, attempts, text, EXTRACTIVE, None, degraded=True)
        outcome = AnswerOutcome(
            None, None, decision, tuple(attempts), degraded=True, reason="no tier could answer"
        )
        logger.warning(
            "llm.no_answer",
            decision_tier=decision.tier,
            max_tier=max_tier,
            attempts=[(a.tier, a.outcome) for a in attempts],
            **_ids(request),
        )
        return outcome

    def _try(self, tier: int, request: AnswerRequest) -> tuple[str | None, LLMResult | None, Attempt]:
        if tier == EXTRACTIVE:
            assert self.extractive is not None
            try:
                text = self.extractive(request)
            except Exception as exc:  # the caller's extractive function failing is a tier failure
                logger.warning("llm.extractive_failed", error=str(exc), **_ids(request))
                return None, None, Attempt(tier, "error", str(exc)[:200])
            if text and text.strip():
                return text.strip(), None, Attempt(tier, "ok")
            return None, None, Attempt(tier, "not_confident")
        return self._try_llm(tier, request)

    def _try_llm(self, tier: int, request: AnswerRequest) -> tuple[str | None, LLMResult | None, Attempt]:
        """One LLM tier, with tool rounds when tools are offered (see the module docstring)."""
        client = self.clients[tier]
        offered = self.tools.openai_tools() if self.tools is not None else []
        messages = build_messages(request, with_tools=bool(offered))
        used: list[str] = []
        results: list[str] = []
        personal = False
        try:
            for round_ in range(self.max_tool_rounds + 1):
                last = round_ == self.max_tool_rounds
                validate = (
                    grounded_validator(request, results, self.grounding)
                    if self.grounding is not None and self.grounding.enabled
                    else self.validator
                )
                result = client.complete(
                    messages,
                    request.context,
                    validate=validate,
                    tools=None if last or not offered else offered,
                )
                if not result.tool_calls:
                    break
                assert self.tools is not None
                messages.append(
                    {
                        "role": "assistant",
                        "content": result.text or None,
                        "tool_calls": [call.as_message_part() for call in result.tool_calls],
                    }
                )
                ctx = ToolContext(
                    request.context.tenant_id, request.context.user_id, request.context.conversation_id
                )
                for call in result.tool_calls:
                    content, tool_result = self.tools.call_json(call.name, call.arguments, ctx)
                    if tool_result is not None:
                        used.append(call.name)
                        results.append(content)
                        personal = personal or tool_result.personal
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        except TierUnavailable as exc:
            return None, None, Attempt(tier, exc.reason, exc.detail, tuple(used), personal)
        return result.text, result, Attempt(tier, "ok", tools=tuple(used), personal=personal)

    def _done(
        self,
        request: AnswerRequest,
        decision: Decision,
        attempts: list[Attempt],
        text: str,
        tier: int,
        result: LLMResult | None,
        *,
        degraded: bool,
    ) -> AnswerOutcome:
        if tier > decision.tier:
            reason = f"escalated from tier {decision.tier} to {tier}"
        elif degraded:
            reason = f"degraded from tier {decision.tier} to {tier}"
        else:
            reason = decision.reason
        outcome = AnswerOutcome(text, tier, decision, tuple(attempts), result, degraded, reason)
        logger.info(
            "llm.answered",
            tier=tier,
            tools=list(outcome.tools_used),
            decision_tier=decision.tier,
            reason=reason,
            attempts=[(a.tier, a.outcome) for a in attempts],
            **_ids(request),
        )
        return outcome


def _ids(request: AnswerRequest) -> dict[str, str]:
    return {"tenant_id": request.context.tenant_id, "conversation_id": request.context.conversation_id}


__all__ = [
    "AnswerOutcome",
    "AnswerRequest",
    "Attempt",
    "TieredAnswerer",
    "build_messages",
    "default_validator",
    "grounded_validator",
]
