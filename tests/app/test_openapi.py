"""The OpenAPI descriptions written by hand (the Sanic services publish none) are valid and say what the code
checks: the REST channel's ids are the patterns of ``app.identity``, and the action server refuses
exactly the calls its description does not allow."""

from __future__ import annotations

import json

import pytest
import yaml

from app.actions.server import action_call_problem
from app.identity import ID_PATTERN, TENANT_PATTERN
from tests.app.actions.test_server import CALL
from tests.conftest import ROOT
from tests.openapi_contract import Contract

CHANNEL = ROOT / "app" / "channels" / "openapi.yaml"
ACTIONS = ROOT / "app" / "actions" / "openapi.yaml"


@pytest.mark.parametrize("path", [CHANNEL, ACTIONS], ids=["rest-channel", "action-server"])
def test_written_descriptions_are_valid(path):
    assert Contract(yaml.safe_load(path.read_text())).schema_errors() == []


def test_the_channel_description_uses_the_channels_own_patterns():
    description = yaml.safe_load(CHANNEL.read_text())
    turn = description["components"]["schemas"]["Turn"]
    assert turn["properties"]["sender"]["pattern"] == ID_PATTERN.pattern
    operation = description["paths"]["/webhooks/rest/webhook"]["post"]
    (tenant,) = [p for p in operation["parameters"] if p["name"] == "X-Tenant-Id"]
    assert tenant["schema"]["pattern"] == TENANT_PATTERN.pattern
    assert {"200", "400", "413", "500", "503", "504"} == set(operation["responses"])


def test_the_action_servers_metadata_patterns_are_the_channels():
    schemas = yaml.safe_load(ACTIONS.read_text())["components"]["schemas"]
    metadata = schemas["UserMessage"]["properties"]["metadata"]["properties"]
    assert metadata["tenant_id"]["pattern"] == TENANT_PATTERN.pattern
    assert metadata["user_id"]["pattern"] == ID_PATTERN.pattern


def test_an_action_call_as_rasa_sends_it_passes_and_odd_ones_are_refused_with_where():
    assert action_call_problem(json.dumps(CALL).encode(), None) is None
    tracker = CALL["tracker"]
    assert action_call_problem(b"{nope", None) == "the body is not JSON"
    assert action_call_problem(b"\x78\x9c", "deflate") == "the body is not JSON"  # a broken deflate stream
    odd = {**CALL, "tracker": {**tracker, "slots": {"failed_turns": "two"}}}
    assert action_call_problem(json.dumps(odd).encode(), None).startswith("tracker/slots/failed_turns: ")
    assert action_call_problem(json.dumps({**CALL, "tracker": []}).encode(), None).startswith("tracker: ")


def test_the_turn_recorder_publishes_a_valid_description_with_its_503():
    from fastapi.testclient import TestClient

    from app.analytics.recorder import create_app

    class NoRecorder:
        watermark = 0

        def sync(self) -> int:
            raise ConnectionError("the tracker store is down")

    with TestClient(create_app(NoRecorder(), interval_s=None)) as client:
        contract = Contract(client.get("/openapi.json").json())
        assert contract.schema_errors() == []
        assert "503" in contract.description["paths"]["/sync"]["post"]["responses"]
        reply = client.post("/sync")
        assert reply.status_code == 503
        contract.check(reply)
