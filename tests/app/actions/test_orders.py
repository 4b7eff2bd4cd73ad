from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.actions import services
from app.actions.orders import ActionTrackOrder, find_order_id
from app.reliability.breakers import reset_breakers
from app.settings import get_settings
from tests.app.integrations.service import free_port, running_service, service_settings

pytestmark = pytest.mark.anyio


def point_crm_at(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """The action's CRM client (built from settings) talks to this loopback port."""
    monkeypatch.setenv("SWITCHBOARD_CRM_PORT", str(port))
    monkeypatch.setenv("SWITCHBOARD_CRM_TIMEOUT_S", "1")
    get_settings.cache_clear()
    services.crm.cache_clear()
    services.tools.cache_clear()


@pytest.fixture(autouse=True)
def crm_service(stores, monkeypatch) -> Iterator[None]:
    """The CRM service on the test stores; the action's client points at it."""
    reset_breakers("crm")
    with running_service(service_settings(stores)) as settings:
        point_crm_at(monkeypatch, settings.crm_port)
        yield
    reset_breakers("crm")


async def run(tracker, dispatcher, domain):
    return await ActionTrackOrder().run(dispatcher, tracker, domain)


async def test_known_order_is_described(tracker_from, dispatcher, domain):
    events = await run(tracker_from("order_question"), dispatcher, domain)
    text = dispatcher.messages[0]["text"]
    assert "ORD-10042 has shipped with DHL" in text and "JD014600006201" in text
    assert events == [{"event": "slot", "timestamp": None, "name": "order_id", "value": "ORD-10042"}]


async def test_unknown_order_clears_the_slot(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="status of ORD-99999", entities=[])
    events = await run(tracker, dispatcher, domain)
    assert "couldn't find an order ORD-99999" in dispatcher.messages[0]["text"]
    assert events[0]["value"] is None


async def test_no_order_id_asks_for_it(tracker_from, dispatcher, domain):
    events = await run(
        tracker_from("order_question", text="where is my parcel", entities=[]), dispatcher, domain
    )
    assert "What's your order number?" in dispatcher.messages[0]["text"] and events == []


async def test_orders_of_another_tenant_are_not_found(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", metadata={"tenant_id": "globex", "user_id": "alice"})
    await run(tracker, dispatcher, domain)
    assert "couldn't find" in dispatcher.messages[0]["text"]


async def test_another_customers_order_reveals_nothing(tracker_from, dispatcher, domain):
    """ORD-10042 is alice's: bob asking for it learns nothing about it, not even that it shipped."""
    tracker = tracker_from("order_question", metadata={"tenant_id": "acme", "user_id": "bob"})
    await run(tracker, dispatcher, domain)
    text = dispatcher.messages[0]["text"]
    assert "couldn't find an order ORD-10042" in text
    assert not any(leak in text for leak in ("shipped", "DHL", "JD014600006201"))


@pytest.mark.parametrize(
    ("text", "entities", "expected"),
    [
        ("my order ord 10105 please", [], "ORD-10105"),
        ("order", [{"entity": "order_id", "value": "ORD10077"}], "ORD-10077"),
        ("no id here", [], None),
    ],
)
def test_find_order_id(tracker_from, text, entities, expected):
    assert find_order_id(tracker_from("order_question", text=text, entities=entities)) == expected


async def test_crm_down_is_told_and_keeps_the_order_id(tracker_from, dispatcher, domain, monkeypatch):
    point_crm_at(monkeypatch, free_port())  # nothing listens there
    events = await run(tracker_from("order_question"), dispatcher, domain)
    assert "can't reach our order system" in dispatcher.messages[0]["text"]
    assert events[0]["value"] == "ORD-10042"
