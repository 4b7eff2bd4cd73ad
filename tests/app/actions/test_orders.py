from __future__ import annotations

import pytest

from app.actions.orders import ActionTrackOrder, find_order_id

pytestmark = pytest.mark.anyio

async def run(tracker, dispatcher, domain):
    return await ActionTrackOrder().run(dispatcher, tracker, domain)


async def test_known_order_is_described(tracker_from, dispatcher, domain):
    events = await run(tracker_from("order_question"), dispatcher, domain)
    text = dispatcher.messages[0]["text"]
    assert "ORD-10042 has shipped with DHL" in text and "JD014600006201" in text
    assert events == [{"event": "slot", "timestamp": None, "name": "order_id", "value": "ORD-10042"}]


async def test_unknown_order_clears_the_slot(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="status of ORD-99999", entities=[])
    events = await run(tracker, dispatcher, domain)
    assert "couldn't find an order ORD-99999" in dispatcher.messages[0]["text"]
    assert events[0]["value"] is None


async def test_no_order_id_asks_for_it(tracker_from, dispatcher, domain):
    events = await run(tracker_from("order_question", text="where is my parcel", entities=[]), dispatcher, domain)
    assert "What's your order number?" in dispatcher.messages[0]["text"] and events == []


async def test_orders_of_another_tenant_are_not_found(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", metadata={"tenant_id": "globex", "user_id": "alice"})
    await run(tracker, dispatcher, domain)
    assert "couldn't find" in dispatcher.messages[0]["text"]


@pytest.mark.parametrize(
    ("text", "entities", "expected"),
    [
        ("my order ord 10105 please", [], "ORD-10105"),
        ("order", [{"entity": "order_id", "value": "ORD10077"}], "ORD-10077"),
        ("no id here", [], None),
    ],
)
def test_find_order_id(tracker_from, text, entities, expected):
    assert find_order_id(tracker_from("order_question", text=text, entities=entities)) == expected
