"""Proactive messages for a user's chat: stored rows the chat page fetches.

Rasa's external-events API returns the bot's reply to the caller, not to the user's chat, so everything
the bot (or an agent) says outside a turn becomes a ``notifications`` row. ``NotificationStore`` writes and
reads them (the CRM service); ``NotificationClient`` is the HTTP side used by the chat and agent pages.

Delivery: a fetch returns the rows after the caller's cursor (``after``, the last id it has shown) and
marks them delivered. A client that lost a reply fetches again with its old cursor and gets them again,
so a message is retried until the client has it; without a cursor only undelivered rows are returned.

Retention (app/data/retention.py) erases and ages notifications through :class:`NotificationRetention`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from app.data import retention
from app.data.schema import notifications
from app.integrations.http import JsonHttpClient


@dataclass(frozen=True)
class Notification:
    id: int
    tenant_id: str
    user_id: str
    conversation_id: str
    text: str
    created_at: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


class NotificationStore:
    """The ``notifications`` table."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(
        self,
        conn: sa.Connection,
        tenant_id: str,
        user_id: str,
        conversation_id: str,
        source_key: str,
        text: str,
    ) -> bool:
        """Insert in the caller's transaction unless ``source_key`` is already there; True if inserted."""
        exists = conn.execute(
            sa.select(notifications.c.id).where(
                notifications.c.tenant_id == tenant_id, notifications.c.source_key == source_key
            )
        ).first()
        if exists:
            return False
        conn.execute(
            sa.insert(notifications).values(
                tenant_id=tenant_id,
                user_id=user_id,
                conversation_id=conversation_id,
                source_key=source_key,
                text=text,
                created_at=datetime.now(UTC),
            )
        )
        return True

    def notify(self, tenant_id: str, user_id: str, conversation_id: str, source_key: str, text: str) -> bool:
        """Insert in a transaction of its own; idempotent by ``source_key``."""
        with self.engine.begin() as conn:
            return self.add(conn, tenant_id, user_id, conversation_id, source_key, text)

    def fetch(self, tenant_id: str, user_id: str, after: int | None = None, limit: int = 100) -> list[dict]:
        """Rows after ``after`` (or the undelivered ones), oldest first; marks them delivered."""
        query = sa.select(notifications).where(
            notifications.c.tenant_id == tenant_id, notifications.c.user_id == user_id
        )
        if after is None:
            query = query.where(notifications.c.delivered_at.is_(None))
        else:
            query = query.where(notifications.c.id > after)
        query = query.order_by(notifications.c.id).limit(limit)
        with self.engine.begin() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
            ids = [row["id"] for row in rows if row["delivered_at"] is None]
            if ids:
                conn.execute(
                    sa.update(notifications)
                    .where(notifications.c.id.in_(ids))
                    .values(delivered_at=datetime.now(UTC))
                )
        return rows


class NotificationRetention:
    """Notifications under retention: a forgotten user's go; purge ages out delivered ones by delivery and
    never-fetched ones by creation (two limits, one count)."""

    table = "notifications"

    def forget_user(
        self, conn: sa.Connection, request: retention.ForgetRequest, report: retention.Report
    ) -> None:
        retention.forget_rows(conn, notifications, request, report)

    def purge(self, conn: sa.Connection, request: retention.PurgeRequest, report: retention.Report) -> None:
        policy, count = request.policy, 0
        if policy.notification_days:
            delivered = sa.and_(
                notifications.c.delivered_at.is_not(None),
                notifications.c.delivered_at < request.before(policy.notification_days),
            )
            count += retention.count_or_delete(conn, notifications, delivered, report.dry_run)
        if policy.undelivered_notification_days:
            never_fetched = sa.and_(
                notifications.c.delivered_at.is_(None),
                notifications.c.created_at < request.before(policy.undelivered_notification_days),
            )
            count += retention.count_or_delete(conn, notifications, never_fetched, report.dry_run)
        if policy.notification_days or policy.undelivered_notification_days:
            report.counts["notifications"] = count


retention.register(NotificationRetention())


class NotificationClient:
    """The CRM service's notification and agent endpoints over HTTP (chat page, agent page, tests)."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 5.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.http = JsonHttpClient(
            base_url, breaker_name="notifications", timeout_s=timeout_s, attempts=2, transport=transport
        )

    def fetch(self, tenant_id: str, user_id: str, after: int | None = None) -> list[Notification]:
        params = {} if after is None else {"after": after}
        body = self.http.json("GET", f"/notifications/{tenant_id}/{user_id}", params=params)
        return [Notification.from_json(item) for item in body["notifications"]]

    def open_handoffs(self, tenant_id: str) -> list[dict]:
        return self.http.json("GET", f"/handoffs/{tenant_id}")["handoffs"]

    def agent_reply(self, tenant_id: str, ticket_id: int, text: str, agent: str = "agent") -> dict:
        return self.http.json(
            "POST",
            f"/handoffs/{tenant_id}/{ticket_id}/messages",
            json={"text": text, "agent": agent},
            ok=(201,),
        )

    def hand_back(self, tenant_id: str, ticket_id: int) -> dict:
        return self.http.json("POST", f"/handoffs/{tenant_id}/{ticket_id}/release")

    def set_ticket_status(self, tenant_id: str, ticket_id: int, status: str) -> dict:
        return self.http.json("POST", f"/tickets/{tenant_id}/{ticket_id}/status", json={"status": status})
