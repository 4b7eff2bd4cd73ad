"""The CRM/backend HTTP service: orders, refunds (background jobs), ticket events and notifications.

``python -m app.integrations.services.crm_service --port N`` serves on loopback (FastAPI + uvicorn); the
launcher starts it before the action server. Backed by our store (``crm_*``, ``jobs``, ``notifications``,
``tickets``); a worker thread runs stored jobs, so a restarted service resumes what was pending.

Endpoints (bad input gets a 4xx with ``{"detail": ...}``):

- ``GET  /health``
- ``GET  /orders/{tenant}/{order_id}``                  an order (404 if the tenant has none)
- ``POST /refunds``                                    queue a refund: 202 + job id at once
- ``GET  /jobs/{tenant}/{job_id}``                     a job's status and attempts
- ``GET  /notifications/{tenant}/{user}?after=ID``      pending messages for the user's chat (marked delivered)
- ``POST /tickets/{tenant}/{ticket_id}/status``        change a ticket's status (queues the ticket webhook)
- ``POST /webhooks/tickets``                           the ticket webhook receiver: notifies the ticket's user
- ``GET  /handoffs/{tenant}``                          conversations with a human agent, with transcripts
- ``POST /handoffs/{tenant}/{ticket_id}/messages``     an agent's reply, delivered to the user's chat
- ``POST /handoffs/{tenant}/{ticket_id}/release``      hand the conversation back to the bot
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
from fastapi import FastAPI, HTTPException, Path, Query
from pydantic import BaseModel, Field

from app.data.db import get_engine
from app.integrations.crm import ORDER_ID_PATTERN, CrmStore
from app.integrations.jobs import JobStore, JobWorker, ticket_event_text
from app.integrations.notifications import NotificationStore
from app.integrations.ticketing import TICKET_STATUSES, TicketingClient, TicketNotFound
from app.settings import Settings, get_settings

logger = structlog.get_logger(__name__)

Id = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]
Text = Annotated[str, Field(min_length=1, max_length=4000)]


class RefundRequest(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=128)
    conversation_id: str = Field(default="", max_length=200)
    order_id: str = Field(pattern=ORDER_ID_PATTERN.pattern)


class StatusChange(BaseModel):
    status: Literal[TICKET_STATUSES]  # type: ignore[valid-type]


class TicketEvent(BaseModel):
    event: Literal["ticket.status_changed"]
    event_id: str = Field(min_length=1, max_length=200)
    tenant_id: str = Field(min_length=1, max_length=64)
    ticket_id: int
    user_id: str = Field(min_length=1, max_length=128)
    conversation_id: str = Field(default="", max_length=200)
    old_status: str = ""
    status: Literal[TICKET_STATUSES]  # type: ignore[valid-type]


class AgentMessage(BaseModel):
    text: Text
    agent: str = Field(default="agent", min_length=1, max_length=64)


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

    app = FastAPI(title="Switchboard CRM service", lifespan=lifespan)
    app.state.worker = worker

    @app.get("/health")
    def health() -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/orders/{tenant}/{order_id}")
    def get_order(tenant: Id, order_id: str, user: Id | None = None) -> dict[str, Any]:
        """An order of the tenant; with ``user``, only when it is that user's (what the bot asks: a
        customer never learns anything about someone else's order, not even that it exists)."""
        if not ORDER_ID_PATTERN.match(order_id):
            raise HTTPException(400, f"invalid order id {order_id!r}: expected ORD-12345")
        order = crm.get_order(tenant, order_id)
        if order is None or (user is not None and order.user_id != user):
            raise HTTPException(404, f"no order {order_id} for this customer of tenant {tenant}")
        return order.to_json()

    @app.post("/refunds", status_code=202)
    def request_refund(body: RefundRequest) -> dict[str, Any]:
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
        return {"job_id": job_id, "order_id": body.order_id, "status": "pending"}

    @app.get("/jobs/{tenant}/{job_id}")
    def get_job(tenant: Id, job_id: int) -> dict[str, Any]:
        job = jobs.get(tenant, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} for tenant {tenant}")
        return _ticket_json(job)

    @app.get("/notifications/{tenant}/{user}")
    def get_notifications(tenant: Id, user: Id, after: Annotated[int | None, Query(ge=0)] = None) -> dict:
        rows = notes.fetch(tenant, user, after)
        keep = ("id", "tenant_id", "user_id", "conversation_id", "text", "created_at")
        return {"notifications": [_ticket_json({k: row[k] for k in keep}) for row in rows]}

    @app.post("/tickets/{tenant}/{ticket_id}/status")
    def change_status(tenant: Id, ticket_id: int, body: StatusChange) -> dict[str, Any]:
        try:
            return _ticket_json(tickets.set_status(tenant, ticket_id, body.status))
        except TicketNotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.post("/webhooks/tickets")
    def ticket_webhook(event: TicketEvent) -> dict[str, Any]:
        created = notes.notify(
            event.tenant_id,
            event.user_id,
            event.conversation_id,
            event.event_id,
            ticket_event_text(event.model_dump()),
        )
        return {"accepted": True, "duplicate": not created}

    @app.get("/handoffs/{tenant}")
    def open_handoffs(tenant: Id) -> dict[str, Any]:
        return {"handoffs": [_ticket_json(t) for t in tickets.open_handoffs(tenant)]}

    def _active_ticket(tenant: str, ticket_id: int) -> dict[str, Any]:
        try:
            ticket = tickets.get_ticket(tenant, ticket_id)
        except TicketNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        if not ticket["handoff_active"]:
            raise HTTPException(409, f"ticket #{ticket_id} is not handed off to an agent")
        return ticket

    @app.post("/handoffs/{tenant}/{ticket_id}/messages", status_code=201)
    def agent_reply(tenant: Id, ticket_id: int, body: AgentMessage) -> dict[str, Any]:
        ticket = _active_ticket(tenant, ticket_id)
        tickets.append_transcript(tenant, ticket_id, f"agent ({body.agent}): {body.text}")
        notes.notify(
            tenant, ticket["user_id"], ticket["conversation_id"], f"agent:{uuid.uuid4().hex}", body.text
        )
        return {"ticket_id": ticket_id, "delivered_to": ticket["user_id"]}

    @app.post("/handoffs/{tenant}/{ticket_id}/release")
    def hand_back(tenant: Id, ticket_id: int) -> dict[str, Any]:
        ticket = _active_ticket(tenant, ticket_id)
        tickets.end_handoff(tenant, ticket_id)
        tickets.append_transcript(tenant, ticket_id, "system: handed back to the bot")
        notes.notify(
            tenant,
            ticket["user_id"],
            ticket["conversation_id"],
            f"release:{ticket_id}:{uuid.uuid4().hex}",
            "You're back with the Northwind Goods assistant. How can I help?",
        )
        return {"ticket_id": ticket_id, "handoff_active": False}

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
