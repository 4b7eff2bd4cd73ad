"""The conversation test set as Rasa test stories, so ``rasa test`` runs them too (issue 10).

Each conversation of ``nlu/conversations/*.yml`` becomes one story (named by its id): every user turn with the
intent it expects, then the actions a correct bot runs for it and the slots those actions return, so Rasa's
test tracker is in the state the served bot would be in. :func:`expected_steps` is the one place that says
which actions; the expectation is what a correct bot does (the conversation file's rules), not what today's
rules happen to predict, so a story fails where the bot is wrong.

A story ends before the first turn no Rasa story can state (:data:`STOP_REASONS`): a click on a two-stage fallback button or any turn after the fallback asked,
an agent handing the conversation back (the bot's next reply replays a reverted message), a turn whose expected
handler no action of the domain produces for its intent, a bot reply expected while an agent has the
conversation, or text Rasa would read as markup. An agent's reply is left out and the story goes on: it reaches
the user through the CRM service, never Rasa's tracker.

:func:`convert` builds the stories and counts what became a story; :func:`write` writes the YAML.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.data.seed import DEMO
from app.evaluation.conversations import Conversation, ConversationFileError, ConversationSet, Turn
from app.integrations.crm import normalise_order_id
from app.orchestration.handlers import (
    CHITCHAT,
    FALLBACK,
    HANDOFF,
    IDK,
    KNOWLEDGE,
    LANGUAGE,
    OUT_OF_SCOPE,
    SKILL,
)
from app.orchestration.router import NLU_FALLBACK, ORDER_ID_IN_TEXT

RASA_VERSION = "3.1"

TRACK = "action_track_order"
REFUND = "action_request_refund"
HANDOFF_ACTION = "action_handoff"
FORWARD = "action_forward_to_agent"
KNOWLEDGE_ACTION = "action_answer_knowledge"
TWO_STAGE_FALLBACK = "action_two_stage_fallback"
LANGUAGE_INTENT = "unsupported_language"  # set by nlu/components/language.py
LANGUAGE_REPLY = "utter_unsupported_language"

# The expected behaviour of a correct bot, as Rasa actions (used by expected_steps, and nowhere else):
# - while an agent has the conversation every message goes to action_forward_to_agent (the bot is silent);
# - chitchat: the canned response of the intent (CHITCHAT_RESPONSES);
# - knowledge and idk: action_answer_knowledge, whatever the intent ("why was my order cancelled?" is a
#   question), except where the intent's own action answers questions too (QUESTION_ACTIONS): a refund
#   question (action_request_refund, refund_requested false), a cancellation or complaint question, a
#   question about a damaged, wrong or missing item, a double charge or an address change;
# - language: the NLU's unsupported_language, answered by utter_unsupported_language;
# - skill: track_order -> action_track_order; request_refund -> action_request_refund; inform (an order id)
#   -> whichever of the two the previous turn asked it for (a refund stays a refund, also after "not found"),
#   else action_track_order. The slots are those the actions return: order_id (the id, or null when the
#   order is not the customer's), refund_requested (true when the refund action asks for the id);
# - handoff: action_handoff (handoff_active true), or the intent's own action that hands over a request
#   (HANDOFF_ACTIONS: action_complaint, action_cancel_order), alone for any other intent (asking for a
#   person, "yes" to the offer of one, a request about one's personal data);
# - skill for a damaged, wrong or missing item, a double charge or an address change: its action
#   (PROBLEM_ACTIONS: a ticket, or what the order's status allows);
# - out_of_scope: utter_out_of_scope, whatever the intent (an injection asking for someone's orders too);
# - fallback: the served model's nlu_fallback (the turn's intent is the first button) starts Rasa's two-stage
#   fallback; the story ends at the next turn (a click, or the loop's next question).
CHITCHAT_RESPONSES: dict[str, str] = {
    "greet": "utter_greet",
    "goodbye": "utter_goodbye",
    "thanks": "utter_you_are_welcome",
    "affirm": "utter_how_can_i_help",
    "deny": "utter_how_can_i_help",
    "bot_challenge": "utter_iamabot",
    "chitchat": "utter_chitchat",
    "feedback": "utter_feedback_thanks",
}
HANDOFF_ACTIONS: dict[str, str] = {"complaint": "action_complaint", "cancel_order": "action_cancel_order"}
PROBLEM_ACTIONS: dict[str, str] = {
    "damaged_item": "action_report_problem",
    "wrong_item": "action_report_problem",
    "missing_item": "action_report_problem",
    "double_charge": "action_report_problem",
    "change_address": "action_change_address",
}
QUESTION_ACTIONS: dict[str, str] = {**HANDOFF_ACTIONS, **PROBLEM_ACTIONS}

#: Why a story ends before a turn.
STOP_REASONS: dict[str, str] = {
    "click": "a click on a two-stage fallback button",
    "fallback_loop": "a message inside the two-stage fallback",
    "hand_back": "the agent hands the conversation back",
    "no_action": "no action of the domain gives the expected handler for this intent",
    "agent_has_conversation": "a bot reply expected while an agent has the conversation",
    "markup": "text Rasa would read as an intent or entity annotation",
}

# Rasa reads `/intent` and `[text](entity)` / `[text]{...}` in a story's user text as annotations.
_MARKUP = re.compile(r"^\s*/|\[[^\]]+\][({\[]")


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _State:
    """What the expectation depends on: the slots the actions set, and what the previous turn asked for."""

    handoff_active: bool = False
    refund_requested: bool = False
    order_id: str | None = None
    asked_by: str | None = None  # TRACK or REFUND: the skill action of the previous turn
    in_fallback: bool = False


@dataclass(frozen=True)
class Outcome:
    """What of one conversation became a story."""

    conversation: str
    turns: int  # scored turns (user and click) of the conversation
    in_story: int  # of them, in the story
    stopped_at: int | None = None  # the turn number (from 1) the story ends before
    reason: str | None = None  # a key of STOP_REASONS
    agent_replies: int = 0  # agent replies left out of the story (they are no Rasa event)


@dataclass
class Conversion:
    """The stories of a conversation set, and what became of each conversation."""

    stories: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts: conversations and scored turns, how many became stories, and why the others stopped."""
        stopped = Counter(o.reason for o in self.outcomes if o.reason)
        return {
            "conversations": len(self.outcomes),
            "stories": len(self.stories),
            "complete_stories": sum(o.reason is None for o in self.outcomes),
            "turns": sum(o.turns for o in self.outcomes),
            "story_turns": sum(o.in_story for o in self.outcomes),
            "agent_replies_left_out": sum(o.agent_replies for o in self.outcomes),
            "stopped": {reason: stopped[reason] for reason in STOP_REASONS if stopped[reason]},
        }


