"""Answer a question from the knowledge base: route, look in the cache, then the cheapest tier that can.

The turn goes through the router (``app.orchestration.router.decide``) with the retrieval confidence and
the degradation level; a knowledge decision is answered from the answer cache when a cached answer fits
(tenant and knowledge-base version scoped), otherwise by ``TieredAnswerer``: tier 0 extractive (with its
source), escalating to the LLM tiers configured in ``params.yaml`` when tier 0 is not confident. Every
dependency failure degrades to a clear message; nothing here fails the turn. What happened (handler, rule,
tiers tried and used, cache, cited articles, tools, time per stage) is recorded (:mod:`app.actions.records`).
"""

from __future__ import annotations

import asyncio
import re
from functools import lru_cache
from typing import Any

import structlog
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from app.actions import brain as brains
from app.actions import services
from app.actions.context import TurnContext
from app.actions.records import ActionRun, RecordedAction
from app.llm.client import CallContext
from app.llm.policy import Decision
from app.llm.tiers import AnswerRequest
from app.observability import metrics
from app.orchestration.handlers import FALLBACK, HANDOFF, IDK, KNOWLEDGE
from app.orchestration.router import ORDER_ID_IN_TEXT, RouteDecision, decide, knowledge_turn
from app.settings import get_settings

logger = structlog.get_logger(__name__)

UNAVAILABLE = "I can't look that up right now. Please try again in a moment, or ask to talk to a person."
STATIC_ONLY = (
    "We're running in a limited mode right now and I can't answer that one. "
    "Please try again later, or ask to talk to a person."
)
_SOURCES_LINE = re.compile(r"^Sources?: (.+)$", re.MULTILINE)
_CITATION_PREFIX = re.compile(r"^\[\d+\]\s*")


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


@lru_cache(maxsize=8)
def _doc_ids_by_label(kb: Any, tenant: str) -> dict[str, str]:
    """``{"Title › Section": doc_id, "Title": doc_id}`` over the tenant's chunks of one loaded index."""
    labels: dict[str, str] = {}
    for chunk in kb.chunks:
        if chunk.tenant == tenant:
            labels.setdefault(
                f"{chunk.title} › {chunk.section}" if chunk.section else chunk.title, chunk.doc_id
            )
            labels.setdefault(chunk.title, chunk.doc_id)
    return labels


def cited_doc_ids(text: str, kb: Any, tenant: str) -> list[str]:
    """The articles a reply cites, from its ``Source:``/``Sources:`` line, as the user sees them (a cached
    answer's citations included)."""
    found = _SOURCES_LINE.findall(text or "")
    if not found:
        return []
    labels = _doc_ids_by_label(kb, tenant)
    cited = (_CITATION_PREFIX.sub("", label.strip()) for label in found[-1].split("; "))
    return list(dict.fromkeys(labels[label] for label in cited if label in labels))


class ActionAnswerKnowledge(RecordedAction):
    def name(self) -> str:
        return "action_answer_knowledge"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        return await answer_knowledge(dispatcher, tracker, ctx, record)


