"""The bot's tools: the CRM (order status, refunds) and the helpdesk (tickets), written once for the Rasa
actions and the LLM tiers alike (``app.tools.registry``).

Offered to LLMs (``llm=True``): the read-only ``order_status``, ``my_orders`` and ``my_tickets``. Not offered: the tools
with side effects (``request_refund``, ``open_ticket``): a model's tool call must never move money or open
tickets on its own; the dialogue (rules, slots, confirmation) triggers those through the actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import SQLAlchemyError

from app.integrations.crm import CrmClient, CrmUnavailable, normalise_order_id
from app.integrations.http import ServiceRejected
from app.integrations.ticketing import TicketingClient
from app.tools.registry import Tool, ToolContext, ToolRegistry, ToolRejected, ToolUnavailable


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderInput(_Input):
    order_id: str = Field(description="The order number, e.g. ORD-10042", max_length=40)

    @field_validator("order_id")
    @classmethod
    def _normalise(cls, value: str) -> str:
        order_id = normalise_order_id(value)
        if order_id is None:
            raise ValueError("an order number looks like ORD-12345")
        return order_id


class OrdersInput(_Input):
    limit: int = Field(default=5, ge=1, le=20, description="at most this many orders, most recent first")


class TicketInput(_Input):
    subject: str = Field(min_length=1, max_length=200)
    transcript: str = Field(default="", max_length=100_000)
    handoff: bool = Field(default=False, description="put the conversation in the human agents' queue")


class NoInput(_Input):
    pass


def _crm_errors(call: Callable[[], Any]) -> Any:
    """CRM client exceptions as the registry's: down -> unavailable, a 4xx -> rejected."""
    try:
        return call()
    except CrmUnavailable as exc:
        raise ToolUnavailable(str(exc)) from exc
    except ServiceRejected as exc:
        raise ToolRejected(exc.detail, exc.status) from exc


def _store_errors(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except SQLAlchemyError as exc:
        raise ToolUnavailable(f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc


def crm_tools(crm: Callable[[], CrmClient], *, timeout_s: float) -> list[Tool]:
    """``order_status``, ``my_orders`` and ``request_refund`` over the CRM service (``crm()`` gives the
    client)."""

    def order_status(ctx: ToolContext, args: OrderInput) -> dict[str, Any]:
        # only the asking user's own order: another customer's is "not found", status and all withheld
        order = _crm_errors(lambda: crm().get_order(ctx.tenant_id, args.order_id, ctx.user_id))
        if order is None or order.user_id != ctx.user_id:
            return {"found": False, "order_id": args.order_id}
        data = order.to_json()
        del data["user_id"], data["tenant_id"]
        return {"found": True, **data}

    def my_orders(ctx: ToolContext, args: OrdersInput) -> dict[str, Any]:
        # the turn's user only: the identity never comes from the arguments
        found = _crm_errors(lambda: crm().list_orders(ctx.tenant_id, ctx.user_id, args.limit))
        listed = []
        for order in found:
            data = order.to_json()
            del data["user_id"], data["tenant_id"]
            listed.append(data)
        return {"orders": listed}

    def request_refund(ctx: ToolContext, args: OrderInput) -> dict[str, Any]:
        ack = _crm_errors(
            lambda: crm().request_refund(ctx.tenant_id, ctx.user_id, ctx.conversation_id, args.order_id)
        )
        if ack is None:
            return {"found": False, "order_id": args.order_id}
        return {"found": True, "order_id": ack.order_id, "job_id": ack.job_id, "status": ack.status}

    return [
        Tool(
            "order_status",
            "Status, carrier, tracking number and estimated delivery of an order.",
            OrderInput,
            order_status,
            timeout_s=timeout_s,
            breaker="crm",
            llm=True,
        ),
        Tool(
            "my_orders",
            "The user's own orders, most recent first: id, status, carrier, tracking number, "
            "estimated delivery and total.",
            OrdersInput,
            my_orders,
            timeout_s=timeout_s,
            breaker="crm",
            llm=True,
        ),
        Tool(
            "request_refund",
            "Queue a refund of one of the user's orders; the outcome is announced later.",
            OrderInput,
            request_refund,
            timeout_s=timeout_s,
            breaker="crm",
        ),
    ]


def ticket_tools(ticketing: Callable[[], TicketingClient], *, timeout_s: float = 5.0) -> list[Tool]:
    """``open_ticket`` and ``my_tickets`` over the helpdesk (tickets in our store)."""

    def open_ticket(ctx: ToolContext, args: TicketInput) -> dict[str, Any]:
        ticket = _store_errors(
            lambda: ticketing().open_ticket(
                ctx.tenant_id,
                ctx.user_id,
                ctx.conversation_id,
                args.subject,
                args.transcript,
                handoff=args.handoff,
            )
        )
        return {"ticket_id": ticket.id, "status": ticket.status}

    def my_tickets(ctx: ToolContext, args: NoInput) -> dict[str, Any]:
        rows = _store_errors(lambda: ticketing().list_tickets(ctx.tenant_id, ctx.user_id))
        return {
            "tickets": [
                {
                    "ticket_id": r["id"],
                    "subject": r["subject"],
                    "status": r["status"],
                    "opened": r["created_at"].isoformat() if r.get("created_at") else None,
                }
                for r in rows[-10:]
            ]
        }

    return [
        Tool(
            "open_ticket",
            "Open a helpdesk ticket with the conversation's transcript.",
            TicketInput,
            open_ticket,
            timeout_s=timeout_s,
            breaker="ticketing",
        ),
        Tool(
            "my_tickets",
            "The user's most recent support tickets and their status.",
            NoInput,
            my_tickets,
            timeout_s=timeout_s,
            breaker="ticketing",
            llm=True,
        ),
    ]


def build_registry(
    crm: Callable[[], CrmClient], ticketing: Callable[[], TicketingClient], *, crm_timeout_s: float
) -> ToolRegistry:
    """Every built-in tool in one registry."""
    return ToolRegistry([*crm_tools(crm, timeout_s=crm_timeout_s), *ticket_tools(ticketing)])
