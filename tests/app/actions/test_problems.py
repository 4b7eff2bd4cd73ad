"""The common support situations: questions get the article, requests a person, a ticket or the order's options."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.actions import knowledge, services
from app.actions.problems import (
    ActionCancelOrder,
    ActionChangeAddress,
    ActionComplaint,
    ActionReportProblem,
)
from app.orchestration.handlers import handler_of_action
from app.reliability.breakers import reset_breakers
from tests.app.actions.test_orders import point_crm_at
from tests.app.integrations.service import running_service, service_settings

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def crm_service(stores, monkeypatch) -> Iterator[None]:
    reset_breakers("crm")
    with running_service(service_settings(stores), run_worker=False) as settings:
        point_crm_at(monkeypatch, settings.crm_port)
        yield
    reset_breakers("crm")


@pytest.fixture
def articles(monkeypatch) -> list[str]:
    """The knowledge answer, stubbed: records the questions it was given."""
    asked: list[str] = []

    async def answer(dispatcher, tracker, ctx, record):
        asked.append(ctx.text)
        dispatcher.utter_message(text="From the article. Source: Changing or cancelling an order")
        return []

    monkeypatch.setattr(knowledge, "answer_knowledge", answer)
    return asked


def turn(tracker_from, text: str, intent: str, user: str = "alice"):
    return tracker_from(
        "order_question",
        text=text,
        entities=[],
        intent={"name": intent, "confidence": 0.9},
        metadata={"tenant_id": "acme", "user_id": user},
    )


def slots(events):
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


@pytest.mark.parametrize(
    "text",
    ["how long after ordering can I still cancel?", "could I still cancel it?", "why? I didn't cancel it"],
)
async def test_a_cancellation_question_gets_the_article(tracker_from, dispatcher, domain, articles, text):
    events = await ActionCancelOrder().run(dispatcher, turn(tracker_from, text, "cancel_order"), domain)
    assert articles == [text] and "handoff_active" not in slots(events)
    assert services.ticketing().list_tickets("acme", "alice") == []


@pytest.mark.parametrize("text", ["cancel ORD-10042 please", "can you cancel my order?", "I want to cancel"])
async def test_a_cancellation_request_goes_to_a_person(tracker_from, dispatcher, domain, articles, text):
    events = await ActionCancelOrder().run(dispatcher, turn(tracker_from, text, "cancel_order"), domain)
    assert articles == [] and slots(events) == {"handoff_active": True}
    assert dispatcher.messages[0]["response"] == "utter_cancel_order"
    (ticket,) = services.ticketing().list_tickets("acme", "alice")
    assert ticket["subject"].startswith("Chat handoff (cancellation)")


async def test_a_question_about_complaining_is_answered_and_a_grievance_handed_over(
    tracker_from, dispatcher, domain, articles
):
    question = "where do I send a formal complaint?"
    await ActionComplaint().run(dispatcher, turn(tracker_from, question, "complaint"), domain)
    assert articles == [question]
    grievance = "third late delivery, I'm fed up. why does this always happen?"
    events = await ActionComplaint().run(dispatcher, turn(tracker_from, grievance, "complaint"), domain)
    assert articles == [question] and slots(events) == {"handoff_active": True}


@pytest.mark.parametrize(
    ("intent", "text"),
    [
        ("damaged_item", "my kettle arrived broken"),  # no order named: the article says what to do
        ("double_charge", "do I get both amounts back if I was charged twice for ORD-10042?"),  # a question
    ],
)
async def test_a_problem_without_a_named_order_or_a_question_gets_the_article(
    tracker_from, dispatcher, domain, articles, intent, text
):
    await ActionReportProblem().run(dispatcher, turn(tracker_from, text, intent), domain)
    assert articles == [text]
    assert services.ticketing().list_tickets("acme", "alice") == []


async def test_a_problem_with_the_users_order_becomes_a_ticket(tracker_from, dispatcher, domain, articles):
    text = "the kettle from order 10043 arrived with a cracked lid"
    await ActionReportProblem().run(dispatcher, turn(tracker_from, text, "damaged_item"), domain)
    (ticket,) = services.ticketing().list_tickets("acme", "alice")
    assert ticket["subject"] == "Damaged or faulty item: ORD-10043" and not ticket["handoff_active"]
    assert "status delivered" in ticket["transcript"] and text in ticket["transcript"]
    reply = dispatcher.messages[0]["text"]
    assert f"ticket #{ticket['id']}" in reply and "ORD-10043" in reply and "replacement" in reply
    assert articles == []


async def test_someone_elses_order_gets_no_ticket_and_reveals_nothing(tracker_from, dispatcher, domain):
    text = "you sent me the wrong item in ORD-10077"  # bob's order
    await ActionReportProblem().run(dispatcher, turn(tracker_from, text, "wrong_item"), domain)
    assert "couldn't find an order ORD-10077" in dispatcher.messages[0]["text"]
    assert services.ticketing().list_tickets("acme", "alice") == []


async def test_a_malformed_id_is_asked_again(tracker_from, dispatcher, domain):
    await ActionReportProblem().run(
        dispatcher, turn(tracker_from, "ORD-1004 arrived broken", "damaged_item"), domain
    )
    assert "ORD-1004 doesn't look like an order number" in dispatcher.messages[0]["text"]


@pytest.mark.parametrize(
    ("user", "text", "says"),
    [
        ("bob", "please deliver ORD-10077 to my office instead", "can no longer be changed"),  # processing
        ("alice", "change the delivery address of ORD-10042", "redirect"),  # shipped with DHL
        ("alice", "send ORD-10043 to my new flat", "already delivered"),
        ("bob", "change the address on ORD-10078", "was cancelled"),
    ],
)
async def test_an_address_change_for_a_named_order_follows_its_status(
    tracker_from, dispatcher, domain, articles, user, text, says
):
    await ActionChangeAddress().run(dispatcher, turn(tracker_from, text, "change_address", user), domain)
    assert says in dispatcher.messages[0]["text"] and articles == []


async def test_an_address_question_gets_the_article(tracker_from, dispatcher, domain, articles):
    text = "can I still change the address after ordering?"
    await ActionChangeAddress().run(dispatcher, turn(tracker_from, text, "change_address"), domain)
    assert articles == [text]


def test_every_action_and_response_of_the_domain_has_a_handler(domain):
    names = [*domain["actions"], *domain["responses"]]
    assert [name for name in names if handler_of_action(name) is None] == ["action_session_start"]
    assert handler_of_action("utter_unsupported_language") == "language"
