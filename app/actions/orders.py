"""Order status from the CRM service: the ``order_status`` tool (a synchronous HTTP call with the tool's
timeout and the ``crm`` breaker; the same tool the LLM tiers may call).

Which order a turn is about (:func:`order_reference`): the ids the message names, as people type them
(``ORD-20051``, ``ord 20051``, ``#20061``, ``order 20051``, or the bare number: every order skill is an order
conversation; :mod:`app.order_ids`), else "my last order" (the user's most recent order, ``my_orders`` tool),
else the one asked about before (slot ``order_id``). A malformed id (``ORD-12``) gets a request for a valid
number, never a look-up of an older id. A question that asks *why* or what a status *means* is answered from
the help articles: the skill knows the status, the articles explain it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import structlog
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from app.actions import services
from app.actions.context import TurnContext
from app.actions.phrasing import is_question
from app.actions.records import ActionRun, RecordedAction
from app.integrations.crm import Order
from app.order_ids import EXAMPLE, find_order_ids, malformed_order_ids, normalise_order_id
from app.tools import ToolError
from nlu.context import previous_turn_actions

logger = structlog.get_logger(__name__)


STATUS_TEXT = {
    "processing": "is being prepared in our warehouse",
    "shipped": "has shipped",
    "out_for_delivery": "is out for delivery today",
    "delivered": "was delivered",
    "cancelled": "was cancelled",
}
#: At most this many orders named in one message are looked up ("where are ORD-20201 and ORD-20202?").
MAX_ORDERS_PER_TURN = 3

LAST_ORDER = re.compile(
    r"\b(?:my\s+)?(?:last|latest|most\s+recent|newest|previous)\s+(?:order|parcel|package|purchase|delivery)\b",
    re.IGNORECASE,
)
# "why was it cancelled?", "what does 'awaiting payment' mean": an explanation, which the articles give
EXPLANATION = re.compile(r"^\W*why\b|\bwhat\s+(?:does|do|is)\b.*\bmean", re.IGNORECASE)

UNAVAILABLE = (
    "I can't reach our order system right now. Please try again in a few minutes, or ask to talk to a person."
)


@dataclass(frozen=True)
class OrderReference:
    """What a turn says about which order it is about."""

    named: tuple[str, ...]  # ids typed (or extracted) in this message, canonical
    malformed: tuple[str, ...]  # attempts at an id that are none (``ORD-12``), as typed
    last_order: bool  # "my last order"
    slot: str | None  # the order asked about before

    @property
    def order_id(self) -> str | None:
        """The id to act on: the first named, else (no malformed attempt) the slot's."""
        if self.named:
            return self.named[0]
        return None if self.malformed else self.slot


def order_reference(tracker: Tracker) -> OrderReference:
    """Which order this turn is about (see the module docstring); an order skill's turn is an order
    conversation, so a bare five-digit number counts."""
    text = (tracker.latest_message or {}).get("text") or ""
    named = find_order_ids(text, order_context=True)
    entity = normalise_order_id(next(tracker.get_latest_entity_values("order_id"), None) or "")
    if entity and entity not in named:
        named.append(entity)
    slot = normalise_order_id(tracker.get_slot("order_id") or "")
    return OrderReference(tuple(named), tuple(malformed_order_ids(text)), bool(LAST_ORDER.search(text)), slot)


def find_order_id(tracker: Tracker) -> str | None:
    """The order id of this turn: one named in the message, or the one asked about before."""
    return order_reference(tracker).order_id


def malformed_reply(typed: str) -> str:
    return (
        f"{typed} doesn't look like an order number: it's ORD followed by five digits, like {EXAMPLE}. "
        "Could you check it? It's in your order confirmation email."
    )


async def last_order_id(ctx: TurnContext, record: ActionRun) -> str | None:
    """The user's most recent order (``my_orders``; identity from the turn); None when they have none.
    Raises ToolError when the CRM cannot answer."""
    record.tools.append("my_orders")
    with record.stage("tool"):
        result = await services.tools().acall("my_orders", {"limit": 1}, ctx.tool_context())
    orders = result.data["orders"]
    return orders[0]["order_id"] if orders else None


async def look_up(ctx: TurnContext, record: ActionRun, order_id: str) -> Order | None:
    """The user's order (``order_status``); None when it is not theirs or does not exist. Raises ToolError."""
    record.tools.append("order_status")
    with record.stage("tool"):
        result = await services.tools().acall("order_status", {"order_id": order_id}, ctx.tool_context())
    logger.info("crm.order_lookup", order_id=order_id, found=result.data["found"], **ctx.log_fields())
    if not result.data["found"]:
        return None
    return Order.from_json({**result.data, "tenant_id": ctx.tenant_id, "user_id": ctx.user_id})


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
        # an id now is for tracking, not for a refund asked about earlier
        events: list[dict[str, Any]] = (
            [SlotSet("refund_requested", False)] if tracker.get_slot("refund_requested") else []
        )
        ref = order_reference(tracker)
        # "why was it cancelled?"; "how long until it's back on my card?" right after a refund was requested: a
        # question for the articles, not the order's status again
        after_refund = "action_request_refund" in previous_turn_actions(tracker.events)
        if not ref.named and (EXPLANATION.search(ctx.text) or (after_refund and is_question(ctx.text))):
            from app.actions.knowledge import answer_knowledge

            return [*events, *await answer_knowledge(dispatcher, tracker, ctx, record)]
        if ref.malformed and not ref.named:
            record.rule = "malformed_order_id"
            dispatcher.utter_message(text=malformed_reply(ref.malformed[0]))
            return events
        try:
            order_ids = list(ref.named[:MAX_ORDERS_PER_TURN])
            if not order_ids and ref.last_order:
                record.rule = "last_order"
                if (last := await last_order_id(ctx, record)) is None:
                    dispatcher.utter_message(text="I can't find any orders on your account.")
                    return events
                order_ids = [last]
            if not order_ids and ref.slot:
                order_ids = [ref.slot]
            if not order_ids:
                record.rule = "ask_order_id"
                dispatcher.utter_message(text=f"Sure! What's your order number? It looks like {EXAMPLE}.")
                return events
            record.rule = record.rule or "order_lookup"
            orders = [await look_up(ctx, record, order_id) for order_id in order_ids]
        except ToolError as exc:
            record.outcome = "degraded"
            logger.error("crm.unavailable", reason=exc.reason, error=exc.message[:200], **ctx.log_fields())
            dispatcher.utter_message(text=UNAVAILABLE)
            return [*events, *([SlotSet("order_id", ref.order_id)] if ref.order_id else [])]
        for order_id, order in zip(order_ids, orders, strict=True):
            if order is None:
                dispatcher.utter_message(
                    text=f"I couldn't find an order {order_id}. Please check the number "
                    "(it's in your confirmation email), or ask to talk to a person."
                )
            else:
                dispatcher.utter_message(text=describe(order))
        found = [order.order_id for order in orders if order is not None]
        if not found:
            record.outcome = "not_found"
        return [*events, SlotSet("order_id", found[0] if found else None)]
