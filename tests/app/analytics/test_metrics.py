"""The metric definitions of app/analytics (sessions, handlers, attribution, kpis) on tiny hand-built tracker and store tables, and the
loaders on real databases (SQLite, and PostgreSQL when it is there) with Rasa's exact ``events`` schema."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, date, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from app.analytics.formatting import format_rate
from app.analytics.handlers import handler_of
from app.analytics.kpis import compute, day_bounds
from app.analytics.loaders import list_tenants, load_analytics, load_events
from app.data.db import get_engine, upgrade
from app.data.db import store_url as tracker_url
from app.data.schema import llm_calls, tickets
from tests.app.analytics.tracker import RASA_EVENTS_DDL, Conversation, frame, utc, write_tracker

DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp()


def run(events, tickets_rows=None, calls=None, tenant="acme", start=DAY, end=DAY):
    return compute(events, tickets_rows, calls, tenant=tenant, start=start, end=end, default_tenant="acme")


def call(
    sender: str,
    at: float,
    tier: int = 1,
    cost: float = 0.001,
    tokens: tuple[int, int] = (100, 20),
    outcome: str = "ok",
    model: str = "small",
    tenant: str | None = None,
) -> dict:
    return {"tenant_id": tenant or sender.split(":")[0], "user_id": sender.split(":")[-1],
            "conversation_id": sender, "tier": tier, "model": model, "prompt_tokens": tokens[0],
            "completion_tokens": tokens[1], "cost": cost, "latency_ms": 250, "outcome": outcome,
            "created_at": utc(at)}  # fmt: skip


def ticket(sender: str, at: float, active: bool = True) -> dict:
    return {"tenant_id": sender.split(":")[0], "conversation_id": sender, "created_at": utc(at),
            "status": "open", "handoff_active": active}  # fmt: skip


def greet_only(sender: str = "acme:gina", at: float = T0) -> Conversation:
    return Conversation(sender, at).session_start().turn("hello", "greet", "utter_greet", "Hi!", latency=0.1)


# --- definitions ---------------------------------------------------------------------------------------


def test_handler_mapping_is_defined_once_and_covers_the_domain_actions():
    assert handler_of("action_answer_knowledge") == "knowledge"
    assert handler_of("action_handoff") == handler_of("action_forward_to_agent") == "handoff"
    for name in ("action_two_stage_fallback", "action_default_fallback", "action_default_ask_affirmation"):
        assert handler_of(name) == "fallback"
    assert handler_of("action_track_order") == handler_of("utter_greet") == "skill"
    assert handler_of("action_listen") is None and handler_of("action_session_start") is None


def test_empty_stores_give_zero_conversations_and_undefined_rates():
    result = run(None)
    assert result.kpis.conversations == 0 and result.kpis.user_turns == 0
    assert result.kpis.containment_rate is None and result.kpis.fallback_rate is None
    assert result.kpis.cost_mean is None and result.kpis.latency_p50_ms is None
    assert result.kpis.cost_total == 0.0
    assert list(result.daily["conversations"]) == [0]
    assert math.isnan(result.daily["containment_rate"].iloc[0])
    assert result.latency_by_handler.empty and result.cost_by_tier_model.empty
    assert list(result.answers_by_tier["answers"]) == [0, 0, 0]
    assert format_rate(result.kpis.containment_rate) == "–"
    # an empty frame with the tracker's columns is the same as none
    assert run(frame()).kpis.conversations == 0


def test_a_conversation_with_only_a_greet():
    result = run(frame(greet_only()))
    k = result.kpis
    assert (k.conversations, k.user_turns, k.contained, k.escalated) == (1, 1, 1, 0)
    assert (k.containment_rate, k.escalation_rate, k.fallback_rate) == (1.0, 0.0, 0.0)
    assert k.cost_total == 0.0 and k.cost_mean == 0.0 and k.tokens_p95 == 0.0
    assert k.latency_p50_ms == pytest.approx(100, abs=0.01)
    turn = result.turns.iloc[0]
    assert (turn["intent"], turn["handler"], bool(turn["is_fallback"])) == ("greet", "skill", False)
    assert list(result.answers_by_tier["answers"]) == [0, 0, 0]
    conv = result.conversations.iloc[0]
    assert (conv["conversation_id"], conv["tenant"], conv["user_id"]) == ("acme:gina#1", "acme", "gina")


def test_session_start_without_a_user_message_is_not_a_conversation():
    assert run(frame(Conversation("acme:idle", T0).session_start())).kpis.conversations == 0


def test_latency_by_handler_uses_the_first_bot_message_of_the_turn():
    conv = Conversation("acme:lat", T0).session_start()
    conv.turn("hi", "greet", "utter_greet", "Hi!", latency=0.1)
    conv.turn("delivery?", "ask_delivery", "action_answer_knowledge", "3 days", latency=1.0)
    conv.turn("returns?", "ask_returns", "action_answer_knowledge", "30 days", latency=3.0)
    conv.user("where is ORD-1", "track_order", delay=5).action("action_track_order", delay=0.2)
    conv.bot("Shipped", delay=0.2).bot("Tracking: 123", delay=1.0).listen()
    result = run(frame(conv))
    by = result.latency_by_handler.set_index("handler")
    assert by.loc["knowledge", "turns"] == 2
    assert by.loc["knowledge", "p50_ms"] == pytest.approx(2000, abs=0.1)  # linear between 1000 and 3000
    assert by.loc["knowledge", "p95_ms"] == pytest.approx(2900, abs=0.1)
    assert by.loc["skill", "p50_ms"] == pytest.approx(250, abs=0.1)  # 100 and 400 (first bot message)
    assert result.kpis.latency_p50_ms == pytest.approx(700, abs=0.1)  # of 100, 400, 1000, 3000


def test_two_stage_fallback_counts_the_asking_turn_once_and_not_the_clarified_answer():
    conv = Conversation("acme:fb", T0).session_start()
    conv.user("blorp", "nlu_fallback", 0.2, delay=5).action("action_two_stage_fallback")
    conv.active_loop("action_two_stage_fallback").bot("Sorry, did you mean:").listen()
    conv.user("/ask_returns", "ask_returns", 1.0, delay=5).action("action_two_stage_fallback")
    conv.active_loop(None).rewind()
    clicked = conv.last_message_id()
    conv.listen().user("/ask_returns", "ask_returns", 1.0, message_id=clicked)  # Rasa's clarification
    conv.action("action_answer_knowledge").bot("Returns are free within 30 days.").listen()
    result = run(frame(conv))
    assert result.kpis.user_turns == 2 and result.kpis.fallback_turns == 1
    assert result.kpis.fallback_rate == 0.5
    assert list(result.turns["handler"]) == ["fallback", "knowledge"]
    assert list(result.turns["is_fallback"]) == [True, False]
    assert result.kpis.escalated == 0


def test_rephrase_and_give_up_are_fallback_turns_and_a_fallback_handoff_escalates():
    conv = Conversation("acme:gu", T0).session_start()
    conv.user("blorp", "nlu_fallback", 0.2, delay=5).action("action_two_stage_fallback")
    conv.active_loop("action_two_stage_fallback").bot("Did you mean:").listen()
    conv.user("/out_of_scope", "out_of_scope", 1.0, delay=5).action("action_two_stage_fallback")
    conv.bot("Could you rephrase?").listen()  # "Something else": ask to rephrase
    conv.user("zzz qqq", "nlu_fallback", 0.1, delay=5).action("action_two_stage_fallback")
    conv.bot("Let me get a person for you.").bot("I've opened ticket #7").rewind()
    conv.slot("failed_turns", 1.0).slot("handoff_active", True).active_loop(None).listen()
    result = run(frame(conv))
    assert result.kpis.fallback_turns == 3 and result.kpis.fallback_rate == 1.0
    assert list(result.turns["handler"]) == ["fallback", "fallback", "handoff"]
    assert result.kpis.escalated == 1 and result.kpis.containment_rate == 0.0


def test_core_fallback_and_nlu_fallback_intent_count_as_fallback():
    conv = Conversation("acme:core", T0).session_start()
    conv.turn("hmm", "affirm", "action_default_fallback", "Sorry, I didn't get that.")
    conv.turn("?", "nlu_fallback", "utter_default", "Sorry?", confidence=0.1)
    conv.turn("thanks", "thanks", "utter_thanks", "You're welcome")
    result = run(frame(conv))
    assert list(result.turns["is_fallback"]) == [True, True, False]
    assert result.kpis.fallback_rate == pytest.approx(2 / 3)


def test_handoff_escalates_and_forwarded_turns_have_no_latency():
    conv = Conversation("acme:ho", T0).session_start()
    conv.turn("hi", "greet", "utter_greet", "Hi!")
    conv.user("a person please", "human_handoff", delay=5).action("action_handoff")
    conv.bot("I've opened ticket #1").bot("Until then I'll stay quiet").slot("handoff_active", True).listen()
    conv.turn("hello?", "greet", "action_forward_to_agent", None)
    other = greet_only("acme:happy")
    result = run(frame(conv, other), [ticket("acme:ho", T0 + 11)])
    k = result.kpis
    assert (k.conversations, k.escalated, k.contained) == (2, 1, 1)
    assert k.containment_rate == 0.5 and k.escalation_rate == 0.5
    turns = result.turns[result.turns["conversation_id"].eq("acme:ho#1")]
    assert list(turns["handler"]) == ["skill", "handoff", "handoff"]
    assert math.isnan(turns["latency_s"].iloc[2])
    assert set(result.latency_by_handler["handler"]) == {"skill", "handoff"}


def test_hand_back_replay_is_part_of_the_turn_it_continues():
    conv = Conversation("acme:back", T0).session_start()
    conv.user("agent please", "human_handoff", delay=5).action("action_handoff").bot("ticket #2")
    conv.slot("handoff_active", True).listen()
    conv.user("hi again", "greet", delay=60).action("action_forward_to_agent").rewind()
    conv.slot("handoff_active", False).listen().user("hi again", "greet", message_id=None)
    conv.action("utter_greet").bot("Hello!").listen()
    result = run(frame(conv))
    assert result.kpis.user_turns == 2
    assert list(result.turns["handler"]) == ["handoff", "skill"]  # the bot answered after the hand-back
    assert result.kpis.escalated == 1  # it did reach a human


def test_a_ticket_alone_escalates_the_session_it_was_opened_in():
    conv = Conversation("acme:tk", T0).session_start().turn("hi", "greet", "utter_greet", "Hi")
    conv.session_start(delay=4000).turn("hi again", "greet", "utter_greet", "Hi")  # a second session
    second_start = conv.rows[-1]["timestamp"]
    result = run(frame(conv), [ticket("acme:tk", second_start + 1)])
    convs = result.conversations.set_index("conversation_id")
    assert list(convs.index) == ["acme:tk#1", "acme:tk#2"]
    assert not convs.loc["acme:tk#1", "escalated"] and convs.loc["acme:tk#2", "escalated"]
    # a ticket of another sender or before the conversation escalates nothing
    result = run(frame(conv), [ticket("acme:other", second_start), ticket("acme:tk", T0 - 100)])
    assert result.kpis.escalated == 0


def test_cost_and_tokens_per_conversation_and_answers_by_tier():
    a = Conversation("acme:a", T0).session_start()
    a.turn("delivery?", "ask_delivery", "action_answer_knowledge", "3 days", latency=1.0)
    a.turn("warranty?", "ask_warranty", "action_answer_knowledge", "2 years", latency=1.0)
    b = Conversation("acme:b", T0 + 100).session_start()
    b.turn("billing?", "ask_billing", "action_answer_knowledge", "Invoice", latency=1.0)
    c = greet_only("acme:c", T0 + 200)
    a_first, a_second = (r["timestamp"] for r in a.rows if r["type_name"] == "user")
    b_first = next(r["timestamp"] for r in b.rows if r["type_name"] == "user")
    calls = pd.DataFrame([
        call("acme:a", a_first + 0.3, tier=1, cost=0.002, tokens=(100, 20), outcome="timeout"),
        call("acme:a", a_first + 0.6, tier=2, cost=0.010, tokens=(300, 50)),  # escalated to tier 2
        call("acme:b", b_first + 0.5, tier=1, cost=0.004, tokens=(200, 30), model="small"),
        call("acme:z", T0 + 300, tier=1, cost=1.0),  # no tracker conversation: not attributed
    ])  # fmt: skip
    result = run(frame(a, b, c), calls=calls)
    convs = result.conversations.set_index("conversation_id")
    assert convs.loc["acme:a#1", "cost"] == pytest.approx(0.012) and convs.loc["acme:a#1", "tokens"] == 470
    assert convs.loc["acme:b#1", "cost"] == pytest.approx(0.004) and convs.loc["acme:c#1", "cost"] == 0
    k = result.kpis
    assert k.cost_total == pytest.approx(0.016) and k.cost_mean == pytest.approx(0.016 / 3)
    assert k.cost_p50 == pytest.approx(0.004) and k.cost_p95 == pytest.approx(0.004 + 0.9 * 0.008)
    assert k.tokens_total == 700 and k.tokens_p50 == 230
    assert k.llm_calls == 3 and k.unattributed_llm_calls == 1
    tiers = result.answers_by_tier.set_index("tier")["answers"].to_dict()
    assert tiers == {0: 1, 1: 1, 2: 1}  # a's 2nd turn extractive, a's 1st tier 2, b's tier 1
    by = result.cost_by_tier_model.set_index(["tier", "model"])
    assert by.loc[(1, "small"), "calls"] == 2 and by.loc[(1, "small"), "ok_calls"] == 1
    assert by.loc[(2, "small"), "cost"] == pytest.approx(0.010)
    assert by.loc[(1, "small"), "cost_per_conversation"] == pytest.approx(0.006 / 3)


def test_tenants_are_isolated():
    acme = greet_only("acme:alice")
    globex = Conversation("globex:alice", T0).session_start()
    globex.user("blorp", "nlu_fallback", 0.1, delay=5).action("action_two_stage_fallback").bot("?").listen()
    globex.user("a person", "human_handoff", delay=5).action("action_handoff").bot("ticket").listen()
    legacy = greet_only("bob", T0 + 50)  # no tenant prefix: the default tenant's
    tickets_rows = [ticket("globex:alice", T0 + 20)]
    calls = pd.DataFrame(
        [call("globex:alice", T0 + 12, cost=0.5), call("acme:alice", T0 + 30, cost=0.25, tenant="globex")]
    )
    events = frame(acme, globex, legacy)
    mine = run(events, tickets_rows, calls, tenant="acme")
    assert mine.kpis.conversations == 2 and set(mine.conversations["user_id"]) == {"alice", "bob"}
    assert mine.kpis.escalated == 0 and mine.kpis.fallback_turns == 0
    assert mine.kpis.cost_total == 0.0  # a globex row naming an acme conversation is not acme's
    theirs = run(events, tickets_rows, calls, tenant="globex")
    assert theirs.kpis.conversations == 1 and theirs.kpis.escalated == 1
    assert theirs.kpis.fallback_turns == 1 and theirs.kpis.cost_total == pytest.approx(0.5)
    assert run(events, tenant="initech").kpis.conversations == 0


def test_date_range_and_daily_series():
    day_before = greet_only("acme:early", T0 - 86_400)
    today_a = greet_only("acme:a", T0)
    today_b = Conversation("acme:b", T0 + 60).session_start()
    today_b.turn("?", "nlu_fallback", "action_two_stage_fallback", "Did you mean", confidence=0.1)
    today_b.turn("person", "human_handoff", "action_handoff", "ticket")
    events = frame(day_before, today_a, today_b)
    only_today = run(events)
    assert only_today.kpis.conversations == 2
    both = run(events, start=date(2026, 11, 19), end=date(2026, 11, 21))
    daily = both.daily.set_index(both.daily["day"].dt.date)
    assert list(daily["conversations"]) == [1, 2, 0]
    assert daily.loc[DAY, "escalation_rate"] == 0.5 and daily.loc[DAY, "fallback_rate"] == pytest.approx(
        1 / 3
    )
    assert daily.loc[date(2026, 11, 19), "containment_rate"] == 1.0
    assert math.isnan(daily.loc[date(2026, 11, 21), "fallback_rate"])
    with pytest.raises(ValueError, match="ends"):
        day_bounds(date(2026, 11, 21), date(2026, 11, 20))


def test_malformed_event_data_is_tolerated():
    events = frame(greet_only())
    events.loc[events["type_name"].eq("bot"), "data"] = "not json"
    assert run(events).kpis.conversations == 1


# --- loaders on real databases -------------------------------------------------------------------------


def test_missing_tracker_file_is_empty_and_not_created(tmp_path):
    path = tmp_path / "tracker.db"
    assert load_events(tracker_url(str(path)), "acme", T0, T0 + 1, "acme").empty
    assert not path.exists()
    assert tracker_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert tracker_url("postgresql://u:pw@h:5432/db") == "postgresql+psycopg://u:pw@h:5432/db"


def seed_store(url: str) -> None:
    upgrade(url)
    with get_engine(url).begin() as conn:
        conn.execute(sa.insert(tickets), [{**ticket("acme:ho", T0 + 11), "user_id": "ho", "subject": "s",
                                           "transcript": "t"}])  # fmt: skip
        conn.execute(sa.insert(llm_calls), [call("acme:k", T0 + 10.5, cost=0.003),
                                            call("globex:x", T0 + 10.5, cost=9.0)])  # fmt: skip


def conversations_for_loaders() -> list[Conversation]:
    handoff = Conversation("acme:ho", T0).session_start().turn("hi", "greet", "utter_greet", "Hi")
    handoff.turn("person", "human_handoff", "action_handoff", "ticket #1")
    knowledge = Conversation("acme:k", T0 + 5).session_start()
    knowledge.turn("delivery?", "ask_delivery", "action_answer_knowledge", "3 days", latency=1.0)
    under_score = greet_only("ac_e:x", T0)  # '_' must not match as a LIKE wildcard for tenant "acme"
    return [handoff, knowledge, under_score, greet_only("globex:x", T0)]


def test_loaders_match_the_metric_functions_on_sqlite_and_postgres(tmp_path, db_url):
    convs = conversations_for_loaders()
    tracker_file = tmp_path / "tracker.db"
    write_tracker(tracker_file, *convs)
    seed_store(db_url)
    loaded = load_analytics(tracker_url(str(tracker_file)), db_url, "acme", DAY, DAY, "acme")
    expected = run(
        frame(*convs),
        pd.DataFrame([ticket("acme:ho", T0 + 11)]),
        pd.DataFrame([call("acme:k", T0 + 10.5, cost=0.003), call("globex:x", T0 + 10.5, cost=9.0)]),
    )
    assert loaded.kpis == expected.kpis
    assert loaded.kpis.conversations == 2 and loaded.kpis.escalated == 1
    assert loaded.kpis.cost_total == pytest.approx(0.003)
    assert list_tenants(tracker_url(str(tracker_file)), db_url, "acme") == ["acme", "ac_e", "globex"]
    low, high = day_bounds(DAY, DAY)
    # "ac_e" is a tenant of its own: its '_' is not a LIKE wildcard that would match "acme:..."
    assert set(load_events(tracker_url(str(tracker_file)), "ac_e", low, high, "acme")["sender_id"]) == {
        "ac_e:x"
    }


def test_tracker_store_on_postgres(postgres_url):
    """Scale-out: the tracker store is PostgreSQL, read through the same loader by URL."""
    engine = get_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(RASA_EVENTS_DDL[0].replace("id INTEGER NOT NULL", "id SERIAL NOT NULL")))
    rows = frame(*conversations_for_loaders())
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO events VALUES (:id, :sender_id, :type_name, :timestamp, "
                             ":intent_name, :action_name, :data)"), rows.to_dict("records"))  # fmt: skip
    loaded = load_analytics(tracker_url(postgres_url), postgres_url, "acme", DAY, DAY, "acme")
    assert loaded.kpis.conversations == 2 and loaded.kpis.escalated == 1
    assert loaded.kpis.latency_p50_ms is not None


def test_events_outside_the_range_are_not_loaded_but_history_is(tmp_path):
    path = tmp_path / "tracker.db"
    old = greet_only("acme:old", T0 - 10 * 86_400)
    returning = greet_only("acme:ret", T0 - 3 * 86_400).session_start(delay=3 * 86_400)
    returning.turn("hi", "greet", "utter_greet", "Hi")
    write_tracker(path, old, returning)
    low, high = day_bounds(DAY, DAY)
    loaded = load_events(tracker_url(str(path)), "acme", low, high, "acme")
    assert set(loaded["sender_id"]) == {"acme:ret"}
    result = run(loaded)
    assert list(result.conversations["conversation_id"]) == ["acme:ret#2"]  # numbered as Rasa numbers them
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == len(frame(old, returning))
