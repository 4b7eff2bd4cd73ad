"""Answer a question from the knowledge base: route, look in the cache, then the cheapest tier that can.

The turn goes through the router (``app.orchestration.router.decide``) with the retrieval confidence and
the degradation level; a knowledge decision is answered from the answer cache when a cached answer fits
(tenant and knowledge-base version scoped), otherwise by ``TieredAnswerer``: tier 0 extractive (with its
source), escalating to the LLM tiers configured in ``params.yaml`` when tier 0 is not confident. Every
dependency failure degrades to a clear message; nothing here fails the turn.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from app.actions import brain as brains
from app.actions import services
from app.actions.context import TurnContext
from app.llm.client import CallContext
from app.llm.policy import Decision
from app.llm.tiers import AnswerRequest
from app.observability import metrics
from app.orchestration.router import ORDER_ID_IN_TEXT, RouteDecision, decide, knowledge_turn
from app.settings import get_settings

logger = structlog.get_logger(__name__)

UNAVAILABLE = "I can't look that up right now. Please try again in a moment, or ask to talk to a person."
STATIC_ONLY = (
    "We're running in a limited mode right now and I can't answer that one. "
    "Please try again later, or ask to talk to a person."
)


def route(
    kb: Any,
    ctx: TurnContext,
    tracker: Tracker,
    level: Any,
    top_k: int,
    min_score: float,
    config: Any,
    policy: Any,
) -> tuple[RouteDecision, list[Any]]:
    """Retrieve, then let the router decide with the retrieval confidence (blocking: run in a thread)."""
    intent = (tracker.latest_message or {}).get("intent") or {}
    turn, hits = knowledge_turn(
        kb,
        ctx.text,
        ctx.tenant_id,
        intent=intent.get("name") or "unknown",
        confidence=float(intent.get("confidence") or 0.0),
        top_k=top_k,
        min_score=min_score,
        failed_turns=int(tracker.get_slot("failed_turns") or 0),
        level=level,
        conversation_id=ctx.conversation_id,
    )
    return decide(turn, config, policy), hits


def with_sources(answer: str, hits: list[Any]) -> str:
    """The answer and the sources it cites as ``[n]`` (numbered as the model saw them); with no citation
    (an answer from a tool's result, or with grounding off) the two best hits."""
    cited = [int(n) for n in dict.fromkeys(re.findall(r"\[(\d+)\]", answer)) if 1 <= int(n) <= len(hits)]
    labels = (
        [f"[{n}] {hits[n - 1].source_label}" for n in cited]
        if cited
        else list(dict.fromkeys(h.source_label for h in hits[:2]))
    )
    return f"{answer}\n\nSources: {'; '.join(labels)}" if labels else answer


class ActionAnswerKnowledge(Action):
    def name(self) -> str:
        return "action_answer_knowledge"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        settings = get_settings()
        ctx = TurnContext.from_tracker(tracker, settings.tenant)
        params = settings.serve_params()
        top_k, min_score = (
            int(params.get("knowledge_top_k", 3)),
            float(params.get("knowledge_min_score", 0.35)),
        )
        try:
            brain = await asyncio.to_thread(brains.brain)
        except (
            Exception
        ) as exc:  # invalid router/tiers/cache configuration: say so in the log, answer clearly
            logger.error("brain.unavailable", reason=f"{type(exc).__name__}: {exc}", **ctx.log_fields())
            dispatcher.utter_message(text=UNAVAILABLE)
            return []
        try:
            kb = await asyncio.to_thread(services.knowledge)
            level = brain.degradation.level(ctx.tenant_id)
            decision, hits = await asyncio.to_thread(
                route, kb, ctx, tracker, level, top_k, min_score, brain.router, brain.policy
            )
        except Exception as exc:  # degrade, never fail the turn: the user gets a clear message
            logger.error("knowledge.unavailable", reason=f"{type(exc).__name__}: {exc}", **ctx.log_fields())
            metrics.KNOWLEDGE_ANSWERS.labels(ctx.tenant_id, "unavailable").inc()
            brain.degradation.record("knowledge", False)
            dispatcher.utter_message(text=UNAVAILABLE)
            return []
        brain.degradation.record("knowledge", True)
        logger.info("router.decision", **decision.log_fields(), **ctx.log_fields())
        metrics.ROUTER_DECISIONS.labels(ctx.tenant_id, decision.handler, decision.rule).inc()

        if decision.handler == "handoff":
            from app.actions.handoff import open_handoff_ticket

            ticket = open_handoff_ticket(
                dispatcher, tracker, ctx, reason=decision.rule or "router", handoff=True
            )
            return [SlotSet("handoff_active", True)] if ticket is not None else []
        text = await asyncio.to_thread(self._answer, brain, kb, ctx, decision, hits, top_k, min_score)
        dispatcher.utter_message(text=text)
        return []

    @staticmethod
    def _answer(
        brain: brains.Brain,
        kb: Any,
        ctx: TurnContext,
        decision: RouteDecision,
        hits: list[Any],
        top_k: int,
        min_score: float,
    ) -> str:
        """The reply text for a knowledge (or unanswerable) turn: cache, then tiers, then "I don't know"."""
        from knowledge.retrieval import IDK_TEXT

        answered = metrics.KNOWLEDGE_ANSWERS
        if decision.handler == "two_stage_fallback":  # nothing in the knowledge base: say so, offer a human
            answered.labels(ctx.tenant_id, "idk").inc()
            return IDK_TEXT
        # A question naming the user's order is personal whatever the answer turns out to be: no cache either way
        cache = None if ORDER_ID_IN_TEXT.search(ctx.text) else brain.cache
        if cache is not None and (hit := cache.lookup(ctx.tenant_id, kb.version, ctx.text)):
            logger.info("cache.hit", kind=hit.kind, similarity=round(hit.similarity, 4), **ctx.log_fields())
            answered.labels(ctx.tenant_id, "cache").inc()
            return hit.answer
        if decision.cache_only:
            answered.labels(ctx.tenant_id, "idk").inc()
            return STATIC_ONLY
        request = AnswerRequest(
            ctx.text,
            [h.text for h in hits],
            CallContext(ctx.tenant_id, ctx.user_id, ctx.conversation_id),
            sources=[h.source_label for h in hits],
        )
        # a skill intent whose rule still chose this action (e.g. a refund question) is answered at tier 0
        tier, max_tier = decision.tier or 0, decision.max_tier if decision.max_tier is not None else 0
        outcome = brain.answerer.answer(request, decision=Decision(tier, decision.reason), max_tier=max_tier)
        llm_tried = [a for a in outcome.attempts if a.tier > 0 and a.outcome != "unavailable"]
        if llm_tried:
            brain.degradation.record("llm", outcome.tier is not None and outcome.tier > 0)
        logger.info(
            "knowledge.answer",
            tier=outcome.tier,
            reason=outcome.reason,
            tools=list(outcome.tools_used),
            attempts=[(a.tier, a.outcome) for a in outcome.attempts],
            kb_version=kb.version,
            **ctx.log_fields(),
        )
        answered.labels(ctx.tenant_id, "idk" if outcome.text is None else f"tier{outcome.tier}").inc()
        if outcome.text is None:
            return IDK_TEXT
        if outcome.tier and outcome.tier > 0:
            text = with_sources(outcome.text, hits)
            if cache is not None:  # answers built on the user's own data (a tool) are never cached
                cache.store(
                    ctx.tenant_id,
                    ctx.user_id,
                    kb.version,
                    ctx.text,
                    text,
                    personal=outcome.personal,
                    tier=outcome.tier,
                    model=outcome.result.model if outcome.result else None,
                )
            return text
        return outcome.text
