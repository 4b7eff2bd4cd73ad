"""Who and what a turn is about: tenant, user, conversation and correlation ids from the tracker."""

from __future__ import annotations

from dataclasses import dataclass

from rasa_sdk import Tracker

from app.identity import parse_conversation_id
from app.tools import ToolContext
from nlu.context import clarified_text


@dataclass(frozen=True)
class TurnContext:
    tenant_id: str
    user_id: str
    conversation_id: str
    correlation_id: str
    text: str

    @classmethod
    def from_tracker(cls, tracker: Tracker, default_tenant: str) -> TurnContext:
        """Read ids from the message metadata our REST channel adds (``tenant_id``, ``user_id``,
        ``correlation_id``); fall back to the ``<tenant>:<user>`` conversation id (:mod:`app.identity`)."""
        message = tracker.latest_message or {}
        metadata = message.get("metadata") or {}
        conversation_id = tracker.sender_id
        tenant, user = parse_conversation_id(conversation_id, default_tenant)
        return cls(
            tenant_id=metadata.get("tenant_id") or tenant,
            user_id=metadata.get("user_id") or user,
            conversation_id=conversation_id,
            correlation_id=metadata.get("correlation_id") or message.get("message_id") or "",
            # a clicked suggestion ("/ask_billing") stands for the words it clarified
            text=clarified_text(tracker.events or [], message.get("text") or ""),
        )

    def tool_context(self) -> ToolContext:
        """Who the tools act for in this turn (never taken from a tool's arguments)."""
        return ToolContext(self.tenant_id, self.user_id, self.conversation_id, self.correlation_id)

    def log_fields(self) -> dict[str, str]:
        return self.tool_context().log_fields()


def transcript(tracker: Tracker, limit: int = 50) -> str:
    """The last ``limit`` user and bot messages as plain text, oldest first (for a ticket)."""
    lines = []
    for event in tracker.events:
        if event.get("event") == "user" and event.get("text"):
            lines.append(f"user: {event['text']}")
        elif event.get("event") == "bot" and event.get("text"):
            lines.append(f"bot: {event['text']}")
    return "\n".join(lines[-limit:])