def customer_orders(sets: Iterable[ConversationSet]) -> set[tuple[str, str, str]]:
    """``(tenant, user, order id)`` of every order the evaluation seeds: the demo data and the sets' fixtures."""
    owned = {(tenant, o.user_id, o.order_id) for tenant, data in DEMO.items() for o in data.orders}
    for data in sets:
        owned |= {(c.tenant, c.user, o.id) for c in data.customers for o in c.orders}
    return owned


def _action(name: str) -> dict[str, Any]:
    return {"action": name}


def _slots(**values: Any) -> dict[str, Any]:
    return {"slot_was_set": [{name: value} for name, value in values.items()]}


def _order_id(text: str, state: _State) -> str | None:
    """The order id a skill acts on, as the actions find it: one named in the text, else the slot's."""
    named = next(filter(None, map(normalise_order_id, ORDER_ID_IN_TEXT.findall(text))), None)
    return named or state.order_id


def expected_steps(
    turn: Turn, state: _State, owns: set[tuple[str, str, str]], who: tuple[str, str]
) -> tuple[str, list[dict[str, Any]]]:
    """The story intent of a user turn and the steps a correct bot runs after it (see the comment above
    CHITCHAT_RESPONSES); updates ``state``. Raises :class:`_Stop` when no Rasa story can state them."""
    assert turn.user is not None and turn.expect is not None
    handler, intent = turn.expect.handler, turn.expect.intent
    asked_by, state.asked_by = state.asked_by, None
    if handler == LANGUAGE:
        intent = LANGUAGE_INTENT
    if state.handoff_active:
        if handler != HANDOFF:
            raise _Stop("agent_has_conversation")
        return str(intent), [_action(FORWARD)]
    if handler == LANGUAGE:
        return LANGUAGE_INTENT, [_action(LANGUAGE_REPLY)]
    if handler == FALLBACK:
        state.in_fallback = True
        return NLU_FALLBACK, [_action(TWO_STAGE_FALLBACK), {"active_loop": TWO_STAGE_FALLBACK}]
    if intent is None:
        raise _Stop("no_action")
    if handler == CHITCHAT and intent in CHITCHAT_RESPONSES:
        return intent, [_action(CHITCHAT_RESPONSES[intent])]
    if handler == OUT_OF_SCOPE:
        return intent, [_action("utter_out_of_scope")]
    if handler in (KNOWLEDGE, IDK):
        if intent == "request_refund":
            state.refund_requested = False
            return intent, [_action(REFUND), _slots(refund_requested=False)]
        return intent, [_action(QUESTION_ACTIONS.get(intent, KNOWLEDGE_ACTION))]
    if handler == HANDOFF:
        state.handoff_active = True
        action = HANDOFF_ACTIONS.get(intent, HANDOFF_ACTION)
        return intent, [_action(action), _slots(handoff_active=True)]
    if handler == SKILL and intent in PROBLEM_ACTIONS:
        return intent, [_action(PROBLEM_ACTIONS[intent])]
    if handler == SKILL and intent in ("track_order", "request_refund", "inform"):
        refund = intent == "request_refund" or (
            intent == "inform" and (asked_by == REFUND or state.refund_requested)
        )
        state.asked_by = REFUND if refund else TRACK
        slots: dict[str, Any] = {}
        if (order_id := _order_id(turn.user, state)) is not None:
            # the actions clear the slot when the order is not the customer's ("not found")
            state.order_id = slots["order_id"] = order_id if (*who, order_id) in owns else None
        if refund:  # asks for the order number when there is none, else requests the refund
            state.refund_requested = slots["refund_requested"] = order_id is None
        return intent, [_action(REFUND if refund else TRACK), *([_slots(**slots)] if slots else [])]
    raise _Stop("no_action")


