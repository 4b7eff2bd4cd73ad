"""Answer a question from the knowledge base, citing the source document (no LLM needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from app.actions import services
from app.actions.context import TurnContext
from app.settings import get_settings

logger = structlog.get_logger(__name__)

UNAVAILABLE = (
    "I can't look that up right now. Please try again in a moment, or ask to talk to a person."
)


class ActionAnswerKnowledge(Action):
    def name(self) -> str:
        return "action_answer_knowledge"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        settings = get_settings()
        ctx = TurnContext.from_tracker(tracker, settings.tenant)
        params = settings.serve_params()
        try:
            kb = await asyncio.to_thread(services.knowledge)
            answer = await asyncio.to_thread(
                kb.answer,
                ctx.text,
                ctx.tenant_id,
                int(params.get("knowledge_top_k", 3)),
                float(params.get("knowledge_min_score", 0.35)),
            )
        except Exception as exc:  # degrade, never fail the turn: the user gets a clear message
            logger.error("knowledge.unavailable", reason=f"{type(exc).__name__}: {exc}", **ctx.log_fields())
            dispatcher.utter_message(text=UNAVAILABLE)
            return []
        logger.info(
            "knowledge.answer",
            answered=answer.answered,
            confidence=round(float(answer.confidence), 4),
            sources=[s["doc_id"] for s in answer.sources],
            kb_version=kb.version,
            **ctx.log_fields(),
        )
        dispatcher.utter_message(text=answer.text)
        return []
