"""The common support situations: cancellations, complaints, problems with a delivery, a changed address.

Each is a question or a request (:mod:`app.actions.phrasing`), and the two get different answers:

- ``cancel_order``: "how late can I cancel?" is answered from the help article; "cancel ORD-20031" (or "can
  you cancel my order?") goes to a person, who can still stop an order (``action_cancel_order``);
- ``complaint``: "where do I send a formal complaint?" is answered from the articles; a grievance ("third
  late delivery, I'm fed up") goes to a person (``action_complaint``);
- ``damaged_item``, ``wrong_item``, ``missing_item``, ``double_charge``: a question, or a problem stated
  without an order number, gets the article's answer (what to do, what we offer, the deadlines); a problem
  reported for a named order of the user's becomes a ticket with the details (the order, its status, the
  kind of problem, the transcript) for the support team (``action_report_problem``);
- ``change_address``: a question gets the article's answer; a request naming an order gets what is possible
  for that order's status from the CRM (``action_change_address``).

Orders are the user's own only (the tools take the identity from the turn); another customer's is "not found".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import structlog
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from app.actions import services
from app.actions.context import TurnContext, transcript
from app.actions.handoff import hand_over, ticket_failure_text
from app.actions.orders import UNAVAILABLE, OrderReference, look_up, malformed_reply, order_reference
from app.actions.phrasing import is_question, is_request
from app.actions.records import ActionRun, RecordedAction
from app.integrations.crm import Order
from app.orchestration.handlers import SKILL
from app.tools import ToolError

logger = structlog.get_logger(__name__)

#: The problems a ticket is opened for: intent -> (ticket subject, what the user is told will happen).
PROBLEMS: dict[str, tuple[str, str]] = {
    "damaged_item": (
        "Damaged or faulty item",
        "our support team will arrange a replacement or a full refund, whichever you prefer. Please keep the "
        "item and its packaging until the case is closed, and reply to our email with photos of the damage",
    ),
    "wrong_item": (
        "Wrong item received",
        "our support team will send you the right item and a free return label for the wrong one",
    ),
    "missing_item": (
        "Item or parcel missing",
        "our support team will check with the warehouse and the carrier and send you what is missing, "
        "or refund it",
    ),
    "double_charge": (
        "Charged twice",
        "our billing team will compare the charges with the order and refund a real duplicate. An amount "
        "marked as pending is a reservation, not a charge, and your bank releases it by itself",
    ),
}


async def _answer_from_articles(
    dispatcher: CollectingDispatcher, tracker: Tracker, ctx: TurnContext, record: ActionRun
) -> list[dict[str, Any]]:
    from app.actions.knowledge import answer_knowledge

    return await answer_knowledge(dispatcher, tracker, ctx, record)


class _AnswerOrHandOver(RecordedAction, ABC):
    """A question gets the help articles; anything else the intent's response and a person."""

    response: str  # said before the handoff
    reason: str  # in the ticket's subject and the record's rule

    @abstractmethod
    def asks_about_it(self, text: str) -> bool:
        """Whether ``text`` is a question for the articles rather than a request for a person."""

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        if self.asks_about_it(ctx.text):
            return await _answer_from_articles(dispatcher, tracker, ctx, record)
        dispatcher.utter_message(response=self.response)
        return hand_over(dispatcher, tracker, ctx, record, self.reason)


class ActionCancelOrder(_AnswerOrHandOver):
    """A question about cancelling: the article. A request to cancel: a person (they can still stop it)."""

    response, reason = "utter_cancel_order", "cancellation"

    def name(self) -> str:
        return "action_cancel_order"

    def asks_about_it(self, text: str) -> bool:
        return not is_request(text)


class ActionComplaint(_AnswerOrHandOver):
    """A question about how to complain: the articles. A grievance: an apology and a person."""

    response, reason = "utter_complaint", "complaint"

    def name(self) -> str:
        return "action_complaint"

    def asks_about_it(self, text: str) -> bool:
        # "where do I send a formal complaint?" asks about complaining; "why does everything go wrong?" is one
        return is_question(text) and "complain" in text.lower()


