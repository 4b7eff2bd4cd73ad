"""ContextPolicy inside Rasa: a follow-up after a knowledge answer goes back to the knowledge action, above
RulePolicy's out-of-scope rule; anything else it leaves to the other policies."""

from __future__ import annotations

from pathlib import Path

from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from nlu.components.context_policy import ContextPolicy

ROOT = Path(__file__).resolve().parents[3]


def policy(tmp_path) -> ContextPolicy:
    storage = LocalModelStorage(tmp_path)
    made = ContextPolicy.create(
        {**ContextPolicy.get_default_config()}, storage, Resource("context"), ExecutionContext(None, "1")
    )
    made.train([], Domain.load(ROOT / "nlu" / "domain.yml"))
    return made


def tracker(*events) -> DialogueStateTracker:
    domain = Domain.load(ROOT / "nlu" / "domain.yml")
    return DialogueStateTracker.from_events(
        "acme:dana", [ActionExecuted("action_listen"), *events], domain.slots
    )


def said(text: str, intent: str) -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": 0.9})


def predicted(made: ContextPolicy, state: DialogueStateTracker) -> str | None:
    domain = Domain.load(ROOT / "nlu" / "domain.yml")
    prediction = made.predict_action_probabilities(state, domain)
    if max(prediction.probabilities) == 0:
        return None
    assert prediction.policy_priority == 7
    return domain.action_names_or_texts[prediction.max_confidence_index]


KNOWLEDGE_TURN = [said("shipping to spain?", "ask_delivery"), ActionExecuted("action_answer_knowledge"),
                  BotUttered("3-5 business days."), ActionExecuted("action_listen")]  # fmt: skip


def test_a_follow_up_goes_back_to_the_knowledge_action(tmp_path):
    made = policy(tmp_path)
    assert (
        predicted(made, tracker(*KNOWLEDGE_TURN, said("and France?", "out_of_scope")))
        == "action_answer_knowledge"
    )
    assert predicted(made, tracker(*KNOWLEDGE_TURN, said("tell me a joke", "out_of_scope"))) is None
    assert predicted(made, tracker(*KNOWLEDGE_TURN, SlotSet("handoff_active", True),
                                   said("and France?", "out_of_scope"))) is None  # fmt: skip


def test_yes_to_the_offer_of_a_person_is_a_handoff_and_the_policy_persists(tmp_path):
    made = policy(tmp_path)
    offered = [said("parking?", "ask_store_info"), ActionExecuted("action_answer_knowledge"),
               BotUttered("I don't know. Would you like me to connect you with a human agent?"),
               ActionExecuted("action_listen")]  # fmt: skip
    assert predicted(made, tracker(*offered, said("yes", "affirm"))) == "action_handoff"
    loaded = ContextPolicy.load(
        ContextPolicy.get_default_config(), LocalModelStorage(tmp_path), Resource("context"),
        ExecutionContext(None, "1"),
    )  # fmt: skip
    assert predicted(loaded, tracker(*offered, said("yes", "affirm"))) == "action_handoff"


def test_after_the_handoff_it_opened_the_user_speaks(tmp_path):
    # The handoff sets handoff_active; without action_listen here Rasa's core fallback answered "Sorry, I didn't
    # quite get that", and its revert of the user's message undid the handoff (the ticket stayed open)
    made = policy(tmp_path)
    offered = [said("parking?", "ask_store_info"), ActionExecuted("action_answer_knowledge"),
               BotUttered("I don't know. Would you like me to connect you with a human agent?"),
               ActionExecuted("action_listen")]  # fmt: skip
    opened = [said("yes", "affirm"), ActionExecuted("action_handoff", policy="ContextPolicy"),
              BotUttered("I've opened ticket #1 for you."), SlotSet("handoff_active", True)]  # fmt: skip
    assert predicted(made, tracker(*offered, *opened)) == "action_listen"
    # the next message is the agent's rules' (the handoff rules forward it), not this policy's
    assert (
        predicted(made, tracker(*offered, *opened, ActionExecuted("action_listen"), said("thanks", "thanks")))
        is None
    )
