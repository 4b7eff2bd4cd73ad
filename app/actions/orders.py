"""Order status from the CRM service: the ``order_status`` tool (a synchronous HTTP call with the tool's
timeout and the ``crm`` breaker; the same tool the LLM tiers may call)."""

from __future__ import annotations

from typing import Any

import structlog
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from app.actions import services
from app.actions.context import TurnContext
from app.actions.records import ActionRun, RecordedAction
from app.integrations.crm import Order, normalise_order_id
from app.orchestration.router import ORDER_ID_IN_TEXT
from app.tools import ToolError

logger = structlog.get_logger(__name__)


STATUS_TEXT = {
    "processing": "is being prepared in our warehouse",
    "shipped": "has shipped",
    "out_for_delivery": "is out for delivery today",
    "delivered": "was delivered",
    "cancelled": "was cancelled",
}


def find_order_id(tracker: Tracker) -> str | None:
    """The order id of this turn: the extracted entity, an id in the text, or the one asked about before."""
    candidates = [
        next(tracker.get_latest_entity_values("order_id"), None),
        *ORDER_ID_IN_TEXT.findall((tracker.latest_message or {}).get("text") or ""),
        tracker.get_slot("order_id"),
    ]
    for candidate in candidates:
        if candidate and (order_id := normalise_order_id(candidate)):
            return order_id
    return None


def describe(order: Order) -> str:
    text = f"Your order {order.order_id} {STATUS_TEXT.get(order.status, f'is {order.status}')}"
    if order.status in {"shipped", "out_for_delivery"} and order.carrier:
        text += f" with {order.carrier} (tracking number {order.tracking_number})"
    if order.status in {"processing", "shipped", "out_for_delivery"} and order.estimated_delivery:
        text += f". Estimated delivery: {order.estimated_delivery:%A %d %B %Y}"
    return text + "."


class ActionTrackOrder(RecordedAction):
    def name(self) -> str:
        return "action_track_order"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        order_id = find_order_id(tracker)
        if order_id is None:
            record.rule = "ask_order_id"
            dispatcher.utter_message(text="Sure! What's your order number? It looks like ORD-12345.")
            return []
        record.rule, record.tools = "order_lookup", ["order_status"]
        try:
            with record.stage("tool"):
                result = await services.tools().acall(
                    "order_status", {"order_id": order_id}, ctx.tool_context()
                )
        except ToolError as exc:
            record.outcome = "degraded"
            logger.error(
                "crm.unavailable",
                order_id=order_id,
                reason=exc.reason,
                error=exc.message[:200],
                **ctx.log_fields(),
            )
            dispatcher.utter_message(
                text="I can't reach our order system right now. Please try again in a few minutes, "
                "or ask to talk to a person."
            )
            return [SlotSet("order_id", order_id)]
        found = result.data["found"]
        logger.info("crm.order_lookup", order_id=order_id, found=found, **ctx.log_fields())
        if not found:
            record.outcome = "not_found"
            dispatcher.utter_message(
                text=f"I couldn't find an order {order_id}. Please check the number "
                "(it's in your confirmation email), or ask to talk to a person."
            )
            return [SlotSet("order_id", None)]
        order = Order.from_json({**result.data, "tenant_id": ctx.tenant_id, "user_id": ctx.user_id})
        dispatcher.utter_message(text=describe(order))
        return [SlotSet("order_id", order_id)]