async def _users_order(
    dispatcher: CollectingDispatcher, ctx: TurnContext, record: ActionRun, ref: OrderReference
) -> Order | None:
    """The user's order the turn names, or None after telling the user why not (a malformed id, the CRM
    down, no such order of theirs)."""
    if not ref.named:
        record.rule = "malformed_order_id"
        dispatcher.utter_message(text=malformed_reply(ref.malformed[0]))
        return None
    try:
        order = await look_up(ctx, record, ref.named[0])
    except ToolError as exc:
        record.outcome = "degraded"
        logger.error("crm.unavailable", reason=exc.reason, error=exc.message[:200], **ctx.log_fields())
        dispatcher.utter_message(text=UNAVAILABLE)
        return None
    if order is None:
        record.outcome = "not_found"
        dispatcher.utter_message(
            text=f"I couldn't find an order {ref.named[0]} on your account. Please check the number "
            "(it's in your confirmation email)."
        )
    return order


class ActionReportProblem(RecordedAction):
    """A damaged, wrong or missing item, or a double charge: the article, or a ticket for a named order."""

    def name(self) -> str:
        return "action_report_problem"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        intent = ((tracker.latest_message or {}).get("intent") or {}).get("name") or ""
        subject, next_steps = PROBLEMS.get(intent, ("Problem with an order", "our support team will reply"))
        ref = order_reference(tracker)
        if (not ref.named and not ref.malformed) or not is_request(ctx.text):
            return await _answer_from_articles(dispatcher, tracker, ctx, record)
        record.handler, record.rule = SKILL, "problem_report"
        if (order := await _users_order(dispatcher, ctx, record, ref)) is None:
            return []
        record.tools.append("open_ticket")
        details = (
            f"{subject}: order {order.order_id} (status {order.status}, total EUR {order.total_eur})\n"
            f"Reported in the chat: {ctx.text}\n\n{transcript(tracker)}"
        )
        try:
            with record.stage("ticket"):
                result = await services.tools().acall(
                    "open_ticket",
                    {"subject": f"{subject}: {order.order_id}", "transcript": details},
                    ctx.tool_context(),
                )
        except ToolError as exc:
            record.outcome = "degraded"
            logger.error("ticket.open_failed", reason=exc.reason, error=exc.message, **ctx.log_fields())
            dispatcher.utter_message(text=ticket_failure_text(ctx.tenant_id))
            return []
        record.ticket_id = int(result.data["ticket_id"])
        logger.info("problem.reported", kind=intent, order_id=order.order_id, ticket_id=record.ticket_id,
                    **ctx.log_fields())  # fmt: skip
        dispatcher.utter_message(
            text=f"I'm sorry about that. I've opened ticket #{record.ticket_id} for order {order.order_id}: "
            f"{next_steps}. We'll get back to you by email."
        )
        return []


def address_change_text(order: Order) -> str:
    """What can be done about the delivery address of ``order``, given its status."""
    if order.status == "processing":
        return (
            f"Your order {order.order_id} is already being prepared in our warehouse, so its delivery address "
            "can no longer be changed. Once it ships, you can redirect the parcel with the carrier's options "
            "on the tracking page."
        )
    if order.status in ("shipped", "out_for_delivery"):
        tracking = f" (tracking number {order.tracking_number})" if order.tracking_number else ""
        return (
            f"Your order {order.order_id} is on its way with {order.carrier or 'the carrier'}{tracking}. To "
            "have it delivered somewhere else, use the redirect options on the carrier's tracking page."
        )
    if order.status == "delivered":
        return f"Your order {order.order_id} was already delivered, so its address can't be changed any more."
    if order.status == "cancelled":
        return f"Your order {order.order_id} was cancelled, so there is no delivery to change."
    return f"Your order {order.order_id} is {order.status}; please ask to talk to a person to change it."


class ActionChangeAddress(RecordedAction):
    """A question about changing the address: the article. A request for a named order: what its status
    allows."""

    def name(self) -> str:
        return "action_change_address"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        ref = order_reference(tracker)
        if not ref.named and not ref.malformed:
            return await _answer_from_articles(dispatcher, tracker, ctx, record)
        record.handler, record.rule = SKILL, "address_change"
        if (order := await _users_order(dispatcher, ctx, record, ref)) is None:
            return []
        dispatcher.utter_message(text=address_change_text(order))
        return []
