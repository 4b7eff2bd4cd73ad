"""Which part of the bot handled a turn, derived from the tracker's action events (one place, on purpose:
the derivation is to be replaced by stored turn records).

- **Handler of a turn**: from the actions of its final part, by :data:`HANDLER_ACTIONS`, highest first:
  ``handoff`` (``action_handoff``, ``action_forward_to_agent``, or the slot ``handoff_active`` set true, as
  the knowledge action and the fallback do when they open a handoff ticket), ``fallback`` (the two-stage
  fallback and the core fallback actions), ``knowledge`` (``action_answer_knowledge``), ``skill`` (any
  other action: ``utter_*``, orders, refunds); ``none`` when no action ran.

:func:`event_handlers` gives each event its handler (or None); :func:`turn_handler` picks the turn's from
the handlers of its final part.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

HANDOFF_SLOT = "handoff_active"

# Which handler an action stands for. Everything not listed (utter_*, action_track_order, ...) is a skill.
HANDLER_ACTIONS: dict[str, frozenset[str]] = {
    "handoff": frozenset({"action_handoff", "action_forward_to_agent"}),
    "fallback": frozenset(
        {
            "action_two_stage_fallback",
            "action_default_fallback",
            "action_default_ask_affirmation",
            "action_default_ask_rephrase",
        }
    ),  # fmt: skip
    "knowledge": frozenset({"action_answer_knowledge"}),
}
HANDLERS: tuple[str, ...] = ("handoff", "fallback", "knowledge", "skill")  # precedence, highest first
NO_HANDLER = "none"
# Rasa's own bookkeeping actions: they answer nothing.
PLUMBING_ACTIONS = frozenset(
    {"action_listen", "action_session_start", "action_extract_slots", "action_unlikely_intent"}
)


def handler_of(action_name: str | None) -> str | None:
    """The handler an action stands for (:data:`HANDLER_ACTIONS`); None for Rasa's plumbing actions."""
    if not action_name or action_name in PLUMBING_ACTIONS:
        return None
    for handler, actions in HANDLER_ACTIONS.items():
        if action_name in actions:
            return handler
    return "skill"


def event_handlers(events: pd.DataFrame, data: pd.Series) -> pd.Series:
    """Per tracker event (``type_name``, ``action_name``; ``data`` the parsed event dicts): the handler its
    action stands for, ``handoff`` for the slot ``handoff_active`` set true, else None."""
    handoff_slot = (
        events["type_name"].eq("slot")
        & events["action_name"].eq(HANDOFF_SLOT)
        & data.map(lambda d: d.get("value") is True)
    )
    handlers = events["action_name"].map(handler_of).where(events["type_name"].eq("action"), None)
    return handlers.where(~handoff_slot, "handoff").astype(object)


def turn_handler(handlers: Iterable[str]) -> str:
    """The turn's handler from those of its final part's events: the highest of :data:`HANDLERS`."""
    present = set(handlers)
    return next((h for h in HANDLERS if h in present), NO_HANDLER)
