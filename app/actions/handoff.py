"""Hand the conversation to a human: open a ticket with the transcript, tell the user, and go quiet.

``action_handoff`` opens a handoff ticket and sets the slot ``handoff_active``. While the slot is true,
rules (``nlu/data/rules/handoff.yml``) send every user message to ``action_forward_to_agent``, which
stores it in the ticket's transcript for the agent and says nothing. The agent answers from the agent page
(notifications reach the user's chat) and hands the conversation back; the next user message then finds
no active handoff, clears the slot and is replayed so that the bot answers it.
"""

from __future__ import annotations

from typing import Any

import structlog
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, SlotSet, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from app.actions import services
from app.actions.context import TurnContext, transcript
from app.actions.records import ActionRun, RecordedAction
from app.tenants import profile
from app.tools import ToolError

logger = structlog.get_logger(__name__)

HANDOFF_SLOT = "handoff_active"


def ticket_failure_text(tenant_id: str) -> str:
    """What the user is told when no ticket can be opened: where the tenant's customers write instead."""
    email = profile(tenant_id).support_email
    where = (
        f"Please email {email} and we'll get back to you." if email else "Please try again in a few minutes."
    )
    return f"I couldn't reach our support team's system just now. {where}"


def open_handoff_ticket(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    ctx: TurnContext,
    reason: str = "request",
    *,
    handoff: bool = False,
) -> int | None:
    """Open a ticket with the transcript and tell the user its number; None if the helpdesk is down.

    ``handoff=True`` puts the conversation in the agents' queue (the caller sets ``handoff_active``).
    """
    subject = f"Chat handoff ({reason}): {ctx.text[:120]}" if ctx.text else f"Chat handoff ({reason})"
    try:
        result = services.tools().call(
            "open_ticket",
            {"subject": subject[:200], "transcript": transcript(tracker), "handoff": handoff},
            ctx.tool_context(),
        )
    except ToolError as exc:
        logger.error("ticket.open_failed", reason=exc.reason, error=exc.message, **ctx.log_fields())
        dispatcher.utter_message(text=ticket_failure_text(ctx.tenant_id))
        return None
    ticket_id = int(result.data["ticket_id"])
    logger.info("ticket.opened", ticket_id=ticket_id, reason=reason, handoff=handoff, **ctx.log_fields())
    dispatcher.utter_message(
        text=f"I've opened ticket #{ticket_id} for you. A member of our support team will "
        "pick up this conversation shortly."
    )
    return ticket_id


class ActionHandoff(RecordedAction):
    def name(self) -> str:
        return "action_handoff"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        return hand_over(dispatcher, tracker, ctx, record, "request")


def hand_over(
    dispatcher: CollectingDispatcher, tracker: Tracker, ctx: TurnContext, record: ActionRun, reason: str
) -> list[dict[str, Any]]:
    """Open a handoff ticket, tell the user and go quiet (``handoff_active``); filled into ``record`` as a
    ``handoff``. Shared by every action that hands a conversation over (a request for a person, a complaint,
    a cancellation)."""
    record.handler, record.rule = "handoff", f"handoff_{reason}"
    with record.stage("ticket"):
        ticket_id = open_handoff_ticket(dispatcher, tracker, ctx, reason, handoff=True)
    record.ticket_id = ticket_id
    record.tools.append("open_ticket")
    if ticket_id is None:
        record.outcome = "degraded"
        return [SlotSet(HANDOFF_SLOT, False)]
    dispatcher.utter_message(text="Until then I'll stay quiet: everything you write here goes to them.")
    return [SlotSet(HANDOFF_SLOT, True)]


def replay_latest_message(tracker: Tracker) -> list[dict[str, Any]]:
    """Events that undo this turn and put the user's message back, so that the policies predict anew."""
    message = tracker.latest_message or {}
    parse_data = {
        k: message.get(k)
        for k in ("intent", "entities", "intent_ranking", "text")
        if message.get(k) is not None
    }
    user_event = {
        "event": "user",
        "timestamp": None,
        "text": message.get("text"),
        "parse_data": parse_data,
        "input_channel": tracker.get_latest_input_channel(),
        "metadata": message.get("metadata") or {},
    }
    return [
        UserUtteranceReverted(),
        SlotSet(HANDOFF_SLOT, False),
        SlotSet("failed_turns", 0.0),  # a person helped: the row of failed turns ends
        ActionExecuted("action_listen"),
        user_event,
    ]


class ActionForwardToAgent(RecordedAction):
    """While a human has the conversation: store the user's message for the agent, and say nothing."""

    def name(self) -> str:
        return "action_forward_to_agent"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        record.rule, record.outcome = "forward_to_agent", "silent"
        try:
            ticket = services.ticketing().active_handoff(ctx.tenant_id, ctx.conversation_id)
            if ticket is not None:
                services.ticketing().append_transcript(ctx.tenant_id, ticket["id"], f"user: {ctx.text}")
        except SQLAlchemyError as exc:  # the agent side is down: stay quiet, the handoff is still on
            logger.error("handoff.forward_failed", error=str(exc)[:200], **ctx.log_fields())
            return []
        if ticket is not None:
            logger.info("handoff.forwarded", ticket_id=ticket["id"], **ctx.log_fields())
            record.ticket_id = int(ticket["id"])
            return []
        logger.info("handoff.ended", **ctx.log_fields())  # handed back: the bot answers this message
        record.rule, record.outcome = "handed_back", "replayed"
        return replay_latest_message(tracker)
