"""What the Rasa server does when a dependency fails: the action server (down, hung, failing) or the tracker store.

Rasa 3.6 runs a custom action with ``RemoteAction.run`` (``rasa/core/actions/action.py``): a POST to the action
server with a five-minute timeout, which raises on a refused connection, a 5xx or an invalid reply.
``MessageProcessor._run_action`` (``rasa/core/processor.py``) catches that, logs "Bot will continue, but the
actions events are lost" and carries on without them: the turn ends with no reply (``200 []``: silence).
``action_session_start`` is one of ours (it keeps a live handoff across sessions), so a new conversation loses
its session start the same way (issue 12 saw even "hi" in a new conversation go unanswered).

:func:`install` (called when Rasa builds our REST channel, ``app/channels/rest.py``) wraps
``RemoteAction.run`` so that a failed call becomes the action's own answer at the ``static`` degradation
level, stored in the tracker like any bot message (with ``metadata.degraded``):

- the call is bounded: ``SWITCHBOARD_ACTION_TIMEOUT_S`` (default 20 s, below the gateway's 30 s upstream
  timeout, so a hung action server still ends in this reply rather than the gateway's 504); a server that is
  down refuses the connection at once, so those replies come in milliseconds;
- ``action_session_start`` falls back to Rasa's default session start with the ``tenant`` slot set from the
  turn (the channel's metadata, else the ``<tenant>:<user>`` conversation id, as ours does), so rules
  (greeting, out of scope, chitchat...) keep answering as usual, in the tenant's words; a live handoff is not
  restored (the ticket store is behind the action server);
- every other action says plainly what it cannot do now (:data:`app.channels.replies.REPLIES`: "try again
  in a few minutes"), instead of nothing, and the turn ends there (a ``FollowupAction`` to listen).

A rejection (HTTP 400 naming the action, ``ActionExecutionRejection``) is Rasa's normal control flow and is
passed on untouched.

The tracker store: Rasa wraps it in ``FailSafeTrackerStore`` (``rasa/core/tracker_store.py``), which on an
error *retrieves nothing* (the turn runs on an empty history, as a new conversation) and *saves into memory*
(the turn is answered with HTTP 200 and never stored): during a PostgreSQL restart, users got answers out of
context and their turns were lost. :func:`install` makes those errors refuse the turn instead
(:class:`StoreUnavailable`; the channel answers 503 with a clear message and ``Retry-After``): the client
knows to send it again, and every turn answered with 200 is in the store. A turn whose save fails after its
actions ran is refused too, so a retry runs its actions again (a ticket opened twice, at worst).

Standard library and Rasa only: this runs in the Rasa environment (Python 3.10).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from rasa.core.actions.action import ActionExecutionRejection, ActionSessionStart, RemoteAction
from rasa.core.tracker_store import FailSafeTrackerStore
from rasa.shared.core.constants import (
    ACTION_LISTEN_NAME,
    ACTION_SESSION_START_NAME,
    SESSION_START_METADATA_SLOT,
)
from rasa.shared.core.events import BotUttered, Event, FollowupAction, SlotSet

from app.channels import settings
from app.channels.replies import DEFAULT_REPLY, LEVEL, REPLIES
from app.identity import parse_conversation_id

logger = structlog.get_logger(__name__)

_MARK = "_switchboard_degrades"
TENANT_SLOT = "tenant"  # the slot ours sets (app/actions/session.py): the responses have tenant variations


async def degraded_events(
    action_name: str, output_channel: Any, nlg: Any, tracker: Any, domain: Any
) -> list[Event]:
    """The events of ``action_name`` when it cannot run: Rasa's own session start, or one static reply."""
    if action_name == ACTION_SESSION_START_NAME:
        events = await ActionSessionStart().run(output_channel, nlg, tracker, domain)
        if TENANT_SLOT in {slot.name for slot in domain.slots}:  # before the closing action_listen
            events.insert(len(events) - 1, SlotSet(TENANT_SLOT, tenant_of(tracker)))
        return events
    text = REPLIES.get(action_name, DEFAULT_REPLY)
    # then listen: the rules expected the action's own events (a slot it sets, say), and without them the
    # policies would go on predicting actions (a fallback loop) instead of ending the turn
    return [
        BotUttered(text, metadata={"degraded": "action_server_unavailable", "level": LEVEL}),
        FollowupAction(ACTION_LISTEN_NAME),
    ]


def tenant_of(tracker: Any) -> str:
    """The turn's tenant: what the channel put in the message metadata (Rasa hands it to the session start
    in ``session_started_metadata``), else the conversation id's."""
    metadata = tracker.get_slot(SESSION_START_METADATA_SLOT) or {}
    tenant = metadata.get("tenant_id") if isinstance(metadata, dict) else None
    return str(tenant or parse_conversation_id(tracker.sender_id, settings.default_tenant())[0])


def degrading(run: Callable[..., Awaitable[list[Event]]]) -> Callable[..., Awaitable[list[Event]]]:
    """``RemoteAction.run`` with a bounded call and a degraded answer instead of an exception."""

    @functools.wraps(run)
    async def run_or_degrade(
        self: RemoteAction, output_channel: Any, nlg: Any, tracker: Any, domain: Any
    ) -> list[Event]:
        timeout = settings.action_timeout_s()
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(run(self, output_channel, nlg, tracker, domain), timeout)
        except ActionExecutionRejection:
            raise
        except Exception as exc:  # refused, timed out, 5xx, an invalid reply: answer instead of silence
            metadata = (getattr(tracker, "latest_message", None) and tracker.latest_message.metadata) or {}
            logger.error(
                "action.degraded",
                action=self.name(),
                error=f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__,
                after_s=round(time.perf_counter() - started, 3),
                timeout_s=timeout,
                level=LEVEL,
                correlation_id=metadata.get("correlation_id"),
                conversation_id=getattr(tracker, "sender_id", None),
            )
            return await degraded_events(self.name(), output_channel, nlg, tracker, domain)

    setattr(run_or_degrade, _MARK, True)
    return run_or_degrade


class StoreUnavailable(RuntimeError):
    """The tracker store failed: the turn is refused rather than answered out of context and dropped."""


def refuse_turn(store: FailSafeTrackerStore, error: Exception) -> None:
    """``FailSafeTrackerStore``'s error hook, raising instead of falling back to memory (module docstring)."""
    logger.error("tracker_store.unavailable", error=str(error)[:300])
    raise StoreUnavailable(f"{type(error).__name__}: {error}"[:300]) from error


def install() -> None:
    """Make every custom action call of this Rasa process degrade instead of failing, and every tracker
    store failure refuse the turn instead of losing it (idempotent)."""
    if not getattr(RemoteAction.run, _MARK, False):
        RemoteAction.run = degrading(RemoteAction.run)  # type: ignore[method-assign]
    FailSafeTrackerStore.on_tracker_store_error = refuse_turn  # type: ignore[method-assign]
    FailSafeTrackerStore.on_tracker_store_retrieve_error = refuse_turn  # type: ignore[method-assign]
