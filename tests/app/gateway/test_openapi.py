"""The gateway publishes an OpenAPI description (``/openapi.json``) and answers as it says: every status the
webhook can answer is declared with the ``{"error", "message"}`` shape, and each one, produced for real, matches.
"""

from __future__ import annotations

import httpx
import pytest

from app.identity import ID_PATTERN
from tests.app.gateway.conftest import UPSTREAM, WEBHOOK, auth, make_config, turn
from tests.openapi_contract import Contract

ERRORS = ("400", "401", "403", "413", "429", "502", "503", "504")


@pytest.fixture
def contract(gateway) -> Contract:
    reply = gateway().get("/openapi.json")
    assert reply.status_code == 200
    return Contract(reply.json())


def test_the_description_declares_the_body_the_token_and_every_error(contract):
    assert contract.schema_errors() == []
    operation = contract.description["paths"][WEBHOOK]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["sender", "message"]
    assert body["properties"]["sender"]["pattern"] == ID_PATTERN.pattern  # the channel's own rule
    assert operation["security"] == [{"bearerAuth": []}]
    scheme = contract.description["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert set(ERRORS) | {"200"} == set(operation["responses"])
    for status in ERRORS:
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        assert contract.resolve(schema["$ref"])["required"] == ["error", "message"]
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    assert set(contract.description["paths"]) == {
        WEBHOOK,
        "/webhooks/{channel}/webhook",
        "/health",
        "/metrics",
    }


def test_every_status_the_webhook_answers_is_declared_with_its_shape(gateway, upstream, contract):
    client = gateway(make_config(plans={"pro": "1/minute"}, max_body_bytes=1024))
    replies = {
        200: turn(client, headers=auth()),
        429: turn(client, headers=auth()),
        400: client.post(WEBHOOK, content=b"{nope", headers=auth()),
        401: turn(client),
        403: turn(client, sender="bob", headers=auth()),
        413: client.post(WEBHOOK, content=b"x" * 2000, headers=auth()),
    }
    upstreams = [UPSTREAM, "http://rasa-2.test"]
    unlimited = gateway(make_config(plans={"pro": "100/minute"}, upstreams=upstreams))
    for status, behaviour in [
        (502, lambda request: httpx.Response(500, json={"error": "internal_error"})),
        (504, httpx.ReadTimeout("no answer")),
        (503, httpx.ConnectError("refused")),
    ]:
        upstream.behaviour = dict.fromkeys(upstreams, behaviour)
        replies[status] = turn(unlimited, headers=auth())
    for status, reply in replies.items():
        assert reply.status_code == status, reply.text
        contract.check(reply)
    health = unlimited.get("/health")
    assert health.status_code == 503
    contract.check(health)
    assert unlimited.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        b'{"sender": "alice", "message": "hi", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"sender": "alice", "message": "\\ud800"}',
        b'{"sender": "alice", "message": "hi", "metadata": {"x": NaN}}',
        b"\xff\xfe",
        b"[]",
        b"null",
    ],
    ids=["nested-too-deep", "lone-surrogate", "nan", "not-utf8", "array", "null"],
)
def test_hostile_bodies_get_a_declared_answer_never_a_500(gateway, contract, content):
    reply = gateway().post(WEBHOOK, content=content, headers=auth())
    assert reply.status_code < 500, reply.text
    contract.check(reply)
