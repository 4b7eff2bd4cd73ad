"""Demo data for the CRM stand-in: a few customers and orders per demo tenant (idempotent).

``acme`` is Northwind Goods, an online shop; ``globex`` is Globex Energy, an energy supplier that also
sells smart devices (its order ids are ORD-3xxxx). A tenant without demo data of its own gets acme's,
so a stack whose default tenant is renamed still has customers to show.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa

from app.data.schema import customers, orders

TENANT = "acme"


class DemoOrder(NamedTuple):
    order_id: str
    user_id: str
    status: str
    carrier: str | None
    tracking: str | None
    eta: date | None
    total: str


class DemoTenant(NamedTuple):
    customers: tuple[dict[str, str], ...]
    orders: tuple[DemoOrder, ...]


DEMO: dict[str, DemoTenant] = {
    "acme": DemoTenant(
        customers=(
            {"user_id": "alice", "name": "Alice Martin", "email": "alice@example.com"},
            {"user_id": "bob", "name": "Bob Jansen", "email": "bob@example.com"},
            {"user_id": "carla", "name": "Carla Rossi", "email": "carla@example.com"},
        ),
        orders=(
            DemoOrder("ORD-10042", "alice", "shipped", "DHL", "JD014600006201", date(2026, 11, 27), "89.90"),
            DemoOrder(
                "ORD-10043", "alice", "delivered", "DHL", "JD014600006202", date(2026, 11, 18), "24.50"
            ),
            DemoOrder("ORD-10077", "bob", "processing", None, None, date(2026, 12, 2), "349.00"),
            DemoOrder("ORD-10078", "bob", "cancelled", None, None, None, "15.99"),
            DemoOrder(
                "ORD-10105",
                "carla",
                "out_for_delivery",
                "PostNL",
                "3SNWG0001234",
                date(2026, 11, 25),
                "129.00",
            ),
        ),
    ),
    "globex": DemoTenant(
        customers=(
            {"user_id": "gus", "name": "Gus Hendriks", "email": "gus@example.nl"},
            {"user_id": "hanna", "name": "Hanna de Boer", "email": "hanna@example.nl"},
            {"user_id": "ivo", "name": "Ivo Peeters", "email": "ivo@example.nl"},
        ),
        orders=(  # smart thermostat €199, smart plug €24.95, energy monitor €49 (knowledge/docs/globex)
            DemoOrder("ORD-30011", "gus", "shipped", "PostNL", "3SGLX0030011", date(2026, 11, 26), "199.00"),
            DemoOrder("ORD-30012", "gus", "delivered", "PostNL", "3SGLX0030012", date(2026, 10, 14), "49.90"),
            DemoOrder("ORD-30021", "hanna", "processing", None, None, date(2026, 12, 3), "49.00"),
            DemoOrder(
                "ORD-30031", "ivo", "out_for_delivery", "PostNL", "3SGLX0030031", date(2026, 11, 24), "74.85"
            ),
            DemoOrder("ORD-30032", "ivo", "cancelled", None, None, None, "199.00"),
        ),
    ),
}


def seed_crm(engine: sa.Engine, tenant_id: str = TENANT) -> int:
    """Insert the tenant's demo customers and orders that are not there yet; return how many rows were added."""
    return insert_missing(engine, tenant_id, DEMO.get(tenant_id, DEMO[TENANT]))


def insert_missing(engine: sa.Engine, tenant_id: str, data: DemoTenant) -> int:
    """Insert the customers and orders of ``data`` that ``tenant_id`` does not have yet (by user and order id);
    return how many rows were added."""
    added = 0
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for customer in data.customers:
            key = (customers.c.tenant_id == tenant_id) & (customers.c.user_id == customer["user_id"])
            if conn.execute(sa.select(customers.c.user_id).where(key)).first() is None:
                conn.execute(sa.insert(customers).values(tenant_id=tenant_id, **customer))
                added += 1
        for order in data.orders:
            key = (orders.c.tenant_id == tenant_id) & (orders.c.order_id == order.order_id)
            if conn.execute(sa.select(orders.c.order_id).where(key)).first() is None:
                conn.execute(
                    sa.insert(orders).values(
                        tenant_id=tenant_id,
                        order_id=order.order_id,
                        user_id=order.user_id,
                        status=order.status,
                        carrier=order.carrier,
                        tracking_number=order.tracking,
                        estimated_delivery=order.eta,
                        total_eur=Decimal(order.total),
                        created_at=now,
                    )
                )
                added += 1
    return added


def seed_customers(engine: sa.Engine, fixtures: Iterable[Any]) -> int:
    """Insert CRM fixtures (objects with ``tenant``, ``user``, ``name``, ``email`` and ``orders`` of ``id``,
    ``status``, ``carrier``, ``tracking``, ``eta``, ``total``: the conversation test set's customers)."""
    added = 0
    for fixture in fixtures:
        data = DemoTenant(
            customers=({"user_id": fixture.user, "name": fixture.name, "email": fixture.email},),
            orders=tuple(
                DemoOrder(o.id, fixture.user, o.status, o.carrier, o.tracking, o.eta, str(o.total))
                for o in fixture.orders
            ),
        )
        added += insert_missing(engine, fixture.tenant, data)
    return added


def seed_demo_tenants(engine: sa.Engine, default_tenant: str = TENANT) -> int:
    """Seed every demo tenant and the stack's default tenant (a stack serves them all); rows added."""
    return sum(seed_crm(engine, tenant) for tenant in dict.fromkeys((default_tenant, *DEMO)))
