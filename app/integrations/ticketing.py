"""Ticketing client: tickets for human agents, the handoff state of a conversation, and status changes.

Tickets live in our store (the local stand-in for a helpdesk such as Zendesk or ServiceNow). While a
ticket's ``handoff_active`` is true a human agent has its conversation and the bot stays silent; user
messages are appended to the ticket's transcript. A status change queues a ``ticket_webhook`` job in the
same transaction (an outbox), which the CRM service's worker posts to the ticket webhook until delivered.
Retention (app/data/retention.py) erases and ages tickets through :class:`TicketRetention`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from app.data import retention
from app.data.schema import jobs, tickets

TICKET_STATUSES = ("open", "pending", "resolved", "closed")


@dataclass(frozen=True)
class Ticket:
    id: int
    tenant_id: str
    user_id: str
    conversation_id: str
    subject: str
    status: str


class TicketNotFound(LookupError):
    """No ticket with this id (for this tenant)."""


class TicketingClient:
    """Tickets in our store."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def open_ticket(
        self,
        tenant_id: str,
        user_id: str,
        conversation_id: str,
        subject: str,
        transcript: str,
        *,
        handoff: bool = False,
    ) -> Ticket:
        """A new open ticket; ``handoff=True`` also silences the bot in that conversation."""
        values = {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "conversation_id": conversation_id,
            "subject": subject[:200],
            "transcript": transcript,
            "status": "open",
            "created_at": datetime.now(UTC),
            "handoff_active": handoff,
        }
        with self.engine.begin() as conn:
            ticket_id = conn.execute(sa.insert(tickets).values(**values)).inserted_primary_key[0]
        return Ticket(
            id=ticket_id,
            **{k: values[k] for k in ("tenant_id", "user_id", "conversation_id", "subject", "status")},
        )

    def list_tickets(self, tenant_id: str, user_id: str | None = None) -> list[dict]:
        query = sa.select(tickets).where(tickets.c.tenant_id == tenant_id).order_by(tickets.c.id)
        if user_id is not None:
            query = query.where(tickets.c.user_id == user_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def get_ticket(self, tenant_id: str, ticket_id: int) -> dict:
        query = sa.select(tickets).where(tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise TicketNotFound(f"no ticket #{ticket_id} for tenant {tenant_id}")
        return dict(row)

    # --- handoff -------------------------------------------------------------------------------------
    def active_handoff(self, tenant_id: str, conversation_id: str) -> dict | None:
        """The newest ticket that has this conversation with a human, or None (the bot may answer)."""
        query = (
            sa.select(tickets)
            .where(
                tickets.c.tenant_id == tenant_id,
                tickets.c.conversation_id == conversation_id,
                tickets.c.handoff_active.is_(True),
            )
            .order_by(tickets.c.id.desc())
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def open_handoffs(self, tenant_id: str) -> list[dict]:
        """Tickets whose conversation is with a human agent now, oldest first (the agent's queue)."""
        query = (
            sa.select(tickets)
            .where(tickets.c.tenant_id == tenant_id, tickets.c.handoff_active.is_(True))
            .order_by(tickets.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def append_transcript(self, tenant_id: str, ticket_id: int, line: str) -> None:
        """Add one line (``user: ...`` / ``agent: ...``) to the ticket's transcript."""
        with self.engine.begin() as conn:
            current = conn.execute(
                sa.select(tickets.c.transcript).where(
                    tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id
                )
            ).scalar()
            if current is None:
                raise TicketNotFound(f"no ticket #{ticket_id} for tenant {tenant_id}")
            text = f"{current}\n{line}" if current else line
            conn.execute(sa.update(tickets).where(tickets.c.id == ticket_id).values(transcript=text))

    def end_handoff(self, tenant_id: str, ticket_id: int) -> dict:
        """Hand the conversation back to the bot (idempotent); returns the ticket."""
        ticket = self.get_ticket(tenant_id, ticket_id)
        with self.engine.begin() as conn:
            conn.execute(sa.update(tickets).where(tickets.c.id == ticket_id).values(handoff_active=False))
        return {**ticket, "handoff_active": False}

    # --- status changes (event-driven path) -----------------------------------------------------------
    def set_status(self, tenant_id: str, ticket_id: int, status: str) -> dict:
        """Change the status and queue the ``ticket.status_changed`` webhook in the same transaction.

        Raises ``ValueError`` for an unknown status and ``TicketNotFound``. Setting the current status again
        changes nothing and queues nothing.
        """
        if status not in TICKET_STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(TICKET_STATUSES)}")
        ticket = self.get_ticket(tenant_id, ticket_id)
        if ticket["status"] == status:
            return ticket
        now = datetime.now(UTC)
        event = {
            "event": "ticket.status_changed",
            "event_id": f"ticket:{ticket_id}:{status}:{now.isoformat()}",
            "tenant_id": tenant_id,
            "ticket_id": ticket_id,
            "user_id": ticket["user_id"],
            "conversation_id": ticket["conversation_id"],
            "old_status": ticket["status"],
            "status": status,
        }
        with self.engine.begin() as conn:
            conn.execute(sa.update(tickets).where(tickets.c.id == ticket_id).values(status=status))
            conn.execute(
                sa.insert(jobs).values(
                    tenant_id=tenant_id,
                    user_id=ticket["user_id"],
                    conversation_id=ticket["conversation_id"],
                    kind="ticket_webhook",
                    payload=event,
                    status="pending",
                    attempts=0,
                    run_after=now,
                    created_at=now,
                )
            )
        return {**ticket, "status": status}


class TicketRetention:
    """Tickets (with their transcripts) under retention: a forgotten user's go; purge ages out resolved or
    closed tickets without an active handoff by their opening date (no closing time is recorded)."""

    table = "tickets"

    def forget_user(
        self, conn: sa.Connection, request: retention.ForgetRequest, report: retention.Report
    ) -> None:
        retention.forget_rows(conn, tickets, request, report)

    def purge(self, conn: sa.Connection, request: retention.PurgeRequest, report: retention.Report) -> None:
        if not request.policy.ticket_days:
            return
        old = sa.and_(
            tickets.c.status.in_(("resolved", "closed")),
            tickets.c.handoff_active.is_(sa.false()),
            tickets.c.created_at < request.before(request.policy.ticket_days),
        )
        report.counts["tickets"] = retention.count_or_delete(conn, tickets, old, report.dry_run)


retention.register(TicketRetention())
