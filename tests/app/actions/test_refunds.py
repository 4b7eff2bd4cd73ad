from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.actions import services
from app.actions.refunds import ActionRequestRefund, is_question
from app.data.db import get_engine
from app.integrations.jobs import JobStore
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
    """The CRM service on the test stores (no worker: jobs stay queued); the action's client points at it."""
    reset_breakers("crm")
    with running_service(service_settings(stores), run_worker=False) as settings:
        point_crm_at(monkeypatch, settings.crm_port)
        yield
    reset_breakers("crm")


def slots(events):
    """The slots the refund sets (the conversation topic every skill turn sets is tested in test_records)."""
    return {e["name"]: e["value"] for e in events if e["event"] == "slot" and e["name"] != "knowledge_topic"}


async def test_refund_is_queued_and_acknowledged(tracker_from, dispatcher, domain, stores):
    tracker = tracker_from(
        "order_question",
        text="refund ORD-10043 please",
        entities=[{"entity": "order_id", "value": "ORD-10043"}],
    )
    events = await ActionRequestRefund().run(dispatcher, tracker, domain)
    text = dispatcher.messages[0]["text"]
    assert "Refund requested for order ORD-10043" in text and "let you know" in text
    assert slots(events) == {"order_id": "ORD-10043", "refund_requested": False}
    (job,) = JobStore(get_engine(stores)).for_user("acme", "alice", "refund")
    assert job["status"] == "pending" and job["conversation_id"] == "acme:alice"
    assert f"R-{job['id']}" in text


async def test_no_order_id_asks_for_it(tracker_from, dispatcher, domain, stores):
    tracker = tracker_from("order_question", text="I want my money back", entities=[])
    events = await ActionRequestRefund().run(dispatcher, tracker, domain)
    assert "Which order is it?" in dispatcher.messages[0]["text"]
    assert slots(events) == {"refund_requested": True}
    assert JobStore(get_engine(stores)).for_user("acme", "alice", "refund") == []


async def test_someone_elses_order_is_not_found(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="refund ORD-10077", entities=[])  # bob's order
    events = await ActionRequestRefund().run(dispatcher, tracker, domain)
    assert "couldn't find an order ORD-10077" in dispatcher.messages[0]["text"]
    assert slots(events)["order_id"] is None


async def test_second_request_says_it_is_on_its_way(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="refund ORD-10042")
    await ActionRequestRefund().run(dispatcher, tracker, domain)
    await ActionRequestRefund().run(dispatcher, tracker, domain)
    assert "already been requested" in dispatcher.messages[1]["text"]


async def test_crm_down(tracker_from, dispatcher, domain, monkeypatch):
    point_crm_at(monkeypatch, free_port())  # nothing listens there
    await ActionRequestRefund().run(
        dispatcher, tracker_from("order_question", text="refund ORD-10042"), domain
    )
    assert "couldn't request the refund" in dispatcher.messages[0]["text"]


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("How long does a refund take?", True),
        ("when do I get my money back", True),
        ("I was charged twice, will both amounts come back?", True),
        ("should I send it back before the refund", True),  # the context policy's question words, one reader
        ("who pays for the return label", True),
        ("did my refund go through", True),
        ("I want a refund", False),
        ("I'm still waiting for my refund of £39.99", False),
    ],
)
def test_is_question(text, question):
    assert is_question(text) is question


async def test_a_refund_question_without_order_gets_a_knowledge_answer(
    tracker_from, dispatcher, domain, stores, monkeypatch
):
    from app.actions import knowledge

    async def answer(dispatcher, tracker, ctx, record):
        dispatcher.utter_message(text="Refunds take 5 days. Source: returns.md")
        return []

    monkeypatch.setattr(knowledge, "answer_knowledge", answer)
    tracker = tracker_from("order_question", text="How long does a refund take?", entities=[])
    events = await ActionRequestRefund().run(dispatcher, tracker, domain)
    assert dispatcher.messages[0]["text"].startswith("Refunds take 5 days")
    assert slots(events) == {"refund_requested": False}
    assert JobStore(get_engine(stores)).for_user("acme", "alice", "refund") == []


async def test_a_refund_question_is_answered_even_with_an_order_in_the_slot(
    tracker_from, dispatcher, domain, stores, monkeypatch
):
    from app.actions import knowledge

    async def answer(dispatcher, tracker, ctx, record):
        dispatcher.utter_message(text="A cancelled order is refunded within 3 business days.")
        return []

    monkeypatch.setattr(knowledge, "answer_knowledge", answer)
    tracker = tracker_from("order_question", text="do I get my money back for it?", entities=[])
    tracker.slots["order_id"] = "ORD-10042"
    events = await ActionRequestRefund().run(dispatcher, tracker, domain)
    assert dispatcher.messages[0]["text"].startswith("A cancelled order is refunded")
    assert slots(events) == {"refund_requested": False}
    assert JobStore(get_engine(stores)).for_user("acme", "alice", "refund") == []


async def test_after_not_found_the_next_id_is_still_for_the_refund(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="refund ORD-99999 please", entities=[])
    events = await ActionRequestRefund().run(dispatcher, tracker, domain)
    assert "couldn't find an order ORD-99999" in dispatcher.messages[0]["text"]
    assert slots(events) == {"order_id": None, "refund_requested": True}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ord 10043", "Refund requested for order ORD-10043"), ("refund my last order", "ORD-10043")],
)
async def test_loose_ids_and_the_last_order_are_refunded(tracker_from, dispatcher, domain, text, expected):
    tracker = tracker_from("order_question", text=text, entities=[])
    await ActionRequestRefund().run(dispatcher, tracker, domain)
    assert expected in dispatcher.messages[0]["text"]


async def test_a_malformed_id_is_asked_again_and_the_refund_still_waits(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="refund ORD-ABCDE", entities=[])
    events = await ActionRequestRefund().run(dispatcher, tracker, domain)
    assert "ORD-ABCDE doesn't look like an order number" in dispatcher.messages[0]["text"]
    assert slots(events) == {"refund_requested": True}
