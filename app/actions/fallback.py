"""The two-stage fallback: "Did you mean ...?" with the top intents as buttons, then rephrase, then a human.

Rasa's ``action_two_stage_fallback`` loop drives the stages; these two actions replace its defaults:
- ``action_default_ask_affirmation`` offers the most likely intents (readable descriptions from
  ``nlu/intent_descriptions.csv``) as buttons, plus "Something else" (``/out_of_scope``: ask to rephrase);
- ``action_default_fallback`` runs when clarification failed: it counts the failure, and after
  ``router.max_failed_turns`` failures in the conversation (the router's rule, one setting) hands it to a human (a ticket). Rasa also
  runs it as the core fallback (the dialogue policy is unsure what to do next): then it only apologises,
  since the user was understood.
"""

from __future__ import annotations

import copy
from typing import Any

import structlog
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, FollowupAction, SlotSet, UserUtteranceReverted, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from app.actions.context import TurnContext
from app.actions.descriptions import intent_descriptions
from app.actions.handoff import open_handoff_ticket
from app.actions.records import ActionRun, RecordedAction
from app.orchestration.router import NLU_FALLBACK, RouterConfig
from app.settings import get_settings

logger = structlog.get_logger(__name__)

NOT_SUGGESTED = {"nlu_fallback", "out_of_scope", "affirm", "deny", "inform"}
MAX_SUGGESTIONS = 3


def suggestions(intent_ranking: list[dict[str, Any]], descriptions: dict[str, str]) -> list[dict[str, str]]:
    """Buttons for the most likely intents that have a description, best first."""
    buttons = []
    for candidate in intent_ranking:
        name = candidate.get("name")
        if name in NOT_SUGGESTED or name not in descriptions:
            continue
        buttons.append({"title": descriptions[name], "payload": f"/{name}"})
        if len(buttons) == MAX_SUGGESTIONS:
            break
    return buttons


def ask_what_was_meant(tracker: Tracker) -> list[dict[str, Any]]:
    """Events that start the two-stage fallback for the current turn (the router chose ``fallback``).

    Rasa's ``action_two_stage_fallback`` loop asks "did you mean ...?" only when the latest intent is
    ``nlu_fallback``; under any other intent it counts the message as already clarified and runs it again. So a
    turn the router found unclear under another intent (unsure, and nothing in the articles) is told again as
    ``nlu_fallback``, the way the loop itself re-tells a clarified message: the same user event (text, message
    id, metadata, entities, intent ranking for the buttons) after ``UserUtteranceReverted`` and ``action_listen``.
    The turn records keep the model's own reading: they take the intent from the message's first telling."""
    if ((tracker.latest_message or {}).get("intent") or {}).get("name") == NLU_FALLBACK:
        return [FollowupAction("action_two_stage_fallback")]
    said = tracker.get_last_event_for("user") or {}
    parse = copy.deepcopy(said.get("parse_data") or tracker.latest_message or {})
    confidence = float((parse.get("intent") or {}).get("confidence") or 0.0)
    parse["intent"] = {"name": NLU_FALLBACK, "confidence": confidence}
    retold = UserUttered(said.get("text"), parse_data=parse, input_channel=said.get("input_channel"))
    retold |= {"message_id": said.get("message_id"), "metadata": said.get("metadata") or {}}
    return [
        UserUtteranceReverted(),
        ActionExecuted("action_listen"),
        retold,
        FollowupAction("action_two_stage_fallback"),
    ]


class ActionAskAffirmation(RecordedAction):
    def name(self) -> str:
        return "action_default_ask_affirmation"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        record.rule = "ask_affirmation"
        ranking = (tracker.latest_message or {}).get("intent_ranking") or []
        buttons = suggestions(ranking, intent_descriptions(ctx.tenant_id))
        buttons.append({"title": "Something else", "payload": "/out_of_scope"})
        dispatcher.utter_message(text="Sorry, I'm not sure I understood. Did you mean:", buttons=buttons)
        return []


class ActionDefaultFallback(RecordedAction):
    def name(self) -> str:
        return "action_default_fallback"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        if (tracker.active_loop or {}).get("name") != "action_two_stage_fallback":  # core fallback
            record.rule = "core_fallback"
            dispatcher.utter_message(response="utter_default")
            return [UserUtteranceReverted()]
        settings = get_settings()
        failures = int(tracker.get_slot("failed_turns") or 0) + 1
        limit = RouterConfig.from_params(settings.params_section("router")).max_failed_turns
        logger.info("fallback.failed", failures=failures, limit=limit, **ctx.log_fields())
        events: list[dict[str, Any]] = [UserUtteranceReverted(), SlotSet("failed_turns", float(failures))]
        if failures >= limit:
            record.handler, record.rule = "handoff", "too_many_failures"
            dispatcher.utter_message(text="I'm sorry I couldn't help with that. Let me get a person for you.")
            record.ticket_id = open_handoff_ticket(dispatcher, tracker, ctx, reason="fallback", handoff=True)
            if record.ticket_id is not None:
                events.append(SlotSet("handoff_active", True))
            else:
                record.outcome = "degraded"
            return events
        record.rule = "rephrase"
        dispatcher.utter_message(response="utter_default")
        return events
