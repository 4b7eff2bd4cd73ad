from __future__ import annotations

import pytest

from app.actions import services
from app.actions.fallback import (
    ActionAskAffirmation,
    ActionDefaultFallback,
    ask_what_was_meant,
    intent_descriptions,
    suggestions,
)

pytestmark = pytest.mark.anyio

RANKING = [
    {"name": "nlu_fallback", "confidence": 0.4},
    {"name": "ask_returns", "confidence": 0.31},
    {"name": "out_of_scope", "confidence": 0.2},
    {"name": "request_refund", "confidence": 0.18},
    {"name": "ask_delivery", "confidence": 0.1},
    {"name": "ask_billing", "confidence": 0.05},
]


def test_every_domain_intent_has_a_description(domain):
    assert set(domain["intents"]) <= set(intent_descriptions())


def test_a_tenant_has_its_own_words_for_an_intent_where_the_file_gives_them():
    shop, energy = intent_descriptions(), intent_descriptions("globex")
    assert set(energy) == set(shop)  # every intent still described
    assert "meter" in energy["ask_billing"] and "meter" not in shop["ask_billing"]
    assert energy["greet"] == shop["greet"]  # no globex row: the default
    assert intent_descriptions("acme") == shop  # a tenant without rows of its own


async def test_the_buttons_speak_the_users_tenant(tracker_from, dispatcher, domain):
    tracker = tracker_from(
        "order_question", text="meter thing??", intent_ranking=RANKING,
        metadata={"tenant_id": "globex", "user_id": "gus"},
    )  # fmt: skip
    await ActionAskAffirmation().run(dispatcher, tracker, domain)
    titles = [b["title"] for b in dispatcher.messages[0]["buttons"]]
    assert intent_descriptions("globex")["ask_billing"] not in titles  # 4th in the ranking: not offered
    assert titles[0] == intent_descriptions("globex")["ask_returns"] != intent_descriptions()["ask_returns"]


def test_an_unclear_turn_under_another_intent_is_told_again_as_nlu_fallback(tracker_from):
    # Rasa's two-stage loop asks only under nlu_fallback: any other intent would count as already clarified
    tracker = tracker_from("order_question")
    said = {
        "event": "user", "text": "hmm so about the money thing", "message_id": "m-7", "input_channel": "rest",
        "metadata": {"tenant_id": "acme", "user_id": "ada", "correlation_id": "c-7"},
        "parse_data": {"intent": {"name": "ask_product", "confidence": 0.55}, "intent_ranking": RANKING[1:],
                       "entities": [], "text": "hmm so about the money thing"},
    }  # fmt: skip
    tracker.events.append(said)
    tracker.latest_message = said["parse_data"]
    reverted, listen, retold, followup = ask_what_was_meant(tracker)
    assert reverted["event"] == "rewind" and listen == {**listen, "event": "action", "name": "action_listen"}
    assert retold["parse_data"]["intent"] == {"name": "nlu_fallback", "confidence": 0.55}
    assert retold["parse_data"]["intent_ranking"] == RANKING[1:]  # the buttons offer the model's readings
    assert (retold["text"], retold["message_id"], retold["metadata"]) == (
        said["text"],
        "m-7",
        said["metadata"],
    )
    assert followup == {**followup, "event": "followup", "name": "action_two_stage_fallback"}
    assert said["parse_data"]["intent"]["name"] == "ask_product"  # the tracker's own event is left as it was

    tracker.latest_message = {**said["parse_data"], "intent": {"name": "nlu_fallback", "confidence": 0.3}}
    assert [e["event"] for e in ask_what_was_meant(tracker)] == ["followup"]  # already nlu_fallback: just ask


def test_suggestions_skip_fallback_and_out_of_scope_and_keep_order():
    descriptions = {
        "ask_returns": "Return an item",
        "request_refund": "Get a refund",
        "ask_delivery": "Delivery",
        "ask_billing": "Billing",
        "out_of_scope": "x",
    }
    assert suggestions(RANKING, descriptions) == [
        {"title": "Return an item", "payload": "/ask_returns"},
        {"title": "Get a refund", "payload": "/request_refund"},
        {"title": "Delivery", "payload": "/ask_delivery"},
    ]


async def test_ask_affirmation_offers_top_intents_and_something_else(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="hmm returns?", intent_ranking=RANKING)
    await ActionAskAffirmation().run(dispatcher, tracker, domain)
    buttons = dispatcher.messages[0]["buttons"]
    assert [b["payload"] for b in buttons] == [
        "/ask_returns",
        "/request_refund",
        "/ask_delivery",
        "/out_of_scope",
    ]
    assert buttons[0]["title"] == intent_descriptions()["ask_returns"]


async def test_failed_fallback_hands_over_after_the_limit(tracker_from, dispatcher, domain, monkeypatch):
    from app.settings import Settings

    monkeypatch.setattr(Settings, "params_section", lambda self, name: {"max_failed_turns": 2})
    tracker = tracker_from("order_question")
    tracker.active_loop = {"name": "action_two_stage_fallback"}  # the two-stage fallback gave up
    first = await ActionDefaultFallback().run(dispatcher, tracker, domain)
    assert first[0]["event"] == "rewind"
    assert first[1]["name"] == "failed_turns" and first[1]["value"] == 1.0
    assert dispatcher.messages[0]["response"] == "utter_default"
    assert services.ticketing().list_tickets("acme") == []

    tracker.slots["failed_turns"] = 1.0
    second = await ActionDefaultFallback().run(dispatcher, tracker, domain)
    assert second[1]["value"] == 2.0
    assert "get a person" in dispatcher.messages[1]["text"]
    tickets = services.ticketing().list_tickets("acme", "alice")
    assert len(tickets) == 1 and tickets[0]["subject"].startswith("Chat handoff (fallback)")
    assert second[-1] == {"event": "slot", "timestamp": None, "name": "handoff_active", "value": True}


async def test_core_fallback_only_apologises(tracker_from, dispatcher, domain):
    """Rasa's core fallback (the dialogue policy is unsure, not the NLU) counts no failure, opens no ticket."""
    events = await ActionDefaultFallback().run(dispatcher, tracker_from("order_question"), domain)
    assert [e["event"] for e in events] == ["rewind"]
    assert dispatcher.messages[0]["response"] == "utter_default"
    assert services.ticketing().list_tickets("acme") == []
