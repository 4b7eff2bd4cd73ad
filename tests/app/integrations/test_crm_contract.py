"""The CRM service answers as its OpenAPI description says, hostile input included: a 4xx with a JSON
message, never a 500 (the schema fuzzing of issue 12 found 500s on the requests below)."""

from __future__ import annotations

import json

import httpx
import pytest

from app.data.db import get_engine
from app.integrations.ticketing import TicketingClient
from tests.openapi_contract import Contract

BEYOND_64_BITS = 2**64
BEYOND_STORE = 2**31  # the stores' ids are 32-bit on PostgreSQL
EVENT = {
    "event": "ticket.status_changed",
    "event_id": "evt-1",
    "tenant_id": "acme",
    "ticket_id": 1,
    "user_id": "alice",
    "status": "resolved",
}


def raw_json(text: str) -> dict:
    """A body sent byte for byte (JSON that ``json.dumps`` would never write: lone surrogates, 1e400)."""
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


HOSTILE = [
    ("GET", f"/jobs/acme/{BEYOND_64_BITS}", {}),
    ("GET", f"/jobs/acme/-{BEYOND_64_BITS}", {}),
    ("GET", f"/jobs/acme/{BEYOND_STORE}", {}),
    ("GET", f"/notifications/acme/alice?after={BEYOND_64_BITS}", {}),
    ("GET", "/notifications/acme/alice?after=-1", {}),
    ("GET", "/notifications/Not%20A%20Tenant/alice", {}),
    ("GET", "/orders/acme/ORD-10042?user=%00", {}),
    ("GET", "/orders/acme/%ED%A0%80", {}),
    ("POST", f"/tickets/acme/{BEYOND_64_BITS}/status", {"json": {"status": "closed"}}),
    ("POST", f"/handoffs/acme/{BEYOND_64_BITS}/messages", {"json": {"text": "hi"}}),
    ("POST", f"/handoffs/acme/{BEYOND_64_BITS}/release", {}),
    ("POST", "/handoffs/acme/1/messages", {"json": {"text": "nul \x00 in it"}}),
    ("POST", "/handoffs/acme/1/messages", raw_json('{"text": "\\ud800"}')),
    ("POST", "/handoffs/acme/1/messages", raw_json('{"text": "hi", "agent": "\\udfff"}')),
    ("POST", "/handoffs/acme/1/messages", raw_json("[]")),
    (
        "POST",
        "/handoffs/acme/1/messages",
        {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
    ),
    ("POST", "/webhooks/tickets", raw_json(json.dumps(EVENT)[:-1] + ', "event_id": "\\ud800"}')),
    (
        "POST",
        "/webhooks/tickets",
        raw_json(json.dumps({**EVENT, "ticket_id": 0})[:-1] + ', "ticket_id": 1e400}'),
    ),
    ("POST", "/webhooks/tickets", {"json": {**EVENT, "ticket_id": BEYOND_64_BITS}}),
    ("POST", "/webhooks/tickets", {"json": {**EVENT, "conversation_id": "a\x00b"}}),
    # found by benchmarks/fuzz.py: a JSON boolean was taken as ticket 1 (the description says integer)
    ("POST", "/webhooks/tickets", {"json": {**EVENT, "ticket_id": True}}),
    ("POST", "/webhooks/tickets", {"json": {**EVENT, "ticket_id": "1"}}),
    ("POST", "/webhooks/tickets", {"json": {**EVENT, "tenant_id": "ACME corp"}}),
    ("POST", "/webhooks/tickets", raw_json('{"event": ' + "[" * 5000 + "]" * 5000 + "}")),
    ("POST", "/refunds", raw_json('{"tenant_id": "\\ud800", "user_id": "alice", "order_id": "ORD-10042"}')),
    ("POST", "/refunds", {"json": {"tenant_id": "acme", "user_id": "a" * 129, "order_id": "ORD-10042"}}),
]


@pytest.fixture
def contract(service) -> Contract:
    return Contract(httpx.get(f"{service.crm_url}/openapi.json", timeout=5).json())


def send(service, method: str, path: str, kwargs: dict) -> httpx.Response:
    return httpx.request(method, f"{service.crm_url}{path}", timeout=5, **kwargs)


def test_the_description_is_valid_and_declares_every_error(contract):
    assert contract.schema_errors() == []
    for path, item in contract.description["paths"].items():
        for method, operation in item.items():
            declared = set(operation["responses"])
            if "{" in path or "requestBody" in operation or "parameters" in operation:
                assert "422" in declared, f"{method} {path}"
            if "requestBody" in operation:
                assert "400" in declared, f"{method} {path}: a body that is not JSON gets a 400"
    # The 422 body is the one the service sends (no echo of the input), with its error model
    assert contract.resolve("#/components/schemas/Problem")["required"] == ["detail"]


@pytest.mark.parametrize(("method", "path", "kwargs"), HOSTILE, ids=[f"{m} {p[:48]}" for m, p, _ in HOSTILE])
def test_hostile_requests_get_a_declared_4xx_with_a_json_message(service, contract, method, path, kwargs):
    reply = send(service, method, path, kwargs)
    assert 400 <= reply.status_code < 500, reply.text[:300]
    contract.check(reply)
    detail = reply.json()["detail"]
    assert detail and "Traceback" not in reply.text
    assert "\\ud800" not in reply.text and "1e400" not in reply.text  # the input is not echoed


def test_every_operation_answers_as_described(service, contract):
    """The ordinary answers too: a walk through every endpoint, each reply checked against the description."""
    engine = get_engine(service.db_url)
    ticket = TicketingClient(engine).open_ticket(
        "acme", "alice", "acme:alice", "help", "user: help", handoff=True
    )
    refund = {"tenant_id": "acme", "user_id": "alice", "order_id": "ORD-10043"}
    replies = [
        send(service, "GET", "/health", {}),
        send(service, "GET", "/orders/acme/ORD-10042", {}),
        send(service, "GET", "/orders/acme/ORD-10042?user=bob", {}),  # someone else's: 404
        send(service, "GET", "/orders/acme/nope", {}),
        send(service, "POST", "/refunds", {"json": refund}),
        send(service, "POST", "/refunds", {"json": refund}),  # again: 409
        send(service, "GET", "/jobs/acme/1", {}),
        send(service, "GET", f"/jobs/acme/{BEYOND_STORE - 1}", {}),  # the largest id: 404, not a store error
        send(service, "POST", "/webhooks/tickets", {"json": EVENT}),
        send(service, "POST", "/webhooks/tickets", {"json": EVENT}),  # a duplicate
        send(service, "GET", "/notifications/acme/alice", {}),
        send(service, "GET", f"/notifications/acme/alice?after={BEYOND_STORE - 1}", {}),
        send(service, "POST", f"/tickets/acme/{ticket.id}/status", {"json": {"status": "pending"}}),
        send(service, "POST", "/tickets/acme/9999/status", {"json": {"status": "closed"}}),
        send(service, "GET", "/handoffs/acme", {}),
        send(service, "POST", f"/handoffs/acme/{ticket.id}/messages", {"json": {"text": "hello"}}),
        send(service, "POST", f"/handoffs/acme/{ticket.id}/release", {}),
        send(service, "POST", f"/handoffs/acme/{ticket.id}/release", {}),  # not handed off any more: 409
    ]
    assert [r.status_code for r in replies] == [
        200, 200, 404, 400, 202, 409, 200, 404, 200, 200, 200, 200, 200, 404, 200, 201, 200, 409
    ]  # fmt: skip
    for reply in replies:
        contract.check(reply)
    assert replies[9].json() == {"accepted": True, "duplicate": True}
