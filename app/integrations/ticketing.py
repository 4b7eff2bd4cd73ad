"""Ticketing client: opens a ticket for a human agent when the bot hands a conversation over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from app.data.schema import tickets


@dataclass(frozen=True)
class Ticket:
    id: int
    tenant_id: str
    user_id: str
    conversation_id: str
    subject: str
    status: str


class TicketingClient:
    """Tickets in our store (the local stand-in for a helpdesk such as Zendesk or ServiceNow)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def open_ticket(
        self, tenant_id: str, user_id: str, conversation_id: str, subject: str, transcript: str
    ) -> Ticket:
        values = {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "conversation_id": conversation_id,
            "subject": subject[:200],
            "transcript": transcript,
            "status": "open",
            "created_at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            ticket_id = conn.execute(sa.insert(tickets).values(**values)).inserted_primary_key[0]
        return Ticket(id=ticket_id, **{k: values[k] for k in ("tenant_id", "user_id", "conversation_id",
                                                              "subject", "status")})

    def list_tickets(self, tenant_id: str, user_id: str | None = None) -> list[dict]:
        query = sa.select(tickets).where(tickets.c.tenant_id == tenant_id).order_by(tickets.c.id)
        if user_id is not None:
            query = query.where(tickets.c.user_id == user_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
