"""CRM client: customers and orders, looked up by tenant.

Backed by the CRM tables of our store (``crm_*``), the local stand-in for a real CRM/backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from app.data.schema import orders

ORDER_ID_PATTERN = re.compile(r"^ORD-\d{5}$")


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


def normalise_order_id(raw: str) -> str | None:
    """``ord 10042``, ``ORD10042`` or ``ord-10042`` -> ``ORD-10042``; None if it is no order id."""
    digits = re.sub(r"[^0-9]", "", raw or "")
    candidate = f"ORD-{digits}"
    return candidate if ORDER_ID_PATTERN.match(candidate) else None


class CrmClient:
    """Order and customer look-ups for one tenant at a time."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get_order(self, tenant_id: str, order_id: str) -> Order | None:
        query = sa.select(orders).where(orders.c.tenant_id == tenant_id, orders.c.order_id == order_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return Order(**{field: row[field] for field in Order.__dataclass_fields__})