async def answer_knowledge(
    dispatcher: CollectingDispatcher, tracker: Tracker, ctx: TurnContext, record: ActionRun
) -> list[dict[str, Any]]:
    """Route and answer one knowledge turn, filling ``record`` (also run by the refund action for questions
    about refunds)."""
    record.handler = KNOWLEDGE
    params = get_settings().serve_params()
    top_k, min_score = (
        get_settings().serve().knowledge_top_k,
        float(params.get("knowledge_min_score", 0.35)),
    )
    try:
        brain = await asyncio.to_thread(brains.brain)
    except Exception as exc:  # invalid router/tiers/cache configuration: say so in the log, answer clearly
        logger.error("brain.unavailable", reason=f"{type(exc).__name__}: {exc}", **ctx.log_fields())
        record.outcome, record.reason = "degraded", "brain unavailable"
        dispatcher.utter_message(text=UNAVAILABLE)
        return []
    try:
        kb = await asyncio.to_thread(services.knowledge)
        level = brain.degradation.level(ctx.tenant_id)
        record.level = level.label
        with record.stage("route"):
            decision, hits = await asyncio.to_thread(
                route, kb, ctx, tracker, level, top_k, min_score, brain.router, brain.policy
            )
    except Exception as exc:  # degrade, never fail the turn: the user gets a clear message
        logger.error("knowledge.unavailable", reason=f"{type(exc).__name__}: {exc}", **ctx.log_fields())
        metrics.KNOWLEDGE_ANSWERS.labels(ctx.tenant_id, "unavailable").inc()
        brain.degradation.record("knowledge", False)
        record.outcome, record.reason = "degraded", "knowledge base unavailable"
        dispatcher.utter_message(text=UNAVAILABLE)
        return []
    brain.degradation.record("knowledge", True)
    logger.info("router.decision", **decision.log_fields(), **ctx.log_fields())
    metrics.ROUTER_DECISIONS.labels(ctx.tenant_id, decision.handler, decision.rule).inc()
    record.rule, record.reason, record.level = decision.rule, decision.reason, decision.level

    if decision.handler == HANDOFF:
        from app.actions.handoff import open_handoff_ticket

        record.handler = HANDOFF
        ticket = open_handoff_ticket(dispatcher, tracker, ctx, reason=decision.rule or "router", handoff=True)
        record.ticket_id = ticket
        if ticket is None:
            record.outcome = "degraded"
        return [SlotSet("handoff_active", True)] if ticket is not None else []
    text = await asyncio.to_thread(_answer, brain, kb, ctx, decision, hits, record)
    dispatcher.utter_message(text=text)
    return []


def _answer(
    brain: brains.Brain,
    kb: Any,
    ctx: TurnContext,
    decision: RouteDecision,
    hits: list[Any],
    record: ActionRun,
) -> str:
    """The reply text for a knowledge (or unanswerable) turn: cache, then tiers, then "I don't know"."""
    from knowledge.retrieval import IDK_TEXT

    answered = metrics.KNOWLEDGE_ANSWERS
    if decision.handler in (FALLBACK, IDK):  # nothing in the knowledge base: say so, offer a human
        answered.labels(ctx.tenant_id, "idk").inc()
        record.handler = IDK
        return IDK_TEXT
    # A question naming the user's order is personal whatever the answer turns out to be: no cache either way
    cache = None if ORDER_ID_IN_TEXT.search(ctx.text) else brain.cache
    if cache is not None:
        with record.stage("cache"):
            hit = cache.lookup(ctx.tenant_id, kb.version, ctx.text)
        if hit:
            logger.info("cache.hit", kind=hit.kind, similarity=round(hit.similarity, 4), **ctx.log_fields())
            answered.labels(ctx.tenant_id, "cache").inc()
            record.cache, record.sources = hit.kind, cited_doc_ids(hit.answer, kb, ctx.tenant_id)
            return hit.answer
    if decision.cache_only:
        answered.labels(ctx.tenant_id, "idk").inc()
        record.outcome = "degraded"
        return STATIC_ONLY
    request = AnswerRequest(
        ctx.text,
        [h.text for h in hits],
        CallContext(ctx.tenant_id, ctx.user_id, ctx.conversation_id, ctx.correlation_id),
        sources=[h.source_label for h in hits],
    )
    # a skill intent whose rule still chose this action (e.g. a refund question) is answered at tier 0
    tier, max_tier = decision.tier or 0, decision.max_tier if decision.max_tier is not None else 0
    with record.stage("answer"):
        outcome = brain.answerer.answer(request, decision=Decision(tier, decision.reason), max_tier=max_tier)
    record.tier_tried, record.tier_used = tier, outcome.tier
    record.attempts = [(a.tier, a.outcome) for a in outcome.attempts]
    record.tools = list(outcome.tools_used)
    if outcome.degraded and outcome.text is not None:
        record.outcome = "degraded"
    # The LLM's health: a reply the checks refused ("invalid") came from a working model, as for its breaker;
    # counted as a failure, a few prompt injections a minute would switch the LLM tiers off for everyone.
    llm_tried = [a for a in outcome.attempts if a.tier > 0 and a.outcome not in ("unavailable", "invalid")]
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
        record.handler = IDK
        return IDK_TEXT
    text = with_sources(outcome.text, hits) if outcome.tier and outcome.tier > 0 else outcome.text
    record.sources = cited_doc_ids(text, kb, ctx.tenant_id)
    if outcome.tier and outcome.tier > 0 and cache is not None:
        # answers built on the user's own data (a tool) are never cached
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
