"""The running stack serves its OpenAPI descriptions, and the real REST channel answers hostile bodies as its
description says (a declared 4xx with ``{"error", "message"}``, never a 500)."""

from __future__ import annotations

import httpx
import pytest
import yaml

from tests.conftest import ROOT
from tests.openapi_contract import Contract

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOSTILE_BODIES = {
    "not-json": b"{nope",
    "not-utf8": b"\xff\xfe",
    "array": b"[]",
    "nested-too-deep": b'{"sender": "a", "message": "hi", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "bad-sender": b'{"sender": "a b", "message": "hi"}',
    "blank-message": b'{"sender": "a", "message": "   "}',
    "too-long": b'{"sender": "a", "message": "' + b"x" * 5000 + b'"}',
    "metadata-not-object": b'{"sender": "a", "message": "hi", "metadata": 5}',
}


def test_the_channel_serves_its_written_description_and_answers_as_it_says(bot):
    description = yaml.safe_load((ROOT / "app" / "channels" / "openapi.yaml").read_text())
    served = httpx.get(f"{bot.settings.rasa_url}/webhooks/rest/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == description
    contract = Contract(description)
    for name, body in HOSTILE_BODIES.items():
        reply = httpx.post(
            bot.settings.webhook_url, content=body, headers={"content-type": "application/json"}, timeout=30
        )
        assert 400 <= reply.status_code < 500, (name, reply.text)
        contract.check(reply)
    reply = httpx.post(
        bot.settings.webhook_url, json={"sender": "a", "message": "hi"}, headers={"X-Tenant-Id": "A B"}
    )
    assert reply.status_code == 400
    contract.check(reply)
    hello = httpx.post(
        bot.settings.webhook_url, json={"sender": "openapi-e2e", "message": "hello"}, timeout=60
    )
    assert hello.status_code == 200 and hello.json()
    contract.check(hello)
    contract.check(httpx.get(f"{bot.settings.rasa_url}/webhooks/rest/", timeout=10))


def test_the_crm_service_and_the_action_server_serve_theirs(bot):
    crm = httpx.get(f"{bot.settings.crm_url}/openapi.json", timeout=10).json()
    assert Contract(crm).schema_errors() == [] and "/jobs/{tenant}/{job_id}" in crm["paths"]
    actions = httpx.get(f"http://{bot.settings.host}:{bot.settings.action_port}/openapi.json", timeout=10)
    assert actions.json() == yaml.safe_load((ROOT / "app" / "actions" / "openapi.yaml").read_text())
