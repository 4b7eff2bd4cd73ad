"""action_session_start: a new Rasa session knows its tenant and keeps a conversation an agent still holds."""

from __future__ import annotations

import pytest

from app.actions import services
from app.actions.session import ActionSessionStart

pytestmark = pytest.mark.anyio


def slots(events):
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


async def test_a_new_session_without_a_handoff_only_starts(tracker_from, dispatcher, domain):
    events = await ActionSessionStart().run(dispatcher, tracker_from("order_question"), domain)
    assert [e["event"] for e in events] == ["session_started", "slot", "action"]
    assert slots(events) == {"tenant": "acme"}
    assert events[-1]["name"] == "action_listen" and dispatcher.messages == []


async def test_the_tenant_comes_from_the_turn_not_the_text(tracker_from, dispatcher, domain):
    """The responses' tenant variations hang on this slot: globex customers are not greeted as acme's."""
    tracker = tracker_from("order_question", text="I'm from acme", metadata={"tenant_id": "globex"})
    events = await ActionSessionStart().run(dispatcher, tracker, domain)
    assert slots(events)["tenant"] == "globex"
    variations = domain["responses"]["utter_greet"]
    conditioned = {v["condition"][0]["value"]: v["text"] for v in variations if "condition" in v}
    assert "Globex" in conditioned["globex"] and "Northwind" not in conditioned["globex"]
    assert all("Northwind" not in v["text"] for v in variations if "condition" not in v)


async def test_a_live_handoff_survives_the_new_session(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question")
    ticket = services.ticketing().open_ticket(
        "acme",
        tracker.sender_id.split(":")[-1],
        tracker.sender_id,
        "Chat handoff",
        "user: help",
        handoff=True,
    )
    events = await ActionSessionStart().run(dispatcher, tracker, domain)
    assert [e["event"] for e in events] == ["session_started", "slot", "slot", "action"]
    assert slots(events) == {"tenant": "acme", "handoff_active": True}

    services.ticketing().end_handoff("acme", ticket.id)  # handed back: the next session is the bot's
    events = await ActionSessionStart().run(dispatcher, tracker, domain)
    assert slots(events) == {"tenant": "acme"}


async def test_other_conversations_keep_their_own_state(tracker_from, dispatcher, domain):
    services.ticketing().open_ticket("acme", "someone-else", "acme:someone-else", "x", "", handoff=True)
    services.ticketing().open_ticket("globex", "t", "globex:t", "x", "", handoff=True)
    events = await ActionSessionStart().run(dispatcher, tracker_from("order_question"), domain)
    assert "handoff_active" not in slots(events)