def story(
    conversation: Conversation, owns: set[tuple[str, str, str]]
) -> tuple[dict[str, Any] | None, Outcome]:
    """One conversation's story (None when not even its first turn can be one) and what became of it."""
    state, steps, in_story, agent_replies = _State(), [], 0, 0
    who = (conversation.tenant, conversation.user)
    stopped_at, reason = None, None
    for number, turn in enumerate(conversation.turns, 1):
        try:
            if turn.agent is not None:  # it reaches the user through the CRM service: no Rasa event
                agent_replies += 1
                continue
            if turn.hand_back:
                raise _Stop("hand_back")
            if state.in_fallback:
                raise _Stop("click" if turn.click is not None else "fallback_loop")
            if turn.click is not None:
                raise _Stop("click")
            assert turn.user is not None
            if _MARKUP.search(turn.user):
                raise _Stop("markup")
            intent, after = expected_steps(turn, state, owns, who)
        except _Stop as stop:
            stopped_at, reason = number, stop.reason
            break
        steps += [{"user": _Literal(turn.user.strip()), "intent": intent}, *after]
        in_story += 1
    outcome = Outcome(
        conversation.id, len(conversation.scored_turns), in_story, stopped_at, reason, agent_replies
    )
    return ({"story": conversation.id, "steps": steps} if steps else None), outcome


def convert(sets: Sequence[ConversationSet]) -> Conversion:
    """Every conversation of ``sets`` as a story; a conversation id used in two sets is a ConversationFileError
    (story names must be unique)."""
    owns = customer_orders(sets)
    result, seen = Conversion(), set()
    for data in sets:
        for conversation in data.conversations:
            if conversation.id in seen:
                raise ConversationFileError(f"conversation {conversation.id}: the id is used in two files")
            seen.add(conversation.id)
            built, outcome = story(conversation, owns)
            result.outcomes.append(outcome)
            if built is not None:
                result.stories.append(built)
    return result


class _Literal(str):
    """User text, written as a YAML block (``user: |``) as Rasa's own stories are."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Literal, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", str(text), style="|")
)


def dumps(stories: Sequence[dict[str, Any]], header: str = "") -> str:
    """Rasa YAML for ``stories``, with ``header`` as a comment on top."""
    body = yaml.dump(
        {"version": RASA_VERSION, "stories": list(stories)},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=110,
    )
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + body


def write(path: Path, conversion: Conversion, sources: Sequence[Path]) -> Path:
    """Write the stories of ``conversion`` (converted from ``sources``) as a Rasa test stories file."""
    header = (
        f"Generated by app/evaluation/stories.py from {', '.join(map(str, sources))}: do not edit.\n"
        "The actions are what a correct bot runs (app.evaluation.stories.expected_steps)."
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(conversion.stories, header), encoding="utf-8")
    return path
