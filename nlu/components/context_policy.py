"""ContextPolicy: follow-up questions go back to the action that answered the turn before.

A dialogue policy (Rasa 3.6) with no training: right after a user message it applies
:func:`nlu.context.context_action` to the conversation and, when that names an action, predicts it with
confidence 1 at a priority above RulePolicy's (6): "and France?" after a delivery answer goes to the knowledge
action although the NLU read it as out of scope; "yes" to the bot's offer of a person opens the handoff. The
action then checks the follow-up against the knowledge base (app/actions/knowledge.py). After an action it
chose, it predicts ``action_listen`` (no rule covers those turns, and Rasa's core fallback would answer
"Sorry, I didn't quite get that" instead). Otherwise it predicts nothing and the other policies decide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from nlu.context import context_action

#: The events read back from the tracker (a follow-up refers to the turn before: a few dozen events suffice).
RECENT_EVENTS = 60


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class ContextPolicy(Policy):
    """See the module docstring."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"priority": 7}

    def train(
        self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any
    ) -> Resource:
        """Nothing to learn: the rules are :mod:`nlu.context`'s."""
        self.persist()
        return self._resource

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as path:
            (Path(path) / "context_policy.json").write_text(json.dumps({"rules": "nlu.context"}))

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        if not tracker.active_loop_name:
            events = [event.as_dict() for event in list(tracker.applied_events())[-RECENT_EVENTS:]]
            action = context_action(events, tracker.current_slot_values())
            if action is not None and action in domain.action_names_or_texts:
                probabilities[domain.index_for_action(action)] = 1.0
        return self._prediction(probabilities)
