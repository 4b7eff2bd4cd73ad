"""The CRM/backend HTTP service: orders, refunds (background jobs), ticket events and notifications.

``python -m app.integrations.services.crm_service --port N`` serves on loopback (FastAPI + uvicorn); the
launcher starts it before the action server. Backed by our store (``crm_*``, ``jobs``, ``notifications``,
``tickets``); a worker thread runs stored jobs, so a restarted service resumes what was pending.

Endpoints (OpenAPI at ``/openapi.json``; bad input gets a 4xx with ``{"detail": ...}``, never a 500):

- ``GET  /health``
- ``GET  /orders/{tenant}/{order_id}``                  an order (404 if the tenant has none)
- ``GET  /customers/{tenant}/{user}/orders?limit=N``    the user's orders, most recent first
- ``POST /refunds``                                    queue a refund: 202 + job id at once
- ``GET  /jobs/{tenant}/{job_id}``                     a job's status and attempts
- ``GET  /notifications/{tenant}/{user}?after=ID``      pending messages for the user's chat (marked delivered)
- ``POST /tickets/{tenant}/{ticket_id}/status``        change a ticket's status (queues the ticket webhook)
- ``POST /webhooks/tickets``                           the ticket webhook receiver: notifies the ticket's user
- ``GET  /handoffs/{tenant}``                          conversations with a human agent, with transcripts
- ``POST /handoffs/{tenant}/{ticket_id}/messages``     an agent's reply, delivered to the user's chat
- ``POST /handoffs/{tenant}/{ticket_id}/release``      hand the conversation back to the bot

Everything is checked at the edge, so the store only ever sees what it can hold: tenants and users match the
REST channel's patterns (``app.identity``), row ids are integers within the store's ``INTEGER``
(32-bit on PostgreSQL), and texts are UTF-8 without NUL characters (PostgreSQL refuses NUL, every UTF-8 codec
refuses the lone surrogates a JSON ``\\ud800`` escape makes).
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import sqlalchemy as sa
import structlog
import uvicorn
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field

from app.data.db import get_engine
from app.identity import ID_PATTERN, TENANT_PATTERN
from app.integrations.crm import ORDER_ID_PATTERN, CrmStore, Order
from app.integrations.jobs import JobStore, JobWorker, ticket_event_text
from app.integrations.notifications import NotificationStore
from app.integrations.ticketing import TICKET_STATUSES, TicketingClient, TicketNotFound
from app.settings import Settings, get_settings
from app.tenants import assistant_name

logger = structlog.get_logger(__name__)

#: The largest row id the stores hold: ids are ``sa.Integer`` columns, 32-bit signed on PostgreSQL.
MAX_ROW_ID = 2**31 - 1


def storable(text: str) -> str:
    """``text`` if the store can hold it: encodable as UTF-8 (no lone surrogates) and without NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no lone surrogate characters)") from exc
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


def _text(max_length: int, min_length: int = 0) -> Any:
    """A request text of at most ``max_length`` characters that the store can hold."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(storable)]


TenantField = Annotated[str, Field(pattern=TENANT_PATTERN.pattern, examples=["acme"])]
UserField = Annotated[str, Field(pattern=ID_PATTERN.pattern, examples=["alice"])]
Tenant = Annotated[str, Path(pattern=TENANT_PATTERN.pattern, description="tenant id", examples=["acme"])]
User = Annotated[str, Path(pattern=ID_PATTERN.pattern, description="user id", examples=["alice"])]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="a row id of the store")]
Text = _text(4000, min_length=1)
ConversationId = _text(200)
EventId = _text(200, min_length=1)
StatusText = _text(32)
AgentName = _text(64, min_length=1)


class RefundRequest(BaseModel):
    tenant_id: TenantField
    user_id: UserField
    conversation_id: ConversationId = ""
    order_id: str = Field(pattern=ORDER_ID_PATTERN.pattern, examples=["ORD-10042"])


class StatusChange(BaseModel):
    status: Literal[TICKET_STATUSES]  # type: ignore[valid-type]


class TicketEvent(BaseModel):
    event: Literal["ticket.status_changed"]
    event_id: EventId
    tenant_id: TenantField
    ticket_id: int = Field(ge=1, le=MAX_ROW_ID, strict=True)  # a JSON integer: not true, not "1"
    user_id: UserField
    conversation_id: ConversationId = ""
    old_status: StatusText = ""
    status: Literal[TICKET_STATUSES]  # type: ignore[valid-type]


class AgentMessage(BaseModel):
    text: Text
    agent: AgentName = "agent"


# What the endpoints answer (the OpenAPI description; FastAPI checks every reply against it).
Timestamp = Annotated[str, Field(description="ISO 8601 date and time")]


class Problem(BaseModel):
    """A refused request: what was wrong, for the caller."""

    detail: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]


class OrderOut(BaseModel):
    """An order as the service serves it (``Order.to_json()``: ISO date, the amount as text)."""

    tenant_id: str
    order_id: str
    user_id: str
    status: str
    carrier: str | None
    tracking_number: str | None
    estimated_delivery: Annotated[str | None, Field(description="ISO 8601 date")]
    total_eur: Annotated[str, Field(description="the order total in EUR, as a decimal string")]


class CustomerOrders(BaseModel):
    orders: list[OrderOut]


class RefundAccepted(BaseModel):
    job_id: int
    order_id: str
    status: Literal["pending"]


class JobOut(BaseModel):
    id: int
    tenant_id: str
    user_id: str
    conversation_id: str
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    last_error: str | None
    run_after: Timestamp
    created_at: Timestamp
    finished_at: Timestamp | None


class NotificationOut(BaseModel):
    id: int
    tenant_id: str
    user_id: str
    conversation_id: str
    text: str
    created_at: Timestamp


class Notifications(BaseModel):
    notifications: list[NotificationOut]


class TicketOut(BaseModel):
    id: int
    tenant_id: str
    user_id: str
    conversation_id: str
    subject: str
    transcript: str
    status: Literal[TICKET_STATUSES]  # type: ignore[valid-type]
    created_at: Timestamp
    handoff_active: bool


class WebhookAck(BaseModel):
    accepted: bool
    duplicate: bool = Field(description="the event id was seen before: nobody is notified twice")


class Handoffs(BaseModel):
    handoffs: list[TicketOut]


class Delivered(BaseModel):
    ticket_id: int
    delivered_to: str


class HandedBack(BaseModel):
    ticket_id: int
    handoff_active: Literal[False]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the 4xx statuses an endpoint answers with a ``Problem``."""
    meaning = {
        400: "malformed request: an id of the wrong form, or a body that is not JSON",
        404: "not found (or not the caller's)",
        409: "conflicts with the current state",
    }
    return {status: {"model": Problem, "description": meaning[status]} for status in statuses}


