"""Demo CRM data: each demo tenant gets its own customers and orders, and seeding twice adds nothing."""

from __future__ import annotations

import sqlalchemy as sa

from app.data import db as stores
from app.data.seed import DEMO, seed_crm, seed_demo_tenants
from app.integrations.crm import CrmStore


def order_ids(engine: sa.Engine, tenant_id: str) -> set[str]:
    query = sa.text("SELECT order_id FROM crm_orders WHERE tenant_id = :t")
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(query, {"t": tenant_id})}


def test_globex_gets_its_own_device_orders(sqlite_url):
    stores.upgrade(sqlite_url)
    engine = stores.get_engine(sqlite_url)
    assert seed_crm(engine, "globex") == 8  # 3 customers, 5 orders
    assert order_ids(engine, "globex") == {"ORD-30011", "ORD-30012", "ORD-30021", "ORD-30031", "ORD-30032"}
    assert order_ids(engine, "acme") == set()
    order = CrmStore(engine).get_order("globex", "ORD-30011")
    assert (order.user_id, order.status, order.carrier) == ("gus", "shipped", "PostNL")
    assert CrmStore(engine).get_order("globex", "ORD-10042") is None


def test_a_tenant_without_demo_data_gets_acme_s(sqlite_url):
    stores.upgrade(sqlite_url)
    engine = stores.get_engine(sqlite_url)
    seed_crm(engine, "initech")
    assert order_ids(engine, "initech") == {o.order_id for o in DEMO["acme"].orders}


def test_seed_demo_tenants_seeds_every_demo_tenant_and_the_default_once(sqlite_url):
    stores.upgrade(sqlite_url)
    engine = stores.get_engine(sqlite_url)
    assert seed_demo_tenants(engine, "initech") == 3 * 8
    assert seed_demo_tenants(engine, "initech") == 0
    assert {t: len(order_ids(engine, t)) for t in ("acme", "globex", "initech")} == {
        "acme": 5,
        "globex": 5,
        "initech": 5,
    }


def test_conversation_fixtures_are_seeded_once(tmp_path):
    from app.data.db import get_engine, upgrade
    from app.data.seed import seed_customers
    from app.evaluation.conversations import Customer

    url = f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(url)
    fixture = Customer.model_validate({
        "tenant": "globex", "user": "zoe", "name": "Zoe", "email": "zoe@example.com",
        "orders": [{"id": "ORD-39999", "status": "shipped", "carrier": "PostNL", "total": "19.90"}],
    })  # fmt: skip
    engine = get_engine(url)
    assert seed_customers(engine, [fixture]) == 2 and seed_customers(engine, [fixture]) == 0
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT user_id, status, total_eur FROM crm_orders WHERE tenant_id='globex'")
        ).one()
    assert (row.user_id, row.status, float(row.total_eur)) == ("zoe", "shipped", 19.9)
