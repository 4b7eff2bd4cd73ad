"""action_session_start: a new Rasa session keeps a conversation that an agent still holds."""

from __future__ import annotations

import pytest

from app.actions import services
from app.actions.session import ActionSessionStart

pytestmark = pytest.mark.anyio


async def test_a_new_session_without_a_handoff_only_starts(tracker_from, dispatcher, domain):
    events = await ActionSessionStart().run(dispatcher, tracker_from("order_question"), domain)
    assert [e["event"] for e in events] == ["session_started", "action"]
    assert events[-1]["name"] == "action_listen" and dispatcher.messages == []


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
    assert [e["event"] for e in events] == ["session_started", "slot", "action"]
    assert (events[1]["name"], events[1]["value"]) == ("handoff_active", True)

    services.ticketing().end_handoff("acme", ticket.id)  # handed back: the next session is the bot's
    events = await ActionSessionStart().run(dispatcher, tracker, domain)
    assert [e["event"] for e in events] == ["session_started", "action"]


async def test_other_conversations_keep_their_own_state(tracker_from, dispatcher, domain):
    services.ticketing().open_ticket("acme", "someone-else", "acme:someone-else", "x", "", handoff=True)
    services.ticketing().open_ticket("globex", "t", "globex:t", "x", "", handoff=True)
    events = await ActionSessionStart().run(dispatcher, tracker_from("order_question"), domain)
    assert "slot" not in [e["event"] for e in events]
