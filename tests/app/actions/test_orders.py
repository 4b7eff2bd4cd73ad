from __future__ import annotations

from collections.abc import Iterator

import pytest
from rasa_sdk.executor import CollectingDispatcher

from app.actions import services
from app.actions.orders import ActionTrackOrder, find_order_id
from app.reliability.breakers import reset_breakers
from app.settings import get_settings
from tests.app.integrations.service import free_port, running_service, service_settings

pytestmark = pytest.mark.anyio


def point_crm_at(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """The action's CRM client (built from settings) talks to this loopback port."""
    monkeypatch.setenv("SWITCHBOARD_CRM_PORT", str(port))
    monkeypatch.setenv("SWITCHBOARD_CRM_TIMEOUT_S", "1")
    get_settings.cache_clear()
    services.crm.cache_clear()
    services.tools.cache_clear()


@pytest.fixture(autouse=True)
def crm_service(stores, monkeypatch) -> Iterator[None]:
    """The CRM service on the test stores; the action's client points at it."""
    reset_breakers("crm")
    with running_service(service_settings(stores)) as settings:
        point_crm_at(monkeypatch, settings.crm_port)
        yield
    reset_breakers("crm")


#: The conversation's topic a track_order turn sets (app.actions.records: its intent's description).
TOPIC = {"event": "slot", "timestamp": None, "name": "knowledge_topic", "value": "Check where my order is"}


async def run(tracker, dispatcher, domain):
    return await ActionTrackOrder().run(dispatcher, tracker, domain)


async def test_known_order_is_described(tracker_from, dispatcher, domain):
    events = await run(tracker_from("order_question"), dispatcher, domain)
    text = dispatcher.messages[0]["text"]
    assert "ORD-10042 has shipped with DHL" in text and "JD014600006201" in text
    assert events == [{"event": "slot", "timestamp": None, "name": "order_id", "value": "ORD-10042"}, TOPIC]


async def test_unknown_order_clears_the_slot(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="status of ORD-99999", entities=[])
    events = await run(tracker, dispatcher, domain)
    assert "couldn't find an order ORD-99999" in dispatcher.messages[0]["text"]
    assert events[0]["value"] is None


async def test_no_order_id_asks_for_it(tracker_from, dispatcher, domain):
    events = await run(
        tracker_from("order_question", text="where is my parcel", entities=[]), dispatcher, domain
    )
    assert "What's your order number?" in dispatcher.messages[0]["text"] and events == [TOPIC]


async def test_orders_of_another_tenant_are_not_found(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", metadata={"tenant_id": "globex", "user_id": "alice"})
    await run(tracker, dispatcher, domain)
    assert "couldn't find" in dispatcher.messages[0]["text"]


async def test_another_customers_order_reveals_nothing(tracker_from, dispatcher, domain):
    """ORD-10042 is alice's: bob asking for it learns nothing about it, not even that it shipped."""
    tracker = tracker_from("order_question", metadata={"tenant_id": "acme", "user_id": "bob"})
    await run(tracker, dispatcher, domain)
    text = dispatcher.messages[0]["text"]
    assert "couldn't find an order ORD-10042" in text
    assert not any(leak in text for leak in ("shipped", "DHL", "JD014600006201"))


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


async def test_crm_down_is_told_and_keeps_the_order_id(tracker_from, dispatcher, domain, monkeypatch):
    point_crm_at(monkeypatch, free_port())  # nothing listens there
    events = await run(tracker_from("order_question"), dispatcher, domain)
    assert "can't reach our order system" in dispatcher.messages[0]["text"]
    assert events[0]["value"] == "ORD-10042"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("can you check order 10042", "ORD-10042 has shipped"),
        ("#10043", "ORD-10043 was delivered"),
        ("10043", "ORD-10043 was delivered"),  # a bare number in an order conversation
        ("where is my last order?", "ORD-10043"),  # the most recent (seeded together: the higher id)
    ],
)
async def test_ids_as_people_type_them_are_looked_up(tracker_from, dispatcher, domain, text, expected):
    await run(tracker_from("order_question", text=text, entities=[]), dispatcher, domain)
    assert expected in dispatcher.messages[0]["text"]


async def test_a_malformed_id_asks_for_a_valid_number_and_looks_nothing_up(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="track ORD-12", entities=[])
    tracker.slots["order_id"] = "ORD-10042"  # an id asked about before must not be used instead
    events = await run(tracker, dispatcher, domain)
    text = dispatcher.messages[0]["text"]
    assert "ORD-12 doesn't look like an order number" in text and "five digits" in text
    assert "shipped" not in text and events == [TOPIC]


async def test_two_orders_in_one_message_are_both_described(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="where are ORD-10042 and ORD-10043?", entities=[])
    events = await run(tracker, dispatcher, domain)
    texts = [m["text"] for m in dispatcher.messages]
    assert "ORD-10042 has shipped" in texts[0] and "ORD-10043 was delivered" in texts[1]
    assert events[-2]["name"] == "order_id" and events[-2]["value"] == "ORD-10042"


async def test_why_questions_are_answered_from_the_articles(tracker_from, dispatcher, domain, monkeypatch):
    from app.actions import knowledge

    async def answer(dispatcher, tracker, ctx, record):
        dispatcher.utter_message(text="Orders paid by bank transfer are cancelled after 7 days.")
        return []

    monkeypatch.setattr(knowledge, "answer_knowledge", answer)
    tracker = tracker_from("order_question", text="why was it cancelled??", entities=[])
    await run(tracker, dispatcher, domain)
    assert dispatcher.messages[0]["text"].startswith("Orders paid by bank transfer")


async def test_a_question_right_after_a_refund_request_is_answered_from_the_articles(
    tracker_from, dispatcher, domain, monkeypatch
):
    from app.actions import knowledge

    async def answer(dispatcher, tracker, ctx, record):
        dispatcher.utter_message(text="Card refunds take 3-5 business days.")
        return []

    monkeypatch.setattr(knowledge, "answer_knowledge", answer)
    question = "how long until it's back on my card?"
    refunded = [
        {
            "event": "user",
            "text": "refund ORD-10042 please",
            "parse_data": {"intent": {"name": "request_refund"}},
        },
        {"event": "action", "name": "action_request_refund"},
        {"event": "bot", "text": "Refund requested for order ORD-10042 (reference R-1)."},
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": question, "parse_data": {"intent": {"name": "track_order"}}},
    ]
    tracker = tracker_from("order_question", text=question, entities=[])
    tracker.slots["order_id"], tracker.events = "ORD-10042", refunded
    await run(tracker, dispatcher, domain)
    assert dispatcher.messages[0]["text"] == "Card refunds take 3-5 business days."
    # after an order lookup, the same question is about the order: its status
    tracked = [
        {**e, "name": "action_track_order"} if e.get("name") == "action_request_refund" else e
        for e in refunded
    ]
    tracker, dispatcher = tracker_from("order_question", text=question, entities=[]), CollectingDispatcher()
    tracker.slots["order_id"], tracker.events = "ORD-10042", tracked
    await run(tracker, dispatcher, domain)
    assert "ORD-10042" in dispatcher.messages[0]["text"]


async def test_tracking_ends_a_refund_waiting_for_its_order_id(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question")
    tracker.slots["refund_requested"] = True
    events = await run(tracker, dispatcher, domain)
    assert {"name": "refund_requested", "value": False} in [
        {k: e[k] for k in ("name", "value")} for e in events
    ]
