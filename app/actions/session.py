"""A new Rasa session keeps a live handoff and knows its tenant: ``action_session_start`` restores
``handoff_active`` and sets ``tenant`` (the responses of ``nlu/domain.yml`` have tenant variations).

Rasa starts a new session after ``session_expiration_time`` of silence and, with
``carry_over_slots_to_new_session: false``, resets every slot. A conversation an agent still holds must stay
with the agent, so the ticket store (the source of truth for handoffs) decides the slot in the new session. The tenant comes from the
turn (the REST channel's metadata, else the ``<tenant>:<user>`` conversation id), never from what a user types.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from app.actions import services
from app.actions.context import TurnContext
from app.actions.handoff import HANDOFF_SLOT
from app.settings import get_settings

logger = structlog.get_logger(__name__)

TENANT_SLOT = "tenant"


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = TurnContext.from_tracker(tracker, get_settings().tenant)
        events: list[dict[str, Any]] = [SessionStarted(), SlotSet(TENANT_SLOT, ctx.tenant_id)]
        try:
            ticket = await asyncio.to_thread(
                services.ticketing().active_handoff, ctx.tenant_id, ctx.conversation_id
            )
        except (
            SQLAlchemyError
        ) as exc:  # the helpdesk store is down: start a normal session, say so in the log
            logger.error("session.handoff_check_failed", error=str(exc)[:200], **ctx.log_fields())
            ticket = None
        if ticket is not None:
            logger.info("session.handoff_kept", ticket_id=ticket["id"], **ctx.log_fields())
            events.append(SlotSet(HANDOFF_SLOT, True))
        events.append(ActionExecuted("action_listen"))
        return events
