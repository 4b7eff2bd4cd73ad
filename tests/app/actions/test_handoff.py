from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rasa_sdk.executor import CollectingDispatcher

from app.actions import services
from app.actions.handoff import ActionForwardToAgent, ActionHandoff

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.anyio


async def test_handoff_opens_a_ticket_with_transcript(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="I want a human")
    await ActionHandoff().run(dispatcher, tracker, domain)
    tickets = services.ticketing().list_tickets("acme", "alice")
    assert len(tickets) == 1
    assert tickets[0]["conversation_id"] == "acme:alice"
    assert tickets[0]["subject"] == "Chat handoff (request): I want a human"
    assert tickets[0]["transcript"].splitlines()[:2] == [
        "user: hi",
        "bot: Hi! I'm the Northwind Goods assistant.",
    ]
    assert f"ticket #{tickets[0]['id']}" in dispatcher.messages[0]["text"]


async def test_handoff_when_the_ticket_system_is_down(tracker_from, dispatcher, domain, monkeypatch):
    from app.settings import get_settings

    # a PostgreSQL URL on a closed loopback port: the database is down
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/stores")
    get_settings.cache_clear()
    services.ticketing.cache_clear()
    services.tools.cache_clear()
    events = await ActionHandoff().run(dispatcher, tracker_from("order_question"), domain)
    assert events == [{"event": "slot", "timestamp": None, "name": "handoff_active", "value": False}]
    assert "support@northwind.example" in dispatcher.messages[0]["text"]


async def test_handoff_silences_the_bot(tracker_from, dispatcher, domain):
    events = await ActionHandoff().run(
        dispatcher, tracker_from("order_question", text="a human please"), domain
    )
    assert events == [{"event": "slot", "timestamp": None, "name": "handoff_active", "value": True}]
    assert services.ticketing().active_handoff("acme", "acme:alice") is not None


async def test_messages_during_a_handoff_go_to_the_agent_and_get_no_reply(tracker_from, dispatcher, domain):
    await ActionHandoff().run(CollectingDispatcher(), tracker_from("order_question", text="a human"), domain)
    tracker = tracker_from("order_question", text="hello? anyone?")
    assert await ActionForwardToAgent().run(dispatcher, tracker, domain) == []
    assert dispatcher.messages == []
    (ticket,) = services.ticketing().list_tickets("acme", "alice")
    assert ticket["transcript"].endswith("user: hello? anyone?")


async def test_after_the_hand_back_the_message_is_replayed_for_the_bot(tracker_from, dispatcher, domain):
    await ActionHandoff().run(CollectingDispatcher(), tracker_from("order_question", text="a human"), domain)
    (ticket,) = services.ticketing().list_tickets("acme", "alice")
    services.ticketing().end_handoff("acme", ticket["id"])
    events = await ActionForwardToAgent().run(dispatcher, tracker_from("order_question"), domain)
    assert [e["event"] for e in events] == ["rewind", "slot", "slot", "action", "user"]
    assert events[1]["value"] is False and events[3]["name"] == "action_listen"
    assert (events[2]["name"], events[2]["value"]) == ("failed_turns", 0.0)  # a person helped: the row ends
    assert events[4]["text"] == "Where is my order ORD-10042?"
    assert events[4]["parse_data"]["intent"]["name"] == "track_order"
    assert events[4]["metadata"]["tenant_id"] == "acme"
    assert dispatcher.messages == []


def test_every_intent_is_forwarded_during_a_handoff(domain):
    """A rule per intent (and nlu_fallback) sends messages to the agent while the handoff is on."""
    rules = yaml.safe_load((ROOT / "nlu" / "data" / "rules" / "handoff.yml").read_text())["rules"]
    forwarded = {
        rule["steps"][0]["intent"]
        for rule in rules
        if rule.get("condition") == [{"slot_was_set": [{"handoff_active": True}]}]
        and rule["steps"][1] == {"action": "action_forward_to_agent"}
    }
    assert forwarded == {*domain["intents"], "nlu_fallback"}


@pytest.mark.parametrize(
    ("tenant", "email"), [("acme", "support@northwind.example"), ("globex", "help@globex.example")]
)
async def test_a_failed_handoff_names_the_tenants_own_address(
    tracker_from, dispatcher, domain, monkeypatch, tenant, email
):
    from app.settings import get_settings

    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/stores")
    get_settings.cache_clear()
    services.ticketing.cache_clear()
    services.tools.cache_clear()
    tracker = tracker_from("order_question", metadata={"tenant_id": tenant, "user_id": "alice"})
    await ActionHandoff().run(dispatcher, tracker, domain)
    text = dispatcher.messages[0]["text"]
    assert email in text
    assert tenant == "acme" or "northwind" not in text.lower()  # never another tenant's address
