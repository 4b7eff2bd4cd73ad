from __future__ import annotations

import pytest

from app.data.db import get_engine, upgrade
from app.data.seed import seed_crm
from app.integrations.crm import CrmClient, normalise_order_id


@pytest.fixture
def crm(tmp_path) -> CrmClient:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    seed_crm(get_engine(url))
    return CrmClient(get_engine(url))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ORD-10042", "ORD-10042"), ("ord 10042", "ORD-10042"), ("ORD10042", "ORD-10042"),
     ("1004", None), ("ORD-100420", None), ("", None)],
)
def test_normalise_order_id(raw, expected):
    assert normalise_order_id(raw) == expected


def test_get_order_for_its_tenant_only(crm):
    order = crm.get_order("acme", "ORD-10042")
    assert order is not None and order.status == "shipped" and order.user_id == "alice"
    assert crm.get_order("globex", "ORD-10042") is None
    assert crm.get_order("acme", "ORD-99999") is None
