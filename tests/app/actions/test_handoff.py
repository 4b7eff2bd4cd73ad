from __future__ import annotations

import pytest

from app.actions import services
from app.actions.handoff import ActionHandoff

pytestmark = pytest.mark.anyio

async def test_handoff_opens_a_ticket_with_transcript(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="I want a human")
    await ActionHandoff().run(dispatcher, tracker, domain)
    tickets = services.ticketing().list_tickets("acme", "alice")
    assert len(tickets) == 1
    assert tickets[0]["conversation_id"] == "acme:alice"
    assert tickets[0]["subject"] == "Chat handoff (request): I want a human"
    assert tickets[0]["transcript"].splitlines()[:2] == ["user: hi", "bot: Hi! I'm the Northwind Goods assistant."]
    assert f"ticket #{tickets[0]['id']}" in dispatcher.messages[0]["text"]


async def test_handoff_when_the_ticket_system_is_down(tracker_from, dispatcher, domain, monkeypatch):
    from app.settings import get_settings

    # a PostgreSQL URL on a closed loopback port: the database is down
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/stores")
    get_settings.cache_clear()
    services.ticketing.cache_clear()
    assert await ActionHandoff().run(dispatcher, tracker_from("order_question"), domain) == []
    assert "support@northwind.example" in dispatcher.messages[0]["text"]
