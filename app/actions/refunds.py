"""Refund requests: queued at the CRM service, acknowledged at once, announced when done.

The CRM service answers ``202`` with a job id; its worker processes the refund in the background and
leaves a notification for the user's chat (``app/integrations/jobs.py``). A question about refunds that
names no order ("how long does a refund take?", "do I get my money back for it?") is a knowledge question:
the knowledge action answers it, also when an order was asked about before. After the bot asked for the
order, or could not find the one given, the next id is still for the refund (slot ``refund_requested``).
"""

from __future__ import annotations

from typing import Any

import structlog
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from app.actions import services
from app.actions.context import TurnContext
from app.actions.orders import last_order_id, malformed_reply, order_reference
from app.actions.phrasing import is_question
from app.actions.records import ActionRun, RecordedAction
from app.order_ids import EXAMPLE
from app.tools import ToolError

logger = structlog.get_logger(__name__)

__all__ = ["ActionRequestRefund", "is_question"]


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
        ref = order_reference(tracker)
        if not ref.named and not ref.malformed and is_question(ctx.text):
            from app.actions.knowledge import answer_knowledge

            logger.info("refund.question_to_knowledge", **ctx.log_fields())
            events = await answer_knowledge(dispatcher, tracker, ctx, record)
            return [*events, SlotSet("refund_requested", False)]
        if ref.malformed and not ref.named:
            record.rule = "malformed_order_id"
            dispatcher.utter_message(text=malformed_reply(ref.malformed[0]))
            return [SlotSet("refund_requested", True)]
        order_id = ref.order_id
        try:
            if order_id is None and ref.last_order:
                order_id = await last_order_id(ctx, record)
        except ToolError as exc:
            return self._unavailable(dispatcher, ctx, record, exc, None)
        if order_id is None:
            record.rule = "ask_order_id"
            dispatcher.utter_message(
                text=f"I can request a refund for you. Which order is it? The number looks like {EXAMPLE}."
            )
            return [SlotSet("refund_requested", True)]
        record.rule = "refund_request"
        record.tools.append("request_refund")
        try:
            with record.stage("tool"):
                result = await services.tools().acall(
                    "request_refund", {"order_id": order_id}, ctx.tool_context()
                )
        except ToolError as exc:
            if exc.unavailable:
                return self._unavailable(dispatcher, ctx, record, exc, order_id)
            record.outcome = "rejected"
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
            # the next id the user types is still for this refund
            return [SlotSet("order_id", None), SlotSet("refund_requested", True)]
        ack_id = result.data["job_id"]
        logger.info("refund.requested", job_id=ack_id, order_id=order_id, **ctx.log_fields())
        dispatcher.utter_message(
            text=f"Refund requested for order {order_id} (reference R-{ack_id}). "
            "I'll let you know here as soon as it's processed."
        )
        return [SlotSet("order_id", order_id), SlotSet("refund_requested", False)]

    @staticmethod
    def _unavailable(
        dispatcher: CollectingDispatcher,
        ctx: TurnContext,
        record: ActionRun,
        exc: ToolError,
        order_id: str | None,
    ) -> list[dict[str, Any]]:
        record.outcome = "degraded"
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
