"""Hand the conversation to a human: open a ticket with the transcript and tell the user."""

from __future__ import annotations

from typing import Any

import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from app.actions import services
from app.actions.context import TurnContext, transcript
from app.settings import get_settings

logger = structlog.get_logger(__name__)


def open_handoff_ticket(
    dispatcher: CollectingDispatcher, tracker: Tracker, ctx: TurnContext, reason: str = "request"
) -> int | None:
    """Open a ticket with the transcript and tell the user its number; None if the helpdesk is down."""
    subject = f"Chat handoff ({reason}): {ctx.text[:120]}" if ctx.text else f"Chat handoff ({reason})"
    try:
        ticket = services.ticketing().open_ticket(
            ctx.tenant_id, ctx.user_id, ctx.conversation_id, subject, transcript(tracker)
        )
    except SQLAlchemyError as exc:
        logger.error("ticket.open_failed", error=str(exc), **ctx.log_fields())
        dispatcher.utter_message(
            text="I couldn't reach our support team's system just now. Please email "
            "support@northwind.example and we'll get back to you."
        )
        return None
    logger.info("ticket.opened", ticket_id=ticket.id, reason=reason, **ctx.log_fields())
    dispatcher.utter_message(
        text=f"I've opened ticket #{ticket.id} for you. A member of our support team will "
        "pick up this conversation shortly."
    )
    return ticket.id


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = TurnContext.from_tracker(tracker, get_settings().tenant)
        open_handoff_ticket(dispatcher, tracker, ctx)
        return []
