"""Demo data for the CRM stand-in: a few customers and orders of tenant ``acme`` (idempotent)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa

from app.data.schema import customers, orders

TENANT = "acme"

CUSTOMERS = [
    {"user_id": "alice", "name": "Alice Martin", "email": "alice@example.com"},
    {"user_id": "bob", "name": "Bob Jansen", "email": "bob@example.com"},
    {"user_id": "carla", "name": "Carla Rossi", "email": "carla@example.com"},
]

ORDERS = [
    ("ORD-10042", "alice", "shipped", "DHL", "JD014600006201", date(2026, 11, 27), "89.90"),
    ("ORD-10043", "alice", "delivered", "DHL", "JD014600006202", date(2026, 11, 18), "24.50"),
    ("ORD-10077", "bob", "processing", None, None, date(2026, 12, 2), "349.00"),
    ("ORD-10078", "bob", "cancelled", None, None, None, "15.99"),
    ("ORD-10105", "carla", "out_for_delivery", "PostNL", "3SNWG0001234", date(2026, 11, 25), "129.00"),
]


def seed_crm(engine: sa.Engine, tenant_id: str = TENANT) -> int:
    """Insert the demo customers and orders that are not there yet; return how many rows were added."""
    added = 0
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for customer in CUSTOMERS:
            key = (customers.c.tenant_id == tenant_id) & (customers.c.user_id == customer["user_id"])
            if conn.execute(sa.select(customers.c.user_id).where(key)).first() is None:
                conn.execute(sa.insert(customers).values(tenant_id=tenant_id, **customer))
                added += 1
        for order_id, user_id, status, carrier, tracking, eta, total in ORDERS:
            key = (orders.c.tenant_id == tenant_id) & (orders.c.order_id == order_id)
            if conn.execute(sa.select(orders.c.order_id).where(key)).first() is None:
                conn.execute(
                    sa.insert(orders).values(
                        tenant_id=tenant_id,
                        order_id=order_id,
                        user_id=user_id,
                        status=status,
                        carrier=carrier,
                        tracking_number=tracking,
                        estimated_delivery=eta,
                        total_eur=Decimal(total),
                        created_at=now,
                    )
                )
                added += 1
    return added
