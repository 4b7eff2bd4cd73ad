"""The Analytics figures (app/analytics/kpis.py) on turn records built from hand-made tracker rows, action
runs and LLM calls (:func:`~app.analytics.turn_records.build_turns`, as the recorder builds them), and the
loaders on real stores (SQLite, and PostgreSQL when it is there) that the recorder filled."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from app.analytics.formatting import format_rate
from app.analytics.kpis import compute, day_bounds
from app.analytics.loaders import list_tenants, load_analytics, load_turns
from app.analytics.turn_records import TurnRecorder, build_turns, load_records
from app.data.db import get_engine, upgrade
from app.data.db import store_url as tracker_url
from app.data.schema import action_runs, llm_calls
from app.orchestration.handlers import ACTION_HANDLERS, PLUMBING_ACTIONS
from tests.app.analytics.tracker import RASA_EVENTS_DDL, Conversation, rows, utc, write_tracker

DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp()


def records(*conversations: Conversation) -> list[dict]:
    """The turn records of the conversations, as the recorder builds them (default tenant ``acme``)."""
    return [
        record
        for conv in conversations
        for record in build_turns(conv.sender_id, conv.rows, conv.runs, conv.calls, default_tenant="acme")
    ]


def run(*conversations: Conversation, tenant="acme", start=DAY, end=DAY, extra_calls=()):
    calls = [c for conv in conversations for c in conv.calls] + list(extra_calls)
    return compute(records(*conversations), calls, tenant=tenant, start=start, end=end)


def greet_only(sender: str = "acme:gina", at: float = T0) -> Conversation:
    return Conversation(sender, at).session_start().turn("hello", "greet", "utter_greet", "Hi!", latency=0.1)


def handlers_of(result, conversation: str) -> list[str]:
    return list(result.turns.loc[result.turns["conversation"].eq(conversation), "handler"])


# --- definitions ---------------------------------------------------------------------------------------


def test_every_response_and_action_of_the_domain_has_a_handler():
    """A turn Rasa answers without our actions gets its handler from the one table (app/orchestration/
    handlers.py): a response or action added to the domain without a handler would be an ``error`` turn."""
    domain = yaml.safe_load((Path(__file__).resolve().parents[3] / "nlu" / "domain.yml").read_text())
    names = [*(domain.get("responses") or {}), *(domain.get("actions") or [])]
    assert "utter_greet" in names and "action_answer_knowledge" in names
    assert [n for n in names if n not in ACTION_HANDLERS and n not in PLUMBING_ACTIONS] == []


def test_no_records_give_zero_conversations_and_undefined_rates():
    result = compute([], [], tenant="acme", start=DAY, end=DAY)
    k = result.kpis
    assert k.conversations == 0 and k.user_turns == 0
    assert (
        k.containment_rate is None and k.fallback_rate is None and k.idk_rate is None and k.error_rate is None
    )
    assert k.cost_mean is None and k.latency_p50_ms is None and k.cost_total == 0.0
    assert list(result.daily["conversations"]) == [0]
    assert math.isnan(result.daily["containment_rate"].iloc[0])
    assert result.latency_by_handler.empty and result.cost_by_tier_model.empty
    assert result.containment_by_channel.empty and result.escalation_by_intent.empty
    assert result.answers_by_tier.set_index("answered_by")["answers"].to_dict() == {
        "tier 0": 0, "tier 1": 0, "tier 2": 0, "cache": 0,
    }  # fmt: skip
    assert format_rate(k.containment_rate) == "–"


def test_a_conversation_with_only_a_greet():
    result = run(greet_only())
    k = result.kpis
    assert (k.conversations, k.user_turns, k.contained, k.escalated) == (1, 1, 1, 0)
    assert (k.containment_rate, k.escalation_rate, k.fallback_rate, k.idk_rate, k.error_rate) == (
        1.0, 0.0, 0.0, 0.0, 0.0,
    )  # fmt: skip
    assert k.cost_total == 0.0 and k.cost_mean == 0.0 and k.tokens_p95 == 0.0
    assert k.latency_p50_ms == pytest.approx(100, abs=0.01)
    turn = result.turns.iloc[0]
    assert (turn["intent"], turn["handler"], turn["channel"]) == ("greet", "chitchat", "rest")
    conv = result.conversations.iloc[0]
    assert (conv["conversation"], conv["conversation_id"], conv["tenant_id"], conv["user_id"]) == (
        "acme:gina#1", "acme:gina", "acme", "gina",
    )  # fmt: skip


def test_session_start_without_a_user_message_is_not_a_conversation():
    assert run(Conversation("acme:idle", T0).session_start()).kpis.conversations == 0


def test_latency_by_handler_uses_the_first_bot_message_of_the_turn():
    conv = Conversation("acme:lat", T0).session_start()
    conv.turn("hi", "greet", "utter_greet", "Hi!", latency=0.1)
    conv.turn("delivery?", "ask_delivery", "action_answer_knowledge", "3 days", latency=1.0)
    conv.turn("returns?", "ask_returns", "action_answer_knowledge", "30 days", latency=3.0)
    conv.user("where is ORD-1", "track_order", delay=5).action("action_track_order", delay=0.2)
    conv.bot("Shipped", delay=0.2).bot("Tracking: 123", delay=1.0).listen()
    result = run(conv)
    by = result.latency_by_handler.set_index("handler")
    assert list(by.index) == ["chitchat", "skill", "knowledge"]  # the vocabulary's order
    assert by.loc["knowledge", "turns"] == 2
    assert by.loc["knowledge", "p50_ms"] == pytest.approx(2000, abs=0.1)  # linear between 1000 and 3000
    assert by.loc["knowledge", "p95_ms"] == pytest.approx(2900, abs=0.1)
    assert by.loc["skill", "p50_ms"] == pytest.approx(400, abs=0.1)  # the first bot message, not the second
    assert by.loc["chitchat", "p50_ms"] == pytest.approx(100, abs=0.1)
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
    result = run(conv)
    assert result.kpis.user_turns == 2 and result.kpis.fallback_turns == 1
    assert result.kpis.fallback_rate == 0.5
    assert handlers_of(result, "acme:fb#1") == ["fallback", "knowledge"]
    assert result.kpis.escalated == 0


def test_rephrase_is_a_fallback_turn_and_a_give_up_is_a_handoff_that_escalates():
    conv = Conversation("acme:gu", T0).session_start()
    conv.user("blorp", "nlu_fallback", 0.2, delay=5).action("action_two_stage_fallback")
    conv.active_loop("action_two_stage_fallback").bot("Did you mean:").listen()
    conv.user("/out_of_scope", "out_of_scope", 1.0, delay=5).action("action_two_stage_fallback")
    conv.bot("Could you rephrase?").listen()  # "Something else": ask to rephrase
    conv.user("zzz qqq", "nlu_fallback", 0.1, delay=5).action("action_two_stage_fallback")
    conv.bot("Let me get a person for you.").bot("I've opened ticket #7").rewind()
    conv.slot("failed_turns", 1.0).slot("handoff_active", True).active_loop(None).listen()
    result = run(conv)
    assert handlers_of(result, "acme:gu#1") == ["fallback", "fallback", "handoff"]  # one handler a turn
    assert result.kpis.fallback_turns == 2 and result.kpis.fallback_rate == pytest.approx(2 / 3)
    assert result.kpis.escalated == 1 and result.kpis.containment_rate == 0.0


def test_core_fallback_and_the_default_response_are_fallback_turns():
    conv = Conversation("acme:core", T0).session_start()
    conv.turn("hmm", "affirm", "action_default_fallback", "Sorry, I didn't get that.")
    conv.turn("?", "nlu_fallback", "utter_default", "Sorry?", confidence=0.1)
    conv.turn("thanks", "thanks", "utter_you_are_welcome", "You're welcome")
    result = run(conv)
    assert handlers_of(result, "acme:core#1") == ["fallback", "fallback", "chitchat"]
    assert result.kpis.fallback_rate == pytest.approx(2 / 3)


def test_i_dont_know_and_error_rates_come_from_the_recorded_handler():
    conv = Conversation("acme:idk", T0).session_start()
    conv.turn("parking at the store?", "ask_store_info", "action_answer_knowledge", "I don't know that.",
              run={"handler": "idk", "rule": "nothing_to_answer"})  # fmt: skip
    conv.user("where is ORD-1", "track_order", delay=5).action("action_track_order").listen()  # no reply
    conv.turn("hi", "greet", "utter_greet", "Hi!")
    result = run(conv)
    assert handlers_of(result, "acme:idk#1") == ["idk", "error", "chitchat"]
    k = result.kpis
    assert (k.idk_turns, k.error_turns) == (1, 1)
    assert k.idk_rate == pytest.approx(1 / 3) and k.error_rate == pytest.approx(1 / 3)
    assert math.isnan(result.turns["latency_ms"].iloc[1]) and "error" not in set(
        result.latency_by_handler["handler"]
    )
    assert k.escalated == 0


def test_handoff_escalates_and_forwarded_turns_have_no_latency():
    conv = Conversation("acme:ho", T0).session_start()
    conv.turn("hi", "greet", "utter_greet", "Hi!")
    conv.user("a person please", "human_handoff", delay=5).action("action_handoff")
    conv.ran("action_handoff", "handoff", rule="handoff_request", ticket_id=1)
    conv.bot("I've opened ticket #1").bot("Until then I'll stay quiet").slot("handoff_active", True).listen()
    conv.user("hello?", "greet", delay=5).action("action_forward_to_agent")
    conv.ran("action_forward_to_agent", "handoff", outcome="silent", ticket_id=1).listen()
    result = run(conv, greet_only("acme:happy"))
    k = result.kpis
    assert (k.conversations, k.escalated, k.contained) == (2, 1, 1)
    assert k.containment_rate == 0.5 and k.escalation_rate == 0.5
    assert handlers_of(result, "acme:ho#1") == ["chitchat", "handoff", "handoff"]
    forwarded = result.turns[result.turns["conversation"].eq("acme:ho#1")].iloc[2]
    assert math.isnan(forwarded["latency_ms"]) and forwarded["outcome"] == "silent"
    assert set(result.latency_by_handler["handler"]) == {"chitchat", "handoff"}


def test_hand_back_replay_is_part_of_the_turn_it_continues():
    conv = Conversation("acme:back", T0).session_start()
    conv.user("agent please", "human_handoff", delay=5).action("action_handoff")
    conv.ran("action_handoff", "handoff", ticket_id=2).bot("ticket #2").slot("handoff_active", True).listen()
    conv.user("hi again", "greet", delay=60).action("action_forward_to_agent")
    conv.ran("action_forward_to_agent", "handoff", outcome="replayed").rewind()
    conv.slot("handoff_active", False).listen().user("hi again", "greet", message_id=None)
    conv.action("utter_greet").bot("Hello!").listen()
    result = run(conv)
    assert result.kpis.user_turns == 2
    assert handlers_of(result, "acme:back#1") == [
        "handoff",
        "chitchat",
    ]  # the bot answered after the hand-back
    assert result.kpis.escalated == 1  # it did reach a human


def test_a_ticket_escalates_the_session_whose_turn_opened_it():
    conv = Conversation("acme:tk", T0).session_start().turn("hi", "greet", "utter_greet", "Hi")
    conv.session_start(delay=4000)  # a second session
    conv.turn("parking?", "ask_store_info", "action_answer_knowledge", "I don't know; I've opened ticket #7",
              run={"handler": "idk", "ticket_id": 7})  # fmt: skip
    result = run(conv)
    convs = result.conversations.set_index("conversation")
    assert list(convs.index) == ["acme:tk#1", "acme:tk#2"]
    assert not convs.loc["acme:tk#1", "escalated"] and convs.loc["acme:tk#2", "escalated"]
    assert result.kpis.escalated == 1  # a ticket alone escalates, whatever the handler


def test_cost_and_tokens_per_conversation_and_answers_by_tier():
    knowledge = "action_answer_knowledge"
    a = Conversation("acme:a", T0).session_start()
    a.turn("delivery?", "ask_delivery", knowledge, "3 days", latency=1.0,
           run={"handler": "knowledge", "tier_tried": 1, "tier_used": 2})  # fmt: skip
    a.called(1, tier=1, cost=0.002, prompt_tokens=100, completion_tokens=20, outcome="timeout")
    a.called(2, tier=2, cost=0.010, prompt_tokens=300, completion_tokens=50)  # escalated to tier 2
    a.turn("warranty?", "ask_warranty", knowledge, "2 years", run={"handler": "knowledge", "tier_used": 0})
    b = Conversation("acme:b", T0 + 100).session_start()
    b.turn("billing?", "ask_billing", knowledge, "Invoice", run={"handler": "knowledge", "tier_used": 1})
    b.called(3, tier=1, cost=0.004, prompt_tokens=200, completion_tokens=30)
    c = greet_only("acme:c", T0 + 200)
    c.turn("returns?", "ask_returns", knowledge, "30 days", run={"handler": "knowledge", "cache": "exact"})
    stray = {**b.calls[0], "id": 4, "cost": 1.0, "conversation_id": "acme:z", "correlation_id": "elsewhere"}
    result = run(a, b, c, extra_calls=[stray])  # a call no record names costs no conversation anything
    convs = result.conversations.set_index("conversation")
    assert convs.loc["acme:a#1", "cost"] == pytest.approx(0.012) and convs.loc["acme:a#1", "tokens"] == 470
    assert convs.loc["acme:b#1", "cost"] == pytest.approx(0.004) and convs.loc["acme:c#1", "cost"] == 0
    k = result.kpis
    assert k.cost_total == pytest.approx(0.016) and k.cost_mean == pytest.approx(0.016 / 3)
    assert k.cost_p50 == pytest.approx(0.004) and k.cost_p95 == pytest.approx(0.004 + 0.9 * 0.008)
    assert k.tokens_total == 700 and k.tokens_p50 == 230
    assert k.llm_calls == 3
    tiers = result.answers_by_tier.set_index("answered_by")["answers"].to_dict()
    assert tiers == {"tier 0": 1, "tier 1": 1, "tier 2": 1, "cache": 1}
    by = result.cost_by_tier_model.set_index(["tier", "model"])
    assert by.loc[(1, "small"), "calls"] == 2 and by.loc[(1, "small"), "ok_calls"] == 1
    assert by.loc[(2, "small"), "cost"] == pytest.approx(0.010)
    assert by.loc[(1, "small"), "cost_per_conversation"] == pytest.approx(0.006 / 3)


def test_a_knowledge_turn_without_an_action_run_is_unrecorded_in_the_tier_mix():
    conv = Conversation("acme:old", T0).session_start()
    conv.turn("delivery?", "ask_delivery", "action_answer_knowledge", "3 days")
    tiers = run(conv).answers_by_tier.set_index("answered_by")["answers"].to_dict()
    assert tiers == {"tier 0": 0, "tier 1": 0, "tier 2": 0, "cache": 0, "unrecorded": 1}


def test_tenants_are_isolated():
    acme = greet_only("acme:alice")
    globex = Conversation("globex:alice", T0).session_start()
    globex.user("blorp", "nlu_fallback", 0.1, delay=5).action("action_two_stage_fallback").bot("?").listen()
    globex.user("a person", "human_handoff", delay=5).action("action_handoff")
    globex.ran("action_handoff", "handoff", ticket_id=1).called(9, cost=0.5).bot("ticket").listen()
    legacy = greet_only("bob", T0 + 50)  # no tenant prefix: the default tenant's
    mine = run(acme, globex, legacy, tenant="acme")
    assert mine.kpis.conversations == 2 and set(mine.conversations["user_id"]) == {"alice", "bob"}
    assert mine.kpis.escalated == 0 and mine.kpis.fallback_turns == 0 and mine.kpis.cost_total == 0.0
    theirs = run(acme, globex, legacy, tenant="globex")
    assert theirs.kpis.conversations == 1 and theirs.kpis.escalated == 1
    assert theirs.kpis.fallback_turns == 1 and theirs.kpis.cost_total == pytest.approx(0.5)
    assert run(acme, globex, legacy, tenant="initech").kpis.conversations == 0


def test_date_range_and_daily_series():
    day_before = greet_only("acme:early", T0 - 86_400)
    late = Conversation("acme:late", T0 - 10 * 3600 - 60).session_start()  # 23:59 the day before
    late.turn("hi", "greet", "utter_greet", "Hi").turn("bye", "goodbye", "utter_goodbye", "Bye", delay=120)
    today_a = greet_only("acme:a", T0)
    today_b = Conversation("acme:b", T0 + 60).session_start()
    today_b.turn("?", "nlu_fallback", "action_two_stage_fallback", "Did you mean", confidence=0.1)
    today_b.turn("person", "human_handoff", "action_handoff", "ticket")
    conversations = (day_before, late, today_a, today_b)
    only_today = run(*conversations)
    assert only_today.kpis.conversations == 2 and only_today.kpis.user_turns == 3  # late's 00:01 turn: not
    both = run(*conversations, start=date(2026, 11, 19), end=date(2026, 11, 21))
    daily = both.daily.set_index(both.daily["day"].dt.date)
    assert list(daily["conversations"]) == [2, 2, 0]
    assert list(daily["user_turns"]) == [3, 3, 0]  # a conversation's turns count on the day it started
    assert daily.loc[DAY, "escalation_rate"] == 0.5
    assert daily.loc[DAY, "fallback_rate"] == pytest.approx(1 / 3)
    assert daily.loc[date(2026, 11, 19), "containment_rate"] == 1.0
    assert math.isnan(daily.loc[date(2026, 11, 21), "fallback_rate"])
    with pytest.raises(ValueError, match="ends"):
        day_bounds(date(2026, 11, 21), date(2026, 11, 20))


def test_containment_by_channel_and_model_variant_and_escalation_by_intent():
    web = Conversation("acme:web", T0).session_start()
    web.user("hi", "greet", delay=5, channel="socketio", metadata={"model_variant": "challenger"})
    web.action("utter_greet").bot("Hi").listen()
    web.turn("person", "human_handoff", "action_handoff", "ticket #1")
    calm = greet_only("acme:calm", T0 + 10)
    upset = greet_only("acme:upset", T0 + 20).turn("person", "human_handoff", "action_handoff", "ticket #2")
    result = run(web, calm, upset)
    channels = result.containment_by_channel.set_index("channel")
    assert list(channels.index) == ["rest", "socketio"]  # most conversations first
    assert channels.loc["rest", ["conversations", "contained", "escalated"]].tolist() == [2, 1, 1]
    assert (
        channels.loc["rest", "containment_rate"] == 0.5 and channels.loc["socketio", "escalation_rate"] == 1.0
    )
    variants = result.containment_by_variant.set_index("model_variant")
    assert variants["conversations"].to_dict() == {"(none)": 2, "challenger": 1}  # no gateway: no variant
    assert variants.loc["challenger", "escalated"] == 1 and variants.loc["(none)", "containment_rate"] == 0.5
    intents = result.escalation_by_intent.set_index("intent")
    assert intents.loc["greet", ["turns", "escalated"]].tolist() == [3, 0]
    assert intents.loc["human_handoff", ["turns", "escalated"]].tolist() == [2, 2]
    assert intents.loc["human_handoff", "escalation_rate"] == 1.0


def test_malformed_event_data_is_tolerated():
    conv = greet_only()
    for row in conv.rows:
        if row["type_name"] == "bot":
            row["data"] = "not json"
    assert run(conv).kpis.conversations == 1


# --- loaders on real stores ----------------------------------------------------------------------------


def record(tracker_file, store: str, *conversations: Conversation, extra_calls=()) -> None:
    """What the running stack leaves behind: the tracker events, our action runs and LLM calls, and the turn
    records the recorder built from them."""
    write_tracker(tracker_file, *conversations)
    upgrade(store)
    runs = [r for c in conversations for r in c.runs]
    calls = [c for conv in conversations for c in conv.calls] + list(extra_calls)
    with get_engine(store).begin() as conn:
        if runs:
            conn.execute(sa.insert(action_runs), runs)
        if calls:
            conn.execute(sa.insert(llm_calls), calls)
    TurnRecorder(tracker_url(str(tracker_file)), store).sync()


def test_a_missing_store_is_empty_and_not_created(tmp_path):
    path = tmp_path / "switchboard.db"
    result = load_analytics(f"sqlite:///{path}", "acme", DAY, DAY)
    assert result.kpis.conversations == 0 and result.kpis.unattributed_llm_calls == 0
    assert list_tenants(f"sqlite:///{path}", "acme") == ["acme"]
    assert not path.exists()
    assert tracker_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert tracker_url("postgresql://u:pw@h:5432/db") == "postgresql+psycopg://u:pw@h:5432/db"


def conversations_for_loaders() -> list[Conversation]:
    handoff = Conversation("acme:ho", T0).session_start().turn("hi", "greet", "utter_greet", "Hi")
    handoff.turn("person", "human_handoff", "action_handoff", "ticket #1",
                 run={"handler": "handoff", "ticket_id": 1})  # fmt: skip
    knowledge = Conversation("acme:k", T0 + 5).session_start()
    knowledge.turn("delivery?", "ask_delivery", "action_answer_knowledge", "3 days", latency=1.0,
                   run={"handler": "knowledge", "tier_used": 1}).called(1, cost=0.003)  # fmt: skip
    under_score = greet_only("ac_e:x", T0)  # a tenant of its own, whatever '_' means in LIKE
    other = greet_only("globex:x", T0).called(2, cost=9.0)
    return [handoff, knowledge, under_score, other]


def test_loaders_match_the_metric_functions_on_sqlite_and_postgres(tmp_path, db_url):
    convs = conversations_for_loaders()
    stray = {**convs[1].calls[0], "id": 3, "correlation_id": "", "created_at": utc(T0 + 30)}  # no turn's
    record(tmp_path / "tracker.db", db_url, *convs, extra_calls=[stray])
    loaded = load_analytics(db_url, "acme", DAY, DAY)
    expected = compute(records(*convs), [c for conv in convs for c in conv.calls], tenant="acme", start=DAY,
                       end=DAY, unattributed_calls=1)  # fmt: skip
    assert loaded.kpis == expected.kpis
    assert loaded.kpis.conversations == 2 and loaded.kpis.escalated == 1
    assert loaded.kpis.cost_total == pytest.approx(0.003) and loaded.kpis.unattributed_llm_calls == 1
    assert list(loaded.turns["handler"]) == ["chitchat", "handoff", "knowledge"]
    assert list_tenants(db_url, "acme") == ["acme", "ac_e", "globex"]
    assert load_analytics(db_url, "ac_e", DAY, DAY).kpis.conversations == 1
    assert load_analytics(db_url, "globex", DAY, DAY).kpis.cost_total == pytest.approx(9.0)


def test_tracker_store_on_postgres(postgres_url):
    """Scale-out: the tracker store is PostgreSQL; the recorder reads it by URL, the page the records."""
    engine = get_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(RASA_EVENTS_DDL[0].replace("id INTEGER NOT NULL", "id SERIAL NOT NULL")))
        insert = sa.text(
            "INSERT INTO events VALUES "
            "(:id, :sender_id, :type_name, :timestamp, :intent_name, :action_name, :data)"
        )
        conn.execute(insert, rows(*conversations_for_loaders()))
    upgrade(postgres_url)
    TurnRecorder(tracker_url(postgres_url), postgres_url).sync()
    loaded = load_analytics(postgres_url, "acme", DAY, DAY)
    assert loaded.kpis.conversations == 2 and loaded.kpis.escalated == 1
    assert loaded.kpis.latency_p50_ms is not None


def test_conversations_of_other_days_are_not_loaded_and_sessions_keep_rasas_numbers(tmp_path):
    store = f"sqlite:///{tmp_path / 'switchboard.db'}"
    old = greet_only("acme:old", T0 - 10 * 86_400)
    returning = greet_only("acme:ret", T0 - 3 * 86_400).session_start(delay=3 * 86_400)
    returning.turn("hi", "greet", "utter_greet", "Hi")
    late = Conversation("acme:late", T0 - 10 * 3600 - 60).session_start()  # 23:59 the day before
    late.turn("hi", "greet", "utter_greet", "Hi").turn("bye", "goodbye", "utter_goodbye", "Bye", delay=120)
    record(tmp_path / "tracker.db", store, old, returning, late)
    low, high = day_bounds(DAY, DAY)
    loaded = load_turns(store, "acme", low, high)
    assert [(r["conversation_id"], r["session_index"]) for r in loaded] == [("acme:ret", 2)]
    day_before = load_turns(store, "acme", low - timedelta(days=1), low)
    assert [r["turn_index"] for r in day_before if r["conversation_id"] == "acme:late"] == [1, 2]
    assert len(load_records(store)) == 5  # the others stay stored
