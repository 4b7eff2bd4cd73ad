"""The built-in tools against the real CRM service and ticket store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache

import pytest

from app.data.db import get_engine, upgrade
from app.data.seed import seed_crm
from app.integrations.crm import CrmClient
from app.integrations.ticketing import TicketingClient
from app.reliability.breakers import reset_breakers
from app.tools import ToolContext, ToolError
from app.tools.builtin import build_registry
from tests.app.integrations.service import free_port, running_service, service_settings

ALICE = ToolContext("acme", "alice", "acme:alice")


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    for name in ("crm", "ticketing"):
        reset_breakers(name)
    yield
    for name in ("crm", "ticketing"):
        reset_breakers(name)


@pytest.fixture
def store_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(url)
    seed_crm(get_engine(url))
    return url


def registry_for(crm_url: str, store_url: str):
    crm = lru_cache(maxsize=1)(lambda: CrmClient(crm_url, timeout_s=1.0, breaker_name=None))
    tickets = lru_cache(maxsize=1)(lambda: TicketingClient(get_engine(store_url)))
    return build_registry(crm, tickets, crm_timeout_s=2.0)


@pytest.fixture
def tools(store_url):
    with running_service(service_settings(store_url)) as settings:
        yield registry_for(settings.crm_url, store_url)


def test_order_status_finds_the_tenants_order_and_accepts_loose_ids(tools):
    result = tools.call("order_status", {"order_id": "ord 10042"}, ALICE)
    assert (
        result.data["found"] and result.data["order_id"] == "ORD-10042" and result.data["status"] == "shipped"
    )
    assert "user_id" not in result.data and result.personal
    other_tenant = tools.call("order_status", {"order_id": "ORD-10042"}, ToolContext("globex", "alice"))
    assert other_tenant.data == {"found": False, "order_id": "ORD-10042"}
    with pytest.raises(ToolError, match="invalid_arguments"):
        tools.call("order_status", {"order_id": "banana"}, ALICE)


def test_refund_is_queued_once_and_a_second_request_is_rejected_not_a_failure(tools):
    first = tools.call("request_refund", {"order_id": "ORD-10042"}, ALICE)
    assert first.data["found"] and first.data["status"] == "pending" and first.data["job_id"] > 0
    with pytest.raises(ToolError) as again:
        tools.call("request_refund", {"order_id": "ORD-10042"}, ALICE)
    assert again.value.reason == "rejected" and again.value.status == 409
    bob = tools.call("request_refund", {"order_id": "ORD-10042"}, ToolContext("acme", "bob", "acme:bob"))
    assert bob.data == {"found": False, "order_id": "ORD-10042"}  # alice's order, not bob's


def test_crm_down_is_unavailable_then_the_crm_breaker_opens(store_url):
    tools = registry_for(f"http://127.0.0.1:{free_port()}", store_url)
    for _ in range(5):  # the crm breaker's fail_max
        with pytest.raises(ToolError) as error:
            tools.call("order_status", {"order_id": "ORD-10042"}, ALICE)
        assert error.value.reason == "unavailable"
    with pytest.raises(ToolError, match="breaker_open"):
        tools.call("order_status", {"order_id": "ORD-10042"}, ALICE)


def test_tickets_are_opened_and_listed_per_user(tools):
    opened = tools.call(
        "open_ticket", {"subject": "Help", "transcript": "user: help", "handoff": True}, ALICE
    )
    assert opened.data["status"] == "open"
    tools.call("open_ticket", {"subject": "Bob's", "transcript": ""}, ToolContext("acme", "bob", "acme:bob"))
    mine = tools.call("my_tickets", {}, ALICE).data["tickets"]
    assert [(t["ticket_id"], t["subject"]) for t in mine] == [(opened.data["ticket_id"], "Help")]


def test_only_read_only_tools_are_offered_to_models(tools):
    assert [d["function"]["name"] for d in tools.openai_tools()] == [
        "my_orders",
        "my_tickets",
        "order_status",
    ]
    text, _ = tools.call_json("request_refund", '{"order_id": "ORD-10042"}', ALICE)
    assert json.loads(text)["error"] == "unknown_tool"


def test_my_orders_lists_the_turns_users_orders_only(tools):
    mine = tools.call("my_orders", {"limit": 1}, ALICE)
    assert [o["order_id"] for o in mine.data["orders"]] == ["ORD-10043"] and mine.personal
    assert "user_id" not in mine.data["orders"][0]
    assert tools.call("my_orders", {}, ToolContext("acme", "bob", "acme:bob")).data["orders"][0][
        "order_id"
    ] in {
        "ORD-10077",
        "ORD-10078",
    }
    with pytest.raises(ToolError, match="invalid_arguments"):  # identity never comes from the arguments
        tools.call("my_orders", {"user_id": "bob"}, ALICE)
