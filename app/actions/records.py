"""What each action run did, stored for the turn records: ``action_runs`` rows (migration 0005).

Our actions derive from :class:`RecordedAction`: they fill an :class:`ActionRun` while they work (the handler
and rule they chose, the tiers tried, cache, sources, tools, ticket, degradation level, time per stage) and it
is written once when the action ends, whatever happened (an action that raises is recorded as ``error``).
Writing never fails the turn: a store that is down costs the record, not the reply. The turn records
(:mod:`app.analytics.turn_records`) join these rows to Rasa's tracker events by conversation and correlation
id, so what the Analytics page and the bot-level evaluation report is what the action server really did.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from app.actions.context import TurnContext
from app.actions.descriptions import intent_descriptions
from app.data import retention
from app.data.db import get_engine
from app.data.schema import action_runs
from app.observability.pii import mask_pii
from app.orchestration.handlers import SKILL, check, handler_of_action
from app.settings import get_settings
from nlu.context import TOPIC_INTENTS, TOPIC_SLOT

logger = structlog.get_logger(__name__)


@dataclass
class ActionRun:
    """What one action run did; the action fills it in, :class:`RecordedAction` writes it."""

    action: str
    handler: str
    rule: str = ""
    reason: str = ""
    tier_tried: int | None = None
    tier_used: int | None = None
    attempts: list[tuple[int, str]] = field(default_factory=list)
    cache: str = ""  # "", exact or semantic
    sources: list[str] = field(default_factory=list)  # doc ids the reply cites
    question: str = ""  # what retrieval read: the message, or the topic and the message (knowledge turns)
    tools: list[str] = field(default_factory=list)
    ticket_id: int | None = None
    level: str = "full"
    outcome: str = "ok"  # ok | degraded | error (and finer ones: not_found, unavailable, ...)
    stages: dict[str, float] = field(default_factory=dict)  # milliseconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage of the action (repeated stages add up)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.stages[name] = round(self.stages.get(name, 0.0) + elapsed, 2)

    def row(self, ctx: TurnContext) -> dict[str, Any]:
        return {
            "tenant_id": ctx.tenant_id,
            "user_id": ctx.user_id,
            "conversation_id": ctx.conversation_id,
            "correlation_id": ctx.correlation_id[:128],
            "action": self.action,
            "handler": check(self.handler),
            "rule": self.rule[:64],
            "reason": mask_pii(self.reason)[:500],  # masked, in case a reason ever quotes the user
            "tier_tried": self.tier_tried,
            "tier_used": self.tier_used,
            "attempts": [list(a) for a in self.attempts],
            "cache": self.cache,
            "sources": list(dict.fromkeys(self.sources)),
            "question": mask_pii(self.question),
            "tools": list(dict.fromkeys(self.tools)),
            "ticket_id": self.ticket_id,
            "level": self.level,
            "outcome": self.outcome[:32],
            "stages": self.stages,
            "created_at": datetime.now(UTC),
        }


def write(ctx: TurnContext, run: ActionRun) -> None:
    """Store one action run; a failing store is logged, never raised."""
    try:
        with get_engine(get_settings().db_url).begin() as conn:
            conn.execute(sa.insert(action_runs).values(**run.row(ctx)))
    except Exception as exc:  # the reply matters more than its record
        logger.error(
            "action_run.not_recorded", error=f"{type(exc).__name__}: {exc}"[:300], **ctx.log_fields()
        )


class RecordedAction(Action, ABC):
    """An action whose runs are recorded: subclasses implement :meth:`act` instead of ``run`` (abstract, so
    rasa_sdk's executor registers only the subclasses)."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = TurnContext.from_tracker(tracker, get_settings().tenant)
        record = ActionRun(self.name(), handler_of_action(self.name()) or "error")
        started = time.perf_counter()
        try:
            events = await self.act(dispatcher, tracker, domain, ctx, record)
            intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
            # a skill's turn sets the conversation's topic as an answered question does, in the words of its
            # intent's description (the message's order id would make a follow-up an account question): "how
            # long will it take?" after a refund request is read as "Get my money back or check on a refund how
            # long will it take?" by the knowledge action
            described = intent_descriptions(ctx.tenant_id).get(intent, "") if intent in TOPIC_INTENTS else ""
            if record.handler == SKILL and described:
                events = [*events, SlotSet(TOPIC_SLOT, described)]
            return events
        except Exception:
            record.handler, record.outcome = "error", "error"
            raise
        finally:
            record.stages["total"] = round((time.perf_counter() - started) * 1000, 2)
            await asyncio.to_thread(write, ctx, record)

    @abstractmethod
    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
        ctx: TurnContext,
        record: ActionRun,
    ) -> list[dict[str, Any]]:
        """Do the action's work, filling ``record``; return the events."""


# Retention (app/data/retention.py): a forgotten user's runs go; runs older than ``conversation_days`` too.
retention.register(retention.TurnLevelRows(action_runs, "created_at"))
