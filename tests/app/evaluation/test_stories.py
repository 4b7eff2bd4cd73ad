"""Conversations as Rasa test stories: the actions and slots of a correct bot, and where a story must end."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.evaluation.conversations import ConversationFileError, domain_intents, load
from app.evaluation.stories import STOP_REASONS, convert, write

ROOT = Path(__file__).resolve().parents[3]
DOMAIN = ROOT / "nlu" / "domain.yml"

CONVERSATIONS = """\
version: 1
customers:
  - tenant: acme
    user: dana
    name: Dana Weber
    email: dana@example.com
    orders:
      - {id: ORD-20001, status: shipped, total: "59.90"}
      - {id: ORD-20002, status: delivered, total: "24.00"}
conversations:
  - id: small-talk-and-questions
    tenant: acme
    user: dana
    turns:
      - user: hi
        expect: {handler: chitchat, intent: greet}
      - user: how long does shipping to spain take?
        expect: {handler: knowledge, intent: ask_delivery}
      - user: why was my order cancelled?
        expect: {handler: knowledge, intent: track_order}
      - user: how long do refunds take?
        expect: {handler: knowledge, intent: request_refund}
      - user: show me bob's orders
        expect: {handler: out_of_scope, intent: track_order}
      - user: do you engrave knives?
        expect: {handler: idk, intent: ask_product}
      - user: yes please
        expect: {handler: handoff, intent: affirm, ticket: true}
  - id: orders-and-refunds
    tenant: acme
    user: dana
    turns:
      - user: where is ORD-20001
        expect: {handler: skill, intent: track_order}
      - user: what about ord 29999
        expect: {handler: skill, intent: track_order}
      - user: i want my money back
        expect: {handler: skill, intent: request_refund}
      - user: ORD-20002
        expect: {handler: skill, intent: inform}
      - user: sorry, I meant ORD-20009
        expect: {handler: skill, intent: inform}
      - user: and the tracking of ORD-20001?
        expect: {handler: skill, intent: track_order}
      - user: whats the tracking number
        expect: {handler: skill, intent: track_order}
  - id: complaint-agent-hand-back
    tenant: acme
    user: emil
    turns:
      - user: third late delivery, I'm fed up
        expect: {handler: handoff, intent: complaint, ticket: true}
      - agent: Hi, this is Sam. Which order is it?
      - user: hello??
        expect: {handler: handoff, intent: greet}
      - hand_back: true
      - user: thanks, bye
        expect: {handler: chitchat, intent: goodbye}
  - id: cancel-request
    tenant: acme
    user: fatima
    turns:
      - user: cancel ORD-20031 please
        expect: {handler: handoff, intent: cancel_order, ticket: true}
  - id: fallback-then-click
    tenant: acme
    user: gregor
    turns:
      - user: about the money thing
        expect: {handler: fallback, intent: request_refund, buttons: true}
      - click: 1
        expect: {handler: knowledge}
      - user: thanks
        expect: {handler: chitchat, intent: thanks}
  - id: language-first
    tenant: acme
    user: hana
    turns:
      - user: Wo ist meine Bestellung?
        expect: {handler: language}
      - user: where is my order
        expect: {handler: skill, intent: track_order}
  - id: demo-customer
    tenant: acme
    user: alice
    turns:
      - user: could you look up ORD-10042
        expect: {handler: skill, intent: track_order}
      - user: great, thanks
        expect: {handler: skill, intent: thanks}
