from __future__ import annotations

import pytest

from app.actions.knowledge import UNAVAILABLE, ActionAnswerKnowledge

pytestmark = pytest.mark.anyio

async def test_missing_index_degrades_to_a_clear_message(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="How long is delivery?")
    assert await ActionAnswerKnowledge().run(dispatcher, tracker, domain) == []
    assert dispatcher.messages[0]["text"] == UNAVAILABLE


async def test_a_failing_knowledge_base_degrades_to_the_same_message(tracker_from, dispatcher, domain, monkeypatch):
    from app.actions import services

    class Broken:
        version = "v"

        def answer(self, *args):
            raise RuntimeError("index corrupted")

    monkeypatch.setattr(services, "knowledge", lambda: Broken())
    tracker = tracker_from("order_question", text="How long is delivery?")
    assert await ActionAnswerKnowledge().run(dispatcher, tracker, domain) == []
    assert dispatcher.messages[0]["text"] == UNAVAILABLE
