"""A knowledge question, answered the way the bot answers it: one lookup, the router, the cache, the tiers.

The knowledge action (:mod:`app.actions.knowledge`) and the RAG evaluation (``pipelines/evaluate_rag.py``) both
call these two functions, so the figures the evaluation reports are those of the served path:

1. :func:`route_question`: one :meth:`~knowledge.retrieval.KnowledgeBase.lookup` (hybrid retrieval and
   answerability), the router's :class:`~app.orchestration.router.Turn` built from it, and ``decide()``;
2. :func:`answer_question`: for a knowledge decision, the answer cache (when given), else the tiered answerer
   (:class:`~app.llm.tiers.TieredAnswerer`) whose tier 0 quotes the same lookup and whose LLM tiers see its
   hits; "I don't know" when nothing can answer. The reply cites its sources; the cited articles are
   returned as doc ids, read from the reply as the user sees it (a cached answer's too).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from app.actions.phrasing import is_question, is_vague
from app.channels.rendering import split_sources
from app.llm.client import CallContext
from app.llm.policy import Decision, TierPolicy
from app.llm.tiers import AnswerOutcome, AnswerRequest, TieredAnswerer
from app.orchestration.handlers import FALLBACK, HANDOFF, IDK, KNOWLEDGE
from app.orchestration.router import ORDER_ID_IN_TEXT, RouteDecision, RouterConfig, Turn, decide
from app.reliability.degradation import DegradationLevel


@dataclass
class KnowledgeReply:
    """What the knowledge path made of a question: the ``handler`` it ends in (``knowledge``, ``idk``, or
    ``handoff`` for the caller to open), the ``text`` (None for a handoff), and how it got there."""

    decision: RouteDecision
    lookup: Any
    handler: str
    text: str | None = None
    cache: str = ""  # exact, semantic, or "" (not from the cache)
    outcome: AnswerOutcome | None = None
    sources: list[str] = field(default_factory=list)  # doc ids the reply cites

    @property
    def tier(self) -> int | None:
        return self.outcome.tier if self.outcome is not None else None


def knowledge_turn(
    kb: Any,
    text: str,
    tenant_id: str,
    *,
    intent: str,
    confidence: float,
    top_k: int,
    failed_turns: int = 0,
    level: DegradationLevel | str = DegradationLevel.FULL,
    conversation_id: str = "",
    rephrased: bool = False,
    clarified: bool = False,
) -> tuple[Turn, Any]:
    """One lookup for ``text`` and the router's :class:`Turn` built from it (with the lookup). ``clarified``: the
    user clicked one of the "did you mean ...?" suggestions for ``text``, so it is vague no more."""
    found = kb.lookup(text, tenant_id, top_k)
    turn = Turn(
        intent=intent or "unknown",
        confidence=min(max(float(confidence or 0.0), 0.0), 1.0),
        text=text,
        failed_turns=failed_turns,
        # on the overall scale, where the router's and the tier policy's thresholds are set: the tenant's own
        # "I don't know" line falls on the overall one (KnowledgeBase.on_overall_scale)
        retrieval_confidence=None if found.refused else kb.on_overall_scale(found.confidence, tenant_id),
        retrieval_margin=found.dense_margin,
        supporting_docs=found.supporting_docs(kb.cut_off),  # dense similarities against the overall line
        level=level,
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        mentions_account=bool(ORDER_ID_IN_TEXT.search(text)),
        cut_off=kb.cut_off,
        question=is_question(text),
        rephrased=rephrased,
        vague=is_vague(text) and not clarified,
    )
    return turn, found


def route_question(
    kb: Any,
    text: str,
    tenant_id: str,
    config: RouterConfig,
    policy: TierPolicy,
    *,
    intent: str,
    confidence: float,
    top_k: int,
    failed_turns: int = 0,
    level: DegradationLevel | str = DegradationLevel.FULL,
    conversation_id: str = "",
    rephrased: bool = False,
    clarified: bool = False,
) -> tuple[RouteDecision, Any]:
    """Look the question up once and let the router decide (blocking: run it in a thread)."""
    turn, found = knowledge_turn(
        kb,
        text,
        tenant_id,
        intent=intent,
        confidence=confidence,
        top_k=top_k,
        failed_turns=failed_turns,
        level=level,
        conversation_id=conversation_id,
        rephrased=rephrased,
        clarified=clarified,
    )
    return decide(turn, config, policy), found


def answer_question(
    answerer: TieredAnswerer,
    kb: Any,
    found: Any,
    decision: RouteDecision,
    context: CallContext,
    *,
    cache: Any = None,
) -> KnowledgeReply:
    """The reply to a routed knowledge question (see the module docstring). ``cache`` is the answer cache or
    None (never for a question naming the user's order: a personal answer is not cached either way)."""
    if decision.handler == HANDOFF:
        return KnowledgeReply(decision, found, HANDOFF)
    if decision.handler in (FALLBACK, IDK):  # nothing in the knowledge base: say so, offer a human
        return KnowledgeReply(decision, found, IDK, idk_text())
    question = found.question
    if cache is not None and ORDER_ID_IN_TEXT.search(question):
        cache = None
    if cache is not None and (hit := cache.lookup(context.tenant_id, kb.version, question)):
        return KnowledgeReply(
            decision,
            found,
            KNOWLEDGE,
            hit.answer,
            hit.kind,
            sources=cited_doc_ids(hit.answer, kb, context.tenant_id),
        )
    if decision.cache_only:
        return KnowledgeReply(decision, found, KNOWLEDGE, STATIC_ONLY)
    request = AnswerRequest(
        question, [h.text for h in found.hits], context, sources=[h.source_label for h in found.hits]
    )

    def tier0(_: AnswerRequest) -> str | None:
        answer = kb.extract(found)
        return answer.text if answer.answered else None

    # a skill intent whose rule still chose this action (e.g. a refund question) is answered at tier 0
    tier, max_tier = decision.tier or 0, decision.max_tier if decision.max_tier is not None else 0
    outcome = answerer.answer(
        request, decision=Decision(tier, decision.reason), max_tier=max_tier, extractive=tier0
    )
    if outcome.text is None:
        return KnowledgeReply(decision, found, IDK, idk_text(), outcome=outcome)
    text = with_sources(outcome.text, found.hits) if outcome.tier and outcome.tier > 0 else outcome.text
    reply = KnowledgeReply(decision, found, KNOWLEDGE, text, outcome=outcome)
    reply.sources = cited_doc_ids(text, kb, context.tenant_id)
    if outcome.tier and outcome.tier > 0 and cache is not None:  # answers from the user's own data: never
        cache.store(
            context.tenant_id,
            context.user_id,
            kb.version,
            question,
            text,
            personal=outcome.personal,
            tier=outcome.tier,
            model=outcome.result.model if outcome.result else None,
        )
    return reply


STATIC_ONLY = (
    "We're running in a limited mode right now and I can't answer that one. "
    "Please try again later, or ask to talk to a person."
)


def idk_text() -> str:
    from knowledge.retrieval import IDK_TEXT

    return IDK_TEXT


def with_sources(answer: str, hits: Sequence[Any]) -> str:
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
    _, cited = split_sources(text or "")
    if not cited:
        return []
    labels = _doc_ids_by_label(kb, tenant)
    return list(dict.fromkeys(labels[label] for label in cited if label in labels))
