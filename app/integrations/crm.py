"""CRM: customers and orders, looked up by tenant; refunds requested from it.

- :class:`CrmStore` reads the CRM tables of our store (``crm_*``); only the CRM service uses it.
- :class:`CrmClient` is what the bot uses: the CRM service over HTTP (``app/integrations/services``), with
  a timeout, retries on connection errors and 5xx, and a circuit breaker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa

from app.data.schema import orders
from app.integrations.http import JsonHttpClient, ServiceRejected, ServiceUnavailable
from app.order_ids import ORDER_ID_PATTERN, normalise_order_id

__all__ = [
    "ORDER_ID_PATTERN", "CrmClient", "CrmStore", "CrmUnavailable", "Order", "RefundAck", "normalise_order_id",
]  # fmt: skip

CrmUnavailable = ServiceUnavailable  # the name the actions catch


@dataclass(frozen=True)
class Order:
    tenant_id: str
    order_id: str
    user_id: str
    status: str
    carrier: str | None
    tracking_number: str | None
    estimated_delivery: date | None
    total_eur: Decimal

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["estimated_delivery"] = self.estimated_delivery.isoformat() if self.estimated_delivery else None
        data["total_eur"] = str(self.total_eur)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Order:
        eta = data.get("estimated_delivery")
        return cls(
            tenant_id=data["tenant_id"],
            order_id=data["order_id"],
            user_id=data["user_id"],
            status=data["status"],
            carrier=data.get("carrier"),
            tracking_number=data.get("tracking_number"),
            estimated_delivery=date.fromisoformat(eta) if eta else None,
            total_eur=Decimal(data["total_eur"]),
        )


@dataclass(frozen=True)
class RefundAck:
    """The CRM accepted a refund request; the outcome comes later as a notification."""

    job_id: int
    order_id: str
    status: str


class CrmStore:
    """Order look-ups in the CRM tables of our store, one tenant at a time."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get_order(self, tenant_id: str, order_id: str) -> Order | None:
        query = sa.select(orders).where(orders.c.tenant_id == tenant_id, orders.c.order_id == order_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return Order(**{field: row[field] for field in Order.__dataclass_fields__})

    def list_orders(self, tenant_id: str, user_id: str, limit: int = 10) -> list[Order]:
        """The user's orders in the tenant, most recent first (placed last; the higher id on a tie)."""
        query = (
            sa.select(orders)
            .where(orders.c.tenant_id == tenant_id, orders.c.user_id == user_id)
            .order_by(orders.c.created_at.desc(), orders.c.order_id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [Order(**{field: row[field] for field in Order.__dataclass_fields__}) for row in rows]


class CrmClient:
    """The CRM service over HTTP: order status (synchronous) and refund requests (acknowledged at once)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        breaker_name: str | None = "crm",
    ) -> None:
        """``breaker_name=None`` when the caller puts the calls behind a breaker (the tool registry)."""
        self.http = JsonHttpClient(
            base_url, breaker_name=breaker_name, timeout_s=timeout_s, transport=transport
        )

    def get_order(self, tenant_id: str, order_id: str, user_id: str | None = None) -> Order | None:
        """The order, or None if the tenant (with ``user_id``: that user) has no such order. Raises
        ``CrmUnavailable``."""
        params = {"user": user_id} if user_id is not None else None
        response = self.http.request("GET", f"/orders/{tenant_id}/{order_id}", params=params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceRejected(response.status_code, response.text[:300])
        return Order.from_json(response.json())

    def list_orders(self, tenant_id: str, user_id: str, limit: int = 10) -> list[Order]:
        """The user's orders, most recent first (an empty list for a user without orders). Raises
        ``CrmUnavailable``."""
        response = self.http.request(
            "GET", f"/customers/{tenant_id}/{user_id}/orders", params={"limit": limit}
        )
        if response.status_code != 200:
            raise ServiceRejected(response.status_code, response.text[:300])
        return [Order.from_json(item) for item in response.json()["orders"]]

    def request_refund(
        self, tenant_id: str, user_id: str, conversation_id: str, order_id: str
    ) -> RefundAck | None:
        """Queue a refund of the user's order; None if the user has no such order. Raises
        ``CrmUnavailable`` or ``ServiceRejected`` (e.g. 409: the order cannot be refunded)."""
        body = {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "conversation_id": conversation_id,
            "order_id": order_id,
        }
        response = self.http.request("POST", "/refunds", json=body)
        if response.status_code == 404:
            return None
        if response.status_code != 202:
            raise ServiceRejected(response.status_code, response.text[:300])
        data = response.json()
        return RefundAck(job_id=int(data["job_id"]), order_id=data["order_id"], status=data["status"])
