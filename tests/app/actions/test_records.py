"""Every action run leaves one ``action_runs`` row: the handler and rule it chose and what it did."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from rasa_sdk.events import SlotSet

from app.actions.context import TurnContext
from app.actions.fallback import ActionAskAffirmation
from app.actions.handoff import ActionHandoff
from app.actions.knowledge import ActionAnswerKnowledge
from app.actions.records import ActionRun, RecordedAction, write
from app.data.db import get_engine
from app.data.schema import action_runs
from app.orchestration.answering import cited_doc_ids

pytestmark = pytest.mark.anyio


def runs(url: str) -> list[dict]:
    with get_engine(url).connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(action_runs).order_by(action_runs.c.id)).mappings()]


async def test_a_handoff_records_its_ticket(tracker_from, dispatcher, domain, stores):
    tracker = tracker_from("order_question", text="a person please")
    await ActionHandoff().run(dispatcher, tracker, domain)
    (run,) = runs(stores)
    assert (run["action"], run["handler"], run["rule"], run["outcome"]) == (
        "action_handoff", "handoff", "handoff_request", "ok",
    )  # fmt: skip
    assert run["ticket_id"] is not None and f"#{run['ticket_id']}" in dispatcher.messages[0]["text"]
    assert (run["tenant_id"], run["user_id"], run["conversation_id"]) == ("acme", "alice", "acme:alice")
    assert run["correlation_id"] == tracker.latest_message["metadata"]["correlation_id"]
    assert run["stages"]["total"] >= run["stages"]["ticket"] >= 0


async def test_the_two_stage_fallback_records_a_fallback(tracker_from, dispatcher, domain, stores):
    await ActionAskAffirmation().run(dispatcher, tracker_from("order_question", text="blorp"), domain)
    (run,) = runs(stores)
    assert (run["handler"], run["rule"]) == ("fallback", "ask_affirmation")


async def test_a_degraded_knowledge_turn_keeps_its_handler(tracker_from, dispatcher, domain, stores):
    await ActionAnswerKnowledge().run(dispatcher, tracker_from("order_question", text="delivery?"), domain)
    (run,) = runs(stores)
    assert (run["handler"], run["outcome"]) == ("knowledge", "degraded")  # no index in this test


async def test_an_action_that_crashes_is_recorded_as_an_error(tracker_from, dispatcher, domain, stores):
    class Crashing(ActionHandoff):
        async def act(self, *args):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await Crashing().run(dispatcher, tracker_from("order_question"), domain)
    (run,) = runs(stores)
    assert (run["handler"], run["outcome"]) == ("error", "error")


def test_a_store_that_is_down_costs_the_record_not_the_turn(monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "sqlite:////nonexistent-dir/x/stores.db")
    from app.settings import get_settings

    get_settings.cache_clear()
    ctx = TurnContext("acme", "alice", "acme:alice", "c-1", "hi")
    write(ctx, ActionRun("action_handoff", "handoff"))  # logged, not raised


def test_an_unknown_handler_is_refused():
    with pytest.raises(ValueError, match="unknown handler"):
        ActionRun("action_x", "two_stage_fallback").row(TurnContext("acme", "a", "acme:a", "", ""))


def test_cited_articles_come_from_the_reply_as_the_user_sees_it():
    chunk = lambda doc, title, section, tenant="acme": SimpleNamespace(  # noqa: E731
        doc_id=doc, title=title, section=section, tenant=tenant
    )

    class Index:  # a loaded index: hashable, with its chunks
        chunks = [
            chunk("delivery-times", "Delivery times", "Standard delivery times"),
            chunk("refund-timing", "Refund timing", ""),
            chunk("globex-billing", "Delivery times", "Standard delivery times", tenant="globex"),
        ]

    kb = Index()
    tier0 = "Germany: 1-2 days.\n\nSource: Delivery times › Standard delivery times"
    llm = "It takes 1-2 days [1] and refunds 5 [2].\n\nSources: [1] Delivery times › Standard delivery times; [2] Refund timing"
    assert cited_doc_ids(tier0, kb, "acme") == ["delivery-times"]
    assert cited_doc_ids(llm, kb, "acme") == ["delivery-times", "refund-timing"]
    assert cited_doc_ids("no sources here", kb, "acme") == []
    assert cited_doc_ids(tier0, kb, "globex") == ["globex-billing"]


def test_a_stored_reason_keeps_no_personal_data():
    ctx = TurnContext("acme", "alice", "acme:alice", "c-1", "hi")
    run = ActionRun("action_answer_knowledge", "knowledge", reason="user wrote bob@example.org, 030 12345678")
    assert run.row(ctx)["reason"] == "user wrote [email], [phone]"


class _Skill(RecordedAction):
    """A skill action that only replies: what the recording adds to its events is under test."""

    handler = "skill"

    def name(self) -> str:
        return "action_test_skill"

    async def act(self, dispatcher, tracker, domain, ctx, record):
        record.handler = self.handler
        dispatcher.utter_message(text="done")
        return [SlotSet("order_id", "ORD-10042")]


@pytest.mark.parametrize(
    ("intent", "handler", "topic"),
    [
        ("request_refund", "skill", "Get my money back or check on a refund"),  # its intent's description
        ("track_order", "skill", "Check where my order is"),
        ("inform", "skill", None),  # an order id alone names no subject
        ("request_refund", "knowledge", None),  # the knowledge action sets the topic itself
    ],
)
async def test_a_skill_turn_sets_the_conversation_topic(
    tracker_from, dispatcher, domain, intent, handler, topic
):
    tracker = tracker_from("order_question", text="refund ORD-10042 please")
    tracker.latest_message["intent"] = {"name": intent, "confidence": 0.9}
    action = _Skill()
    action.handler = handler
    events = await action.run(dispatcher, tracker, domain)
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert slots.get("order_id") == "ORD-10042"  # the action's own events are kept
    assert slots.get("knowledge_topic") == topic