def _ticket_json(ticket: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in ticket.items()}


def create_app(settings: Settings | None = None, *, run_worker: bool = True) -> FastAPI:
    """The service over ``settings.db_url``; with ``run_worker`` a job worker runs while the app is up."""
    settings = settings or get_settings()
    engine = get_engine(settings.db_url)
    crm, jobs, notes = CrmStore(engine), JobStore(engine), NotificationStore(engine)
    tickets = TicketingClient(engine)
    worker = JobWorker(
        engine,
        webhook_url=lambda: settings.ticket_webhook,
        webhook_timeout_s=settings.crm_timeout_s,
        poll_s=settings.crm_poll_s,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_worker:
            worker.start()  # resumes every pending job left by an earlier run
        yield
        worker.stop()

    app = FastAPI(title="Switchboard CRM service", version="1", lifespan=lifespan)
    app.state.worker = worker

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with where and what, without echoing the input (it may not even be JSON: ``1e400``)."""
        detail = [{key: error[key] for key in ("type", "loc", "msg")} for error in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        """Last resort: a JSON 500 and a logged traceback, never a traceback to the client."""
        logger.exception("crm.internal_error")
        return JSONResponse({"detail": "The CRM service failed to process the request."}, status_code=500)

    @app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "the store is unreachable"}},
    )
    def health() -> Health | JSONResponse:
        """``ok`` when the store answers."""
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            logger.exception("crm.store_unreachable")
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return Health(status="ok")

    @app.get("/orders/{tenant}/{order_id}", responses=errors(400, 404))
    def get_order(
        tenant: Tenant,
        order_id: Annotated[str, Path(examples=["ORD-10042"])],
        user: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    ) -> Order:
        """An order of the tenant; with ``user``, only when it is that user's (what the bot asks: a
        customer never learns anything about someone else's order, not even that it exists)."""
        if not ORDER_ID_PATTERN.match(order_id):
            raise HTTPException(400, "invalid order id: expected ORD-12345")
        order = crm.get_order(tenant, order_id)
        if order is None or (user is not None and order.user_id != user):
            raise HTTPException(404, f"no order {order_id} for this customer of tenant {tenant}")
        return order  # served as Order.to_json() writes it: ISO date, the amount as text

    @app.get("/customers/{tenant}/{user}/orders")
    def list_orders(
        tenant: Tenant,
        user: User,
        limit: Annotated[int, Query(ge=1, le=50, description="at most this many orders")] = 10,
    ) -> CustomerOrders:
        """The user's own orders in the tenant, most recent first (an empty list when there are none: a
        caller learns nothing about whether the user exists)."""
        return CustomerOrders(
            orders=[OrderOut(**order.to_json()) for order in crm.list_orders(tenant, user, limit)]
        )

    @app.post("/refunds", status_code=202, responses=errors(400, 404, 409))
    def request_refund(body: RefundRequest) -> RefundAccepted:
        """Queue a refund of the user's own order: 202 at once; a worker runs it and notifies the user."""
        order = crm.get_order(body.tenant_id, body.order_id)
        if order is None or order.user_id != body.user_id:  # never reveal other users' orders
            raise HTTPException(404, f"no order {body.order_id} for this user")
        if any(
            job["payload"].get("order_id") == body.order_id
            for job in jobs.for_user(body.tenant_id, body.user_id, "refund")
        ):
            raise HTTPException(409, f"a refund for {body.order_id} was already requested")
        job_id = jobs.enqueue(
            body.tenant_id,
            body.user_id,
            body.conversation_id,
            "refund",
            {"order_id": body.order_id},
            delay_s=settings.crm_job_delay_s,
        )
        logger.info(
            "refund.queued",
            job_id=job_id,
            order_id=body.order_id,
            tenant_id=body.tenant_id,
            user_id=body.user_id,
        )
        return RefundAccepted(job_id=job_id, order_id=body.order_id, status="pending")

    @app.get("/jobs/{tenant}/{job_id}", responses=errors(404))
    def get_job(tenant: Tenant, job_id: RowId) -> JobOut:
        """A job's status and attempts."""
        job = jobs.get(tenant, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} for tenant {tenant}")
        return JobOut(**_ticket_json(job))

    @app.get("/notifications/{tenant}/{user}")
    def get_notifications(
        tenant: Tenant,
        user: User,
        after: Annotated[
            int | None,
            Query(ge=0, le=MAX_ROW_ID, description="the last id the client has (omitted: the undelivered)"),
        ] = None,
    ) -> Notifications:
        """The user's pending messages, marked delivered; ``after`` fetches again from a cursor."""
        rows = notes.fetch(tenant, user, after)
        keep = ("id", "tenant_id", "user_id", "conversation_id", "text", "created_at")
        return Notifications(
            notifications=[NotificationOut(**_ticket_json({k: row[k] for k in keep})) for row in rows]
        )

    @app.post("/tickets/{tenant}/{ticket_id}/status", responses=errors(400, 404))
    def change_status(tenant: Tenant, ticket_id: RowId, body: StatusChange) -> TicketOut:
        """Change a ticket's status; the ticket webhook then tells the user."""
        try:
            return TicketOut(**_ticket_json(tickets.set_status(tenant, ticket_id, body.status)))
        except TicketNotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.post("/webhooks/tickets", responses=errors(400))
    def ticket_webhook(event: TicketEvent) -> WebhookAck:
        """The ticket webhook receiver: notifies the ticket's user, once per event id."""
        created = notes.notify(
            event.tenant_id,
            event.user_id,
            event.conversation_id,
            event.event_id,
            ticket_event_text(event.model_dump()),
        )
        return WebhookAck(accepted=True, duplicate=not created)

    @app.get("/handoffs/{tenant}")
    def open_handoffs(tenant: Tenant) -> Handoffs:
        """Conversations handed to a human agent, with their transcripts."""
        return Handoffs(handoffs=[TicketOut(**_ticket_json(t)) for t in tickets.open_handoffs(tenant)])

    def _active_ticket(tenant: str, ticket_id: int) -> dict[str, Any]:
        try:
            ticket = tickets.get_ticket(tenant, ticket_id)
        except TicketNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        if not ticket["handoff_active"]:
            raise HTTPException(409, f"ticket #{ticket_id} is not handed off to an agent")
        return ticket

    @app.post("/handoffs/{tenant}/{ticket_id}/messages", status_code=201, responses=errors(400, 404, 409))
    def agent_reply(tenant: Tenant, ticket_id: RowId, body: AgentMessage) -> Delivered:
        """An agent's reply: appended to the transcript and delivered to the user's chat."""
        ticket = _active_ticket(tenant, ticket_id)
        tickets.append_transcript(tenant, ticket_id, f"agent ({body.agent}): {body.text}")
        notes.notify(
            tenant, ticket["user_id"], ticket["conversation_id"], f"agent:{uuid.uuid4().hex}", body.text
        )
        return Delivered(ticket_id=ticket_id, delivered_to=ticket["user_id"])

    @app.post("/handoffs/{tenant}/{ticket_id}/release", responses=errors(404, 409))
    def hand_back(tenant: Tenant, ticket_id: RowId) -> HandedBack:
        """Hand the conversation back to the bot and tell the user."""
        ticket = _active_ticket(tenant, ticket_id)
        tickets.end_handoff(tenant, ticket_id)
        tickets.append_transcript(tenant, ticket_id, "system: handed back to the bot")
        notes.notify(
            tenant,
            ticket["user_id"],
            ticket["conversation_id"],
            f"release:{ticket_id}:{uuid.uuid4().hex}",
            f"You're back with {assistant_name(tenant)}. How can I help?",
        )
        return HandedBack(ticket_id=ticket_id, handoff_active=False)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.integrations.services.crm_service")
    settings = get_settings()
    parser.add_argument("--port", type=int, default=settings.crm_port)
    parser.add_argument("--host", default=settings.host)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
