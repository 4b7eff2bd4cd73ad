"""The one handler vocabulary: what kind of reply a user turn got.

The router (``decide()``), the action server's records, the turn records, the Analytics page and the bot-level
evaluation all speak it, so a figure computed from one can be compared with another. A turn has exactly one
handler:

- ``chitchat``: small talk answered by a canned response (greeting, goodbye, thanks, "are you a bot?",
  yes/no out of context, feedback);
- ``skill``: a deterministic skill (order status, refund request, or asking for the order number);
- ``knowledge``: an answer from the help articles (any tier, or the answer cache);
- ``idk``: the bot says it does not know and offers a person;
- ``fallback``: the bot is unsure what was meant and asks (two-stage fallback, "could you rephrase?");
- ``handoff``: a person takes over (a ticket is opened), or has the conversation (the message goes to them);
- ``out_of_scope``: a polite "that's outside what I can help with";
- ``language``: a message in a language the bot does not speak gets a reply saying which it speaks;
- ``error``: the bot failed to answer at all (no reply while no person has the conversation, an HTTP error,
  an action that crashed).

A reply that says the part it needs is down ("I can't reach our order system right now") keeps the handler
that gave it; the turn's *outcome* (``ok``, ``degraded``, ``silent``, ``error``) says how well it went.

Turns that Rasa's rules answer without our actions get their handler from the response or action that ran
(:data:`ACTION_HANDLERS`); turns our actions answer carry the handler the action recorded. When a turn ran
several, the first in :data:`PRECEDENCE` wins (a complaint's apology and its handoff are a ``handoff``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Handler = Literal[
    "chitchat", "skill", "knowledge", "idk", "fallback", "handoff", "out_of_scope", "language", "error"
]
CHITCHAT: Handler = "chitchat"
SKILL: Handler = "skill"
KNOWLEDGE: Handler = "knowledge"
IDK: Handler = "idk"
FALLBACK: Handler = "fallback"
HANDOFF: Handler = "handoff"
OUT_OF_SCOPE: Handler = "out_of_scope"
LANGUAGE: Handler = "language"
ERROR: Handler = "error"

#: Every handler, in precedence order (a turn that ran several gets the first).
PRECEDENCE: tuple[Handler, ...] = (
    ERROR, HANDOFF, FALLBACK, IDK, LANGUAGE, KNOWLEDGE, SKILL, OUT_OF_SCOPE, CHITCHAT,
)  # fmt: skip
HANDLERS: frozenset[str] = frozenset(PRECEDENCE)

#: The handler each response or action of ``nlu/domain.yml`` stands for when it answers a turn (a test checks
#: that every response and custom action of the domain is listed, so a new one cannot go unclassified).
ACTION_HANDLERS: dict[str, Handler] = {
    # canned responses (Rasa rules)
    "utter_greet": CHITCHAT,
    "utter_goodbye": CHITCHAT,
    "utter_you_are_welcome": CHITCHAT,
    "utter_how_can_i_help": CHITCHAT,
    "utter_iamabot": CHITCHAT,
    "utter_chitchat": CHITCHAT,
    "utter_feedback_thanks": CHITCHAT,
    "utter_out_of_scope": OUT_OF_SCOPE,
    "utter_unsupported_language": LANGUAGE,
    "utter_complaint": HANDOFF,
    "utter_cancel_order": HANDOFF,
    "utter_ask_rephrase": FALLBACK,
    "utter_default": FALLBACK,
    # our actions (each also records the handler it chose; this is what the action name alone says)
    "action_answer_knowledge": KNOWLEDGE,
    "action_track_order": SKILL,
    "action_request_refund": SKILL,
    "action_report_problem": SKILL,  # a ticket for a named order (a question: knowledge, recorded)
    "action_change_address": SKILL,
    "action_cancel_order": HANDOFF,  # a request goes to a person (a question: knowledge, recorded)
    "action_complaint": HANDOFF,
    "action_handoff": HANDOFF,
    "action_forward_to_agent": HANDOFF,
    # Rasa's two-stage fallback and the actions that replace its defaults (app/actions/fallback.py)
    "action_two_stage_fallback": FALLBACK,
    "action_default_ask_affirmation": FALLBACK,
    "action_default_ask_rephrase": FALLBACK,
    "action_default_fallback": FALLBACK,
}

#: Rasa's own bookkeeping actions: they answer nothing.
PLUMBING_ACTIONS: frozenset[str] = frozenset(
    {"action_listen", "action_session_start", "action_extract_slots", "action_unlikely_intent",
     "action_restart", "action_back"}
)  # fmt: skip


def handler_of_action(name: str | None) -> Handler | None:
    """The handler an action or response stands for; None for Rasa's plumbing and unknown names."""
    if not name or name in PLUMBING_ACTIONS:
        return None
    return ACTION_HANDLERS.get(name)


def first(handlers: Iterable[str | None]) -> Handler | None:
    """The handler of highest precedence among ``handlers`` (None when there is none)."""
    present = {h for h in handlers if h}
    if unknown := present - HANDLERS:
        raise ValueError(f"not handlers of the vocabulary: {sorted(unknown)}")
    return next((h for h in PRECEDENCE if h in present), None)


def check(handler: str) -> Handler:
    """``handler`` if it is one of the vocabulary, else a ValueError naming the valid ones."""
    if handler not in HANDLERS:
        raise ValueError(f"unknown handler {handler!r}; one of: {', '.join(PRECEDENCE)}")
    return handler  # type: ignore[return-value]
