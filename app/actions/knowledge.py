"""Answer a question from the knowledge base: route, look in the cache, then the cheapest tier that can.

The knowledge path is :mod:`app.orchestration.answering` (shared with the RAG evaluation): one lookup of the
question, the router's decision with the retrieval confidence and the degradation level, then the answer cache
(tenant and knowledge-base version scoped) or ``TieredAnswerer`` (tier 0 extractive with its source,
escalating to the LLM tiers configured in ``params.yaml``). This action adds what only the runtime has: the
degradation controller, metrics, handoff tickets and the action record (handler, rule, tiers tried and used,
cache, cited articles, tools, time per stage: :mod:`app.actions.records`). Every dependency failure degrades
to a clear message; nothing here fails the turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from app.actions import brain as brains
from app.actions import services
from app.actions.context import TurnContext
from app.actions.descriptions import intent_descriptions
from app.actions.fallback import ask_what_was_meant
from app.actions.phrasing import asks_whether_offered
from app.actions.records import ActionRun, RecordedAction
from app.llm.client import CallContext
from app.observability import metrics
from app.orchestration.answering import STATIC_ONLY, KnowledgeReply, answer_question, route_question
from app.orchestration.handlers import FALLBACK, HANDOFF, IDK, KNOWLEDGE, handler_of_action
from app.orchestration.router import NLU_FALLBACK
from app.settings import get_settings
from nlu.context import (
    INTENT_REPLIES,
    TOPIC_INTENTS,
    TOPIC_SLOT,
    answers_rephrase_request,
    content_words,
    is_payload,
    looks_like_followup,
    resolved_question,
    shares_content,
)

logger = structlog.get_logger(__name__)

UNAVAILABLE = "I can't look that up right now. Please try again in a moment, or ask to talk to a person."


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
    try:
        brain = await asyncio.to_thread(brains.brain)
    except Exception as exc:  # invalid router/tiers/cache configuration: say so in the log, answer clearly
        logger.error("brain.unavailable", reason=f"{type(exc).__name__}: {exc}", **ctx.log_fields())
        record.outcome, record.reason = "degraded", "brain unavailable"
        dispatcher.utter_message(text=UNAVAILABLE)
        return []
    intent = (tracker.latest_message or {}).get("intent") or {}
    intent_name = intent.get("name") or "unknown"
    # a question the NLU found out of scope (or small talk, yes/no) is answered only when the articles are sure,
    # as an unsure intent is
    router_intent = NLU_FALLBACK if intent_name in INTENT_REPLIES else intent_name
    # a skill's action that asks the articles (a refund question, a problem stated without an order): its intent
    # names the subject, so the turn routes as a knowledge question, with the intent's re-reading below
    router = brain.router.asking_the_articles(intent_name)
    rephrased = answers_rephrase_request(
        tracker.events
    )  # its intent is Rasa's (confidence 1.0), not the model's

    def route(text: str, as_intent: str = router_intent) -> Any:
        return route_question(
            kb,
            text,
            ctx.tenant_id,
            router,
            brain.policy,
            intent=as_intent,
            confidence=float(intent.get("confidence") or 0.0),
            top_k=get_settings().serve().knowledge_top_k,
            failed_turns=int(tracker.get_slot("failed_turns") or 0),
            level=level,
            conversation_id=ctx.conversation_id,
            rephrased=rephrased,
            clarified=clicked,
        )

    def read_with(
        context: str, found: Any, as_intent: str = router_intent, own_words: bool = True
    ) -> tuple[Any, Any] | None:
        """The turn read once more after ``context``, when that routes it to the articles and they contain the
        message's own words: the context finds the articles, the message's own words choose the passage. Not
        ``own_words``: the context alone is read (a clicked suggestion's description)."""
        if not own_words:
            resolved, in_context = route(context, as_intent)
            return (resolved, in_context) if resolved.handler == KNOWLEDGE else None
        resolved, in_context = route(resolved_question(context, ctx.text), as_intent)
        if resolved.handler == KNOWLEDGE and shares_content(ctx.text, [h.text for h in in_context.hits]):
            return resolved, in_context.focused_on(found)
        return None

    # a suggestion clicked after "Did you mean ...?" ("/request_refund"; ctx.text is the words it clarifies): the
    # click says what was meant, so when those words find nothing its intent's description is read alone
    clicked = is_payload(str((tracker.latest_message or {}).get("text") or "")) and not is_payload(ctx.text)

    topic = tracker.get_slot(TOPIC_SLOT)
    followup = by_intent = False  # read with the conversation's topic / with the intent's description
    try:
        kb = await asyncio.to_thread(services.knowledge)
        level = brain.degradation.level(ctx.tenant_id)
        record.level = level.label
        with record.stage("route"):
            decision, found = await asyncio.to_thread(route, ctx.text)
            unsure = decision.rule.startswith("unsure_intent")  # the intent is unknown: the topic may tell
            # read with the conversation's topic: "and France?" after a delivery question
            # the conversation says it is a question about the topic: the index's cut-off decides (rule 7)
            wants_topic = topic and (looks_like_followup(ctx.text) or decision.handler != KNOWLEDGE or unsure)
            if wants_topic and (reread := await asyncio.to_thread(read_with, topic, found, "")):
                (decision, found), followup = reread, True
            # a confident intent names the subject: "forgot my pasword" is read as a password question; not a
            # question whether something is offered at all ("is there a discount for teachers?"): the subject's
            # article would answer another question (which discounts there are) where the articles have nothing
            described = intent_descriptions(ctx.tenant_id).get(intent_name, "")
            if (
                decision.rule.startswith("nothing_to_answer")
                and intent_name in TOPIC_INTENTS
                and not is_payload(ctx.text)  # a payload alone has no words of the user's to read with it
                and not asks_whether_offered(ctx.text)
                and (
                    reread := await asyncio.to_thread(read_with, described, found, router_intent, not clicked)
                )
            ):
                (decision, found), by_intent = reread, True
    except Exception as exc:  # degrade, never fail the turn: the user gets a clear message
        logger.error("knowledge.unavailable", reason=f"{type(exc).__name__}: {exc}", **ctx.log_fields())
        metrics.KNOWLEDGE_ANSWERS.labels(ctx.tenant_id, "unavailable").inc()
        brain.degradation.record("knowledge", False)
        record.outcome, record.reason = "degraded", "knowledge base unavailable"
        dispatcher.utter_message(text=UNAVAILABLE)
        return []
    record.question = found.question  # what retrieval read (with the topic or description when re-read)
    if not followup and intent_name in INTENT_REPLIES and decision.handler != KNOWLEDGE:
        # sent here as a follow-up or an out-of-scope question, but the articles are not sure: its intent's reply
        response = INTENT_REPLIES[intent_name]
        record.handler, record.rule = handler_of_action(response) or KNOWLEDGE, "not_answered_here"
        dispatcher.utter_message(response=response)
        return []
    brain.degradation.record("knowledge", True)
    logger.info("router.decision", **decision.log_fields(), **ctx.log_fields())
    metrics.ROUTER_DECISIONS.labels(ctx.tenant_id, decision.handler, decision.rule).inc()
    record.rule = decision.rule
    if followup or by_intent:
        record.rule = f"{'followup' if followup else 'intent_context'}:{decision.rule}"[:64]
    record.reason, record.level = decision.reason, decision.level
    if decision.handler == FALLBACK or (
        decision.handler == IDK and not (rephrased or clicked) and no_word_known(ctx.text, found)
    ):
        # unsure what was meant, and the articles say nothing: ask (two-stage); also when the articles know none
        # of the message's words ("retrn or refnd??"): a misspelling is likelier than a question they cannot
        # answer (asked once: a rephrasing or a click they still cannot read gets the router's reply)
        record.handler = FALLBACK
        if decision.handler == IDK:
            record.rule = "no_word_known"
        return ask_what_was_meant(tracker)

    if decision.handler == HANDOFF:
        from app.actions.handoff import open_handoff_ticket

        record.handler = HANDOFF
        ticket = open_handoff_ticket(dispatcher, tracker, ctx, reason=decision.rule or "router", handoff=True)
        record.ticket_id = ticket
        if ticket is None:
            record.outcome = "degraded"
        return [SlotSet("handoff_active", True)] if ticket is not None else []
    context = CallContext(ctx.tenant_id, ctx.user_id, ctx.conversation_id, ctx.correlation_id)
    with record.stage("answer"):
        reply = await asyncio.to_thread(
            answer_question, brain.answerer, kb, found, decision, context, cache=brain.cache
        )
    _note(reply, brain, ctx, record, kb.version)
    dispatcher.utter_message(text=reply.text)
    events = []
    if reply.handler == KNOWLEDGE:
        if tracker.get_slot("failed_turns"):  # "failed turns in a row": an answer ends the row
            events.append(SlotSet("failed_turns", 0.0))
        if not followup:  # a question answered on its own: the conversation's new topic
            events.append(SlotSet(TOPIC_SLOT, found.question if by_intent else ctx.text))
    return events


def no_word_known(text: str, found: Any) -> bool:
    """Whether none of the words of a message that has some occurs in any of the tenant's articles (the
    answerability feature ``unknown`` is their idf-weighted share). A payload ("/ask_product@0.9") has no words of
    the user's: its intent decides, as before."""
    if is_payload(text) or not content_words(text):
        return False
    return float((found.features or {}).get("unknown", 0.0)) >= 1.0


def _note(
    reply: KnowledgeReply, brain: brains.Brain, ctx: TurnContext, record: ActionRun, kb_version: str
) -> None:
    """The reply's record, metrics, log line and LLM health for the degradation level."""
    record.handler, record.cache, record.sources = reply.handler, reply.cache, reply.sources
    answered = metrics.KNOWLEDGE_ANSWERS
    if reply.cache:
        logger.info("cache.hit", kind=reply.cache, **ctx.log_fields())
        answered.labels(ctx.tenant_id, "cache").inc()
        return
    outcome = reply.outcome
    if reply.text == STATIC_ONLY:
        record.outcome = "degraded"
    if outcome is None:
        answered.labels(ctx.tenant_id, "idk").inc()
        return
    record.tier_tried, record.tier_used = outcome.decision.tier, outcome.tier
    record.attempts = [(a.tier, a.outcome) for a in outcome.attempts]
    record.tools = list(outcome.tools_used)
    if outcome.degraded and outcome.text is not None:
        record.outcome = "degraded"
    # The LLM's health: a reply the checks refused ("invalid") came from a working model, as for its breaker;
    # counted as a failure, a few prompt injections a minute would switch the LLM tiers off for everyone.
    if any(a.tier > 0 and a.outcome not in ("unavailable", "invalid") for a in outcome.attempts):
        brain.degradation.record("llm", outcome.tier is not None and outcome.tier > 0)
    logger.info(
        "knowledge.answer",
        tier=outcome.tier,
        reason=outcome.reason,
        tools=list(outcome.tools_used),
        attempts=record.attempts,
        kb_version=kb_version,
        **ctx.log_fields(),
    )
    answered.labels(ctx.tenant_id, "idk" if reply.handler == IDK else f"tier{outcome.tier}").inc()
