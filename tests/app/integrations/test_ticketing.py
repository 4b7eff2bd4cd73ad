from __future__ import annotations

from app.data.db import get_engine, upgrade
from app.integrations.ticketing import TicketingClient


def test_open_and_list_tickets_by_tenant_and_user(tmp_path):
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    upgrade(url)
    client = TicketingClient(get_engine(url))
    first = client.open_ticket("acme", "alice", "acme:alice", "Chat handoff: help", "user: help")
    second = client.open_ticket("acme", "bob", "acme:bob", "x" * 300, "user: hi")
    client.open_ticket("globex", "alice", "globex:alice", "Other tenant", "user: hi")

    assert second.id == first.id + 1 and first.status == "open"
    assert len(second.subject) == 200
    alice = client.list_tickets("acme", "alice")
    assert [(t["id"], t["transcript"]) for t in alice] == [(first.id, "user: help")]
    assert len(client.list_tickets("acme")) == 2