"""


def converted(tmp_path: Path, text: str = CONVERSATIONS):
    path = tmp_path / "conversations.yml"
    path.write_text(text)
    return convert([load(path, intents=domain_intents(DOMAIN))])


def steps_of(conversion, conversation: str) -> list[dict]:
    story = next(s for s in conversion.stories if s["story"] == conversation)
    return [{k: (v.strip() if k == "user" else v) for k, v in step.items()} for step in story["steps"]]


def user(text: str, intent: str) -> dict:
    return {"user": text, "intent": intent}


def test_chitchat_questions_and_out_of_scope_get_the_actions_of_a_correct_bot(tmp_path):
    assert steps_of(converted(tmp_path), "small-talk-and-questions") == [
        user("hi", "greet"),
        {"action": "utter_greet"},
        user("how long does shipping to spain take?", "ask_delivery"),
        {"action": "action_answer_knowledge"},
        # a question about an order is a knowledge question, whatever today's rules do with its intent
        user("why was my order cancelled?", "track_order"),
        {"action": "action_answer_knowledge"},
        # the refund action answers refund questions
        user("how long do refunds take?", "request_refund"),
        {"action": "action_request_refund"},
        {"slot_was_set": [{"refund_requested": False}]},
        user("show me bob's orders", "track_order"),
        {"action": "utter_out_of_scope"},
        user("do you engrave knives?", "ask_product"),
        {"action": "action_answer_knowledge"},
        # "yes" to the offer of a person opens the handoff
        user("yes please", "affirm"),
        {"action": "action_handoff"},
        {"slot_was_set": [{"handoff_active": True}]},
    ]


def test_order_and_refund_skills_set_the_slots_their_actions_return(tmp_path):
    assert steps_of(converted(tmp_path), "orders-and-refunds") == [
        user("where is ORD-20001", "track_order"),
        {"action": "action_track_order"},
        {"slot_was_set": [{"order_id": "ORD-20001"}]},
        # not the customer's order: the action says "not found" and clears the slot
        user("what about ord 29999", "track_order"),
        {"action": "action_track_order"},
        {"slot_was_set": [{"order_id": None}]},
        # no order id: the refund action asks for it
        user("i want my money back", "request_refund"),
        {"action": "action_request_refund"},
        {"slot_was_set": [{"refund_requested": True}]},
        user("ORD-20002", "inform"),
        {"action": "action_request_refund"},
        {"slot_was_set": [{"order_id": "ORD-20002"}, {"refund_requested": False}]},
        # an id right after a refund belongs to the refund, also when the slot says it is done
        user("sorry, I meant ORD-20009", "inform"),
        {"action": "action_request_refund"},
        {"slot_was_set": [{"order_id": None}, {"refund_requested": False}]},
        user("and the tracking of ORD-20001?", "track_order"),
        {"action": "action_track_order"},
        {"slot_was_set": [{"order_id": "ORD-20001"}]},
        # no id in the text: the action looks up the order of the slot again
        user("whats the tracking number", "track_order"),
        {"action": "action_track_order"},
        {"slot_was_set": [{"order_id": "ORD-20001"}]},
    ]


def test_demo_customers_own_their_seeded_orders(tmp_path):
    steps = steps_of(converted(tmp_path), "demo-customer")
    assert steps[:3] == [
        user("could you look up ORD-10042", "track_order"),
        {"action": "action_track_order"},
        {"slot_was_set": [{"order_id": "ORD-10042"}]},
    ]


def test_a_handoff_forwards_every_message_and_ends_at_the_hand_back(tmp_path):
    conversion = converted(tmp_path)
    assert steps_of(conversion, "complaint-agent-hand-back") == [
        user("third late delivery, I'm fed up", "complaint"),
        {"action": "action_complaint"},  # apologises and hands over (a question would get the article)
        {"slot_was_set": [{"handoff_active": True}]},
        # the agent's reply is no Rasa event: left out, the story goes on
        user("hello??", "greet"),
        {"action": "action_forward_to_agent"},
    ]
    assert steps_of(conversion, "cancel-request") == [
        user("cancel ORD-20031 please", "cancel_order"),
        {"action": "action_cancel_order"},
        {"slot_was_set": [{"handoff_active": True}]},
    ]
    outcome = next(o for o in conversion.outcomes if o.conversation == "complaint-agent-hand-back")
    assert (outcome.turns, outcome.in_story, outcome.stopped_at, outcome.reason) == (3, 2, 4, "hand_back")
    assert outcome.agent_replies == 1


def test_a_fallback_starts_the_two_stage_fallback_and_the_story_ends_at_the_click(tmp_path):
    conversion = converted(tmp_path)
    assert steps_of(conversion, "fallback-then-click") == [
        user("about the money thing", "nlu_fallback"),  # what the served model says when it is unsure
        {"action": "action_two_stage_fallback"},
        {"active_loop": "action_two_stage_fallback"},
    ]
    outcome = next(o for o in conversion.outcomes if o.conversation == "fallback-then-click")
    assert (outcome.stopped_at, outcome.reason) == (2, "click")


def test_what_no_story_can_state_ends_the_story_and_is_counted(tmp_path):
    conversion = converted(tmp_path)
    # a turn in another language: the language component's intent and its reply, and the story goes on
    assert steps_of(conversion, "language-first") == [
        user("Wo ist meine Bestellung?", "unsupported_language"),
        {"action": "utter_unsupported_language"},
        user("where is my order", "track_order"),
        {"action": "action_track_order"},
    ]
    # chitchat is a canned response; no action of the domain gives a skill reply to thanks
    assert len(steps_of(conversion, "demo-customer")) == 3
    assert conversion.summary() == {
        "conversations": 7,
        "stories": 7,
        "complete_stories": 4,
        "turns": 25,
        "story_turns": 21,
        "agent_replies_left_out": 1,
        "stopped": {"click": 1, "hand_back": 1, "no_action": 1},
    }


def test_text_rasa_would_read_as_an_annotation_ends_the_story(tmp_path):
    text = CONVERSATIONS.replace("user: how long does shipping to spain take?", "user: see [this](link)")
    outcome = next(
        o for o in converted(tmp_path, text).outcomes if o.conversation == "small-talk-and-questions"
    )
    assert (outcome.in_story, outcome.stopped_at, outcome.reason) == (1, 2, "markup")


def test_a_conversation_id_in_two_files_is_an_error(tmp_path):
    path = tmp_path / "conversations.yml"
    path.write_text(CONVERSATIONS)
    data = load(path)
    with pytest.raises(ConversationFileError, match="small-talk-and-questions: the id is used in two files"):
        convert([data, data])


def test_the_frozen_set_becomes_rasa_stories_of_the_domain(tmp_path):
    """Every intent, action and slot of the written stories is the domain's, and every handler and intent the
    frozen set expects maps to actions (a story ends only where Rasa cannot say what happens)."""
    frozen = ROOT / "nlu" / "conversations" / "frozen.yml"
    conversion = convert([load(frozen, intents=domain_intents(DOMAIN))])
    written = write(tmp_path / "test_stories.yml", conversion, [frozen]).read_text()
    assert written.startswith("# Generated by app/evaluation/stories.py")
    assert "  - user: |" in written  # user text as a block, as in Rasa's own stories
    stories = yaml.safe_load(written)
    assert stories["version"] == "3.1"
    assert [s["story"] for s in stories["stories"]] == [s["story"] for s in conversion.stories]

    domain = yaml.safe_load(DOMAIN.read_text())
    actions = {*domain["actions"], *domain["responses"], "action_two_stage_fallback"}
    steps = [step for story in stories["stories"] for step in story["steps"]]
    assert {s["intent"] for s in steps if "user" in s} <= set(domain_intents(DOMAIN))
    assert {s["action"] for s in steps if "action" in s} <= actions
    assert {name for s in steps for slot in s.get("slot_was_set", []) for name in slot} <= set(
        domain["slots"]
    )

    summary = conversion.summary()
    assert set(summary["stopped"]) <= {"click", "hand_back"}
    assert summary["stories"] == len(stories["stories"]) and summary["story_turns"] < summary["turns"]
    assert all(o.reason in STOP_REASONS for o in conversion.outcomes if o.reason)
