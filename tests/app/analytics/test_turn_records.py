"""Turn records: one per user turn, from the tracker events joined with the action runs and LLM calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.analytics.turn_records import TurnRecorder, build_turns, load_records
from app.data.db import get_engine, upgrade
from app.data.schema import action_runs, llm_calls
from tests.app.analytics.tracker import Conversation, action_run, utc, write_tracker

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()
SENDER = "acme:dana"


def said(conv: Conversation, text: str, intent: str, correlation: str, **kwargs) -> Conversation:
    return conv.user(text, intent, metadata={"correlation_id": correlation, "model_variant": "champion",
                                             "model_id": "m1"}, delay=5, **kwargs)  # fmt: skip


def run(action: str, handler: str, correlation: str, at: float, **fields) -> dict:
    return action_run(SENDER, correlation, action, handler, at, **fields)


def rows_of(conv: Conversation) -> list[dict]:
    return [dict(r) for r in conv.rows]


def test_rules_routed_turns_get_their_handler_from_the_response():
    conv = Conversation(SENDER, T0).session_start()
    said(conv, "hi", "greet", "c1").action("utter_greet", delay=0.05).bot("Hi!", delay=0.05).listen()
    said(conv, "what's the weather", "out_of_scope", "c2").action("utter_out_of_scope").bot("Sorry").listen()
    greet, oos = build_turns(SENDER, rows_of(conv))
    assert (greet["handler"], greet["rule"], greet["turn_index"], greet["session_index"]) == (
        "chitchat", "RulePolicy:utter_greet", 1, 1,
    )  # fmt: skip
    assert (oos["handler"], oos["outcome"], oos["actions"]) == ("out_of_scope", "ok", ["utter_out_of_scope"])
    assert greet["latency_ms"] == pytest.approx(100, abs=1)
    assert (greet["tenant_id"], greet["user_id"], greet["correlation_id"]) == ("acme", "dana", "c1")
    assert (greet["model_variant"], greet["model_id"], greet["channel"]) == ("champion", "m1", "rest")


def test_action_turns_carry_what_the_action_recorded_and_their_llm_calls():
    conv = Conversation(SENDER, T0)
    said(conv, "delivery to spain?", "ask_delivery", "c1").action("action_answer_knowledge", delay=0.2)
    conv.bot("3-5 days. Sources: Delivery times").listen()
    said(conv, "parking at the store?", "ask_store_info", "c2").action("action_answer_knowledge", delay=0.2)
    conv.bot("I don't know").listen()
    runs = [
        run("action_answer_knowledge", "knowledge", "c1", T0 + 5.1, rule="knowledge_intent", tier_tried=1,
            tier_used=2, sources=["delivery-times"], tools=[], stages={"answer": 3.0}, outcome="degraded"),
        run("action_answer_knowledge", "idk", "c2", T0 + 10.3, rule="nothing_to_answer", sources=[]),
    ]  # fmt: skip
    calls = [
        {"id": 7, "correlation_id": "c1"},
        {"id": 8, "correlation_id": "c1"},
        {"id": 9, "correlation_id": "x"},
    ]
    answered, unknown = build_turns(SENDER, rows_of(conv), runs, calls)
    assert (answered["handler"], answered["rule"], answered["tier_tried"], answered["tier_used"]) == (
        "knowledge", "knowledge_intent", 1, 2,
    )  # fmt: skip
    assert answered["sources"] == ["delivery-times"] and answered["llm_call_ids"] == [7, 8]
    assert answered["outcome"] == "degraded" and answered["stages"] == {"answer": 3.0}
    assert (unknown["handler"], unknown["rule"], unknown["llm_call_ids"]) == ("idk", "nothing_to_answer", [])


def test_a_clarified_fallback_is_two_turns_and_the_click_is_answered():
    conv = Conversation(SENDER, T0)
    said(conv, "blorp", "nlu_fallback", "c1").action("action_two_stage_fallback")
    conv.active_loop("action_two_stage_fallback").bot("Did you mean:").listen()
    said(conv, "/ask_returns", "ask_returns", "c2").action("action_two_stage_fallback").active_loop(None)
    conv.user("/ask_returns", "ask_returns", message_id=conv.last_message_id(),
              metadata={"correlation_id": "c2"})  # fmt: skip
    conv.action("action_answer_knowledge").bot("Returns within 30 days").listen()
    runs = [run("action_answer_knowledge", "knowledge", "c2", T0 + 10.1, sources=["returns-policy"])]
    asked, clicked = build_turns(SENDER, rows_of(conv), runs)
    assert asked["handler"] == "fallback" and asked["intent"] == "nlu_fallback"
    assert (clicked["handler"], clicked["sources"], clicked["turn_index"]) == (
        "knowledge",
        ["returns-policy"],
        2,
    )


def test_handoff_forwarding_and_hand_back():
    conv = Conversation(SENDER, T0)
    said(conv, "a person please", "human_handoff", "c1").action("action_handoff").bot("ticket #3")
    conv.slot("handoff_active", True).listen()
    said(conv, "still there?", "chitchat", "c2").action("action_forward_to_agent").listen()
    said(conv, "thanks bye", "goodbye", "c3").action("action_forward_to_agent").rewind()
    conv.slot("handoff_active", False).listen()
    conv.user("thanks bye", "goodbye", message_id=None, metadata={"correlation_id": "c3"})
    conv.action("utter_goodbye").bot("Goodbye!").listen()
    runs = [
        run("action_handoff", "handoff", "c1", T0 + 5.05, ticket_id=3, rule="handoff_request"),
        run("action_forward_to_agent", "handoff", "c2", T0 + 10.05, outcome="silent", ticket_id=3),
        run("action_forward_to_agent", "handoff", "c3", T0 + 15.05, outcome="replayed"),
    ]
    handed, silent, back = build_turns(SENDER, rows_of(conv), runs)
    assert (handed["handler"], handed["ticket_id"], handed["rule"]) == ("handoff", 3, "handoff_request")
    assert (silent["handler"], silent["outcome"], silent["latency_ms"]) == ("handoff", "silent", None)
    assert (back["handler"], back["actions"], back["turn_index"]) == ("chitchat", ["utter_goodbye"], 3)


def test_a_turn_without_a_reply_is_an_error():
    conv = Conversation(SENDER, T0)
    said(conv, "where is ORD-20001", "track_order", "c1").action("action_track_order").listen()
    (turn,) = build_turns(SENDER, rows_of(conv))
    assert (turn["handler"], turn["outcome"], turn["bot_messages"]) == ("error", "error", 0)


def test_a_reply_rasa_gave_itself_without_the_action_server_is_a_degraded_static_turn():
    """The action server was down: the Rasa server answered the knowledge turn itself (app/channels/degraded.py),
    and no action run was recorded."""
    conv = Conversation(SENDER, T0)
    said(conv, "do you ship to norway?", "ask_delivery", "c1").action("action_answer_knowledge")
    conv.bot(
        "I can't look that up right now.",
        metadata={"degraded": "action_server_unavailable", "level": "static"},
    )
    conv.listen()
    (turn,) = build_turns(SENDER, rows_of(conv))
    assert (turn["handler"], turn["outcome"], turn["level"]) == ("knowledge", "degraded", "static")


def test_the_recorder_rebuilds_senders_with_new_events(tmp_path):
    tracker, store = tmp_path / "tracker.db", f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(store)
    conv = Conversation(SENDER, T0)
    said(conv, "hi", "greet", "c1").action("utter_greet").bot("Hi!").listen()
    write_tracker(tracker, conv)
    recorder = TurnRecorder(f"sqlite:///{tracker}", store)
    assert recorder.sync() == 1 and recorder.sync() == 0  # nothing new the second time
    with get_engine(store).begin() as conn:
        conn.execute(
            sa.insert(action_runs).values(
                run(
                    "action_track_order",
                    "skill",
                    "c2",
                    T0 + 10.1,
                    rule="order_lookup",
                    tools=["order_status"],
                )
            )
        )
        conn.execute(sa.insert(llm_calls).values(
            tenant_id="acme", user_id="dana", conversation_id=SENDER, correlation_id="c2", tier=1,
            model="small", outcome="ok", created_at=utc(T0 + 10.1),
        ))  # fmt: skip
    more = Conversation(SENDER, conv.at)
    said(more, "where is ORD-20001", "track_order", "c2").action("action_track_order").bot("shipped").listen()
    write_tracker(tracker, more)
    other = Conversation("globex:erin", more.at)
    said(other, "bye", "goodbye", "g1").action("utter_goodbye").bot("Bye").listen()
    write_tracker(tracker, other)
    assert TurnRecorder(f"sqlite:///{tracker}", store).sync() == 2  # a new recorder resumes where records end
    records = load_records(store)
    assert [(r["conversation_id"], r["turn_index"], r["handler"]) for r in records] == [
        ("acme:dana", 1, "chitchat"), ("acme:dana", 2, "skill"), ("globex:erin", 1, "chitchat"),
    ]  # fmt: skip
    assert records[1]["tools"] == ["order_status"] and len(records[1]["llm_call_ids"]) == 1
    assert [r["tenant_id"] for r in load_records(store, tenant="globex")] == ["globex"]
    assert json.loads(json.dumps(records[0]["entities"])) == []


def test_new_events_after_an_erasure_are_recorded_even_with_reused_ids(tmp_path):
    """forget-user deletes a sender's events; SQLite then hands the same ids out again. The recorder goes by
    when events were stamped and what changed, not by ids above a watermark."""
    import sqlite3
    import time

    tracker, store = tmp_path / "tracker.db", f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(store)
    now = time.time()  # events are stamped when Rasa makes them
    first = Conversation(SENDER, now - 30)
    said(first, "hi", "greet", "c1").action("utter_greet").bot("Hi!").listen()
    write_tracker(tracker, first)
    recorder = TurnRecorder(f"sqlite:///{tracker}", store)
    assert recorder.sync() == 1
    with sqlite3.connect(tracker) as conn:  # the erasure
        ids = [r[0] for r in conn.execute("SELECT id FROM events ORDER BY id")]
        conn.execute("DELETE FROM events")
    again = Conversation(SENDER, now)
    said(again, "bye", "goodbye", "c2").action("utter_goodbye").bot("Bye").listen()
    for row, reused in zip(again.rows, ids, strict=False):
        row["id"] = reused  # the ids the deleted events had
    write_tracker(tracker, again)
    assert recorder.sync() == 1
    assert [(r["correlation_id"], r["handler"]) for r in load_records(store)] == [("c2", "chitchat")]


def test_entity_values_keep_no_personal_data():
    """The tracker store is the conversation store; the analytics store keeps entities with personal data
    (e-mail, phone, card numbers) masked, and everything else as extracted."""
    conv = Conversation(SENDER, T0)
    said(conv, "I'm alice@example.com, +49 30 12345678, order ORD-10042", "order_question", "c1")
    conv.action("action_track_order").bot("It's on its way.").listen()
    rows = rows_of(conv)
    user = next(r for r in rows if r["type_name"] == "user")
    data = json.loads(user["data"])
    data["parse_data"]["entities"] = [
        {"entity": "email", "value": "alice@example.com", "start": 4, "end": 21},
        {"entity": "phone", "value": "+49 30 12345678"},
        {"entity": "card", "value": "4111-1111-1111-1111"},
        {"entity": "order_id", "value": "ORD-10042"},
        {"entity": "quantity", "value": 2},
    ]
    user["data"] = json.dumps(data)
    (record,) = build_turns(SENDER, rows)
    assert record["entities"] == [
        {"entity": "email", "value": "[email]"},
        {"entity": "phone", "value": "[phone]"},
        {"entity": "card", "value": "[card]"},
        {"entity": "order_id", "value": "ORD-10042"},
        {"entity": "quantity", "value": 2},
    ]
