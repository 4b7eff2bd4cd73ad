"""Refund requests: queued at the CRM service, acknowledged at once, announced when done.

The CRM service answers ``202`` with a job id; its worker processes the refund in the background and
leaves a notification for the user's chat (``app/integrations/jobs.py``). A question about refunds with no
order id in it ("how long does a refund take?") is a knowledge question: the knowledge action answers it.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from app.actions import services
from app.actions.context import TurnContext
from app.actions.orders import find_order_id
from app.actions.records import ActionRun, RecordedAction
from app.tools import ToolError

logger = structlog.get_logger(__name__)

QUESTION = re.compile(
    r"\?\s*$|^\s*(how|when|what|why|where|which|can|could|do|does|is|are|will|would)\b", re.IGNORECASE
)


def is_question(text: str) -> bool:
    """ "How long do refunds take?" asks about refunds; "I want my money back" asks for one."""
    return bool(QUESTION.search(text or ""))


class ActionRequestRefund(RecordedAction):
    def name(self) -> str:
        return "action_request_refund"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        order_id = find_order_id(tracker)
        if order_id is None and is_question(ctx.text):
            from app.actions.knowledge import answer_knowledge

            logger.info("refund.question_to_knowledge", **ctx.log_fields())
            events = await answer_knowledge(dispatcher, tracker, ctx, record)
            return [*events, SlotSet("refund_requested", False)]
        if order_id is None:
            record.rule = "ask_order_id"
            dispatcher.utter_message(
                text="I can request a refund for you. Which order is it? The number looks like ORD-12345."
            )
            return [SlotSet("refund_requested", True)]
        record.rule, record.tools = "refund_request", ["request_refund"]
        try:
            with record.stage("tool"):
                result = await services.tools().acall(
                    "request_refund", {"order_id": order_id}, ctx.tool_context()
                )
        except ToolError as exc:
            record.outcome = "degraded" if exc.unavailable else "rejected"
            if exc.unavailable:
                logger.error(
                    "refund.crm_unavailable",
                    order_id=order_id,
                    reason=exc.reason,
                    error=exc.message[:200],
                    **ctx.log_fields(),
                )
                dispatcher.utter_message(
                    text="I can't reach our order system right now, so I couldn't request the refund. "
                    "Please try again in a few minutes."
                )
                return [SlotSet("refund_requested", False)]
            logger.info("refund.rejected", order_id=order_id, status=exc.status, **ctx.log_fields())
            text = (
                f"A refund for order {order_id} has already been requested. I'll let you know here "
                "as soon as it's done."
                if exc.status == 409
                else f"I couldn't request a refund for order {order_id}. Please ask to talk to a person."
            )
            dispatcher.utter_message(text=text)
            return [SlotSet("refund_requested", False)]
        if not result.data["found"]:
            record.outcome = "not_found"
            dispatcher.utter_message(
                text=f"I couldn't find an order {order_id} on your account. Please check the number "
                "(it's in your confirmation email)."
            )
            return [SlotSet("order_id", None), SlotSet("refund_requested", False)]
        ack_id = result.data["job_id"]
        logger.info("refund.requested", job_id=ack_id, order_id=order_id, **ctx.log_fields())
        dispatcher.utter_message(
            text=f"Refund requested for order {order_id} (reference R-{ack_id}). "
            "I'll let you know here as soon as it's processed."
        )
        return [SlotSet("order_id", order_id), SlotSet("refund_requested", False)]
