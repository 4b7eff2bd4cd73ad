from __future__ import annotations

import httpx
import pytest

from app.data.db import get_engine
from app.integrations.crm import CrmClient, CrmStore, CrmUnavailable, normalise_order_id
from app.integrations.http import ServiceRejected
from tests.app.integrations.service import free_port, get, post


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ORD-10042", "ORD-10042"),
        ("ord 10042", "ORD-10042"),
        ("ORD10042", "ORD-10042"),
        ("1004", None),
        ("ORD-100420", None),
        ("", None),
    ],
)
def test_normalise_order_id(raw, expected):
    assert normalise_order_id(raw) == expected


def test_store_finds_orders_of_their_tenant_only(store_url):
    crm = CrmStore(get_engine(store_url))
    order = crm.get_order("acme", "ORD-10042")
    assert order is not None and order.status == "shipped" and order.user_id == "alice"
    assert crm.get_order("globex", "ORD-10042") is None
    assert crm.get_order("acme", "ORD-99999") is None


def test_client_looks_orders_up_over_http(service):
    crm = CrmClient(service.crm_url)
    order = crm.get_order("acme", "ORD-10042")
    assert order is not None and order.carrier == "DHL" and str(order.total_eur) == "89.90"
    assert order.estimated_delivery is not None and order.estimated_delivery.isoformat() == "2026-11-27"
    assert crm.get_order("globex", "ORD-10042") is None
    assert crm.get_order("acme", "ORD-99999") is None


def test_bad_input_gets_a_clear_4xx(service):
    assert get(service, "/orders/acme/NOT-AN-ID").status_code == 400
    assert "ORD-12345" in get(service, "/orders/acme/NOT-AN-ID").json()["detail"]
    assert post(service, "/refunds", json={"tenant_id": "acme", "user_id": "alice"}).status_code == 422
    assert (
        post(
            service, "/refunds", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert get(service, "/notifications/acme/alice", params={"after": -1}).status_code == 422
    assert get(service, "/jobs/acme/999").status_code == 404


def test_refunds_only_for_the_users_own_orders_and_once(service):
    crm = CrmClient(service.crm_url)
    assert crm.request_refund("acme", "bob", "acme:bob", "ORD-10042") is None  # alice's order
    assert crm.request_refund("acme", "alice", "acme:alice", "ORD-99999") is None
    ack = crm.request_refund("acme", "alice", "acme:alice", "ORD-10042")
    assert ack is not None and ack.order_id == "ORD-10042" and ack.status == "pending"
    with pytest.raises(ServiceRejected) as again:
        crm.request_refund("acme", "alice", "acme:alice", "ORD-10042")
    assert again.value.status == 409


def test_down_service_is_unavailable_then_the_breaker_opens():
    crm = CrmClient(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    for _ in range(5):  # fail_max: each call is 3 connection attempts
        with pytest.raises(CrmUnavailable, match="ConnectError"):
            crm.get_order("acme", "ORD-10042")
    with pytest.raises(CrmUnavailable, match="breaker open"):
        crm.get_order("acme", "ORD-10042")


def test_5xx_is_retried_and_4xx_is_not():
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if "10042" in request.url.path:
            return httpx.Response(503, text="busy")
        return httpx.Response(404, json={"detail": "no such order"})

    crm = CrmClient("http://crm.test", transport=httpx.MockTransport(handler))
    with pytest.raises(CrmUnavailable, match="503"):
        crm.get_order("acme", "ORD-10042")
    assert len(calls) == 3
    assert crm.get_order("acme", "ORD-10043") is None
    assert len(calls) == 4


def test_a_users_orders_are_listed_most_recent_first_and_only_theirs(service):
    crm = CrmClient(service.crm_url)
    alice = crm.list_orders("acme", "alice")
    assert [o.order_id for o in alice] == ["ORD-10043", "ORD-10042"]  # seeded together: the higher id first
    assert {o.user_id for o in alice} == {"alice"}
    assert [o.order_id for o in crm.list_orders("acme", "alice", limit=1)] == ["ORD-10043"]
    assert crm.list_orders("globex", "alice") == [] and crm.list_orders("acme", "nobody") == []


def test_listing_orders_refuses_bad_input_with_a_4xx(service):
    assert get(service, "/customers/acme/alice/orders", params={"limit": 0}).status_code == 422
    assert get(service, "/customers/ACME!/alice/orders").status_code == 422
