"""Our REST channel's validation and its registration with Rasa (runs in the Rasa environment)."""

import json

import pytest

from app.channels.rest import InvalidRequest, SwitchboardRestInput, conversation_id, parse_payload
from app.channels.settings import DEFAULT_MAX_MESSAGE_CHARS

ROOT_CREDENTIALS = "nlu/credentials.yml"
# JSON nested deeper than the parser's recursion limit (a RecursionError, not a ValueError)
NESTED_TOO_DEEP = b'{"sender": "a", "message": "hi", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}"


def parse(body, headers=None, max_chars=100, tenant="acme"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_payload(raw, headers or {}, max_chars, tenant)


def test_valid_request_carries_tenant_user_and_correlation_ids():
    turn = parse(
        {"sender": "alice", "message": "hi", "metadata": {"page": "faq"}},
        {"X-Tenant-Id": "globex", "X-Request-Id": "r-1"},
    )
    assert turn["sender"] == "alice" and turn["text"] == "hi" and turn["tenant"] == "globex"
    assert turn["metadata"] == {
        "page": "faq",
        "tenant_id": "globex",
        "user_id": "alice",
        "correlation_id": "r-1",
    }


def test_defaults_tenant_and_makes_a_correlation_id():
    turn = parse({"sender": "alice", "message": "hi"})
    assert turn["tenant"] == "acme"
    assert len(turn["metadata"]["correlation_id"]) == 32


def test_header_names_are_case_insensitive():
    assert parse({"sender": "a", "message": "m"}, {"x-tenant-id": "t2"})["tenant"] == "t2"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{nope", {}, 400, "malformed_json"),
        (b"", {}, 400, "malformed_json"),
        (b"\xff\xfe", {}, 400, "malformed_json"),
        pytest.param(NESTED_TOO_DEEP, {}, 400, "malformed_json", id="nested-too-deep"),
        ([1, 2], {}, 400, "invalid_body"),
        ({"message": "hi"}, {}, 400, "invalid_sender"),
        ({"sender": "", "message": "hi"}, {}, 400, "invalid_sender"),
        ({"sender": "a b", "message": "hi"}, {}, 400, "invalid_sender"),
        ({"sender": 7, "message": "hi"}, {}, 400, "invalid_sender"),
        ({"sender": "a" * 129, "message": "hi"}, {}, 400, "invalid_sender"),
        ({"sender": "a"}, {}, 400, "invalid_message"),
        ({"sender": "a", "message": "   "}, {}, 400, "invalid_message"),
        ({"sender": "a", "message": ["hi"]}, {}, 400, "invalid_message"),
        ({"sender": "a", "message": "x" * 101}, {}, 413, "message_too_long"),
        ({"sender": "a", "message": "hi", "metadata": "x"}, {}, 400, "invalid_metadata"),
        ({"sender": "a", "message": "hi"}, {"X-Tenant-Id": "Bad Tenant"}, 400, "invalid_tenant"),
    ],
)
def test_bad_requests_are_refused_with_a_status_and_a_message(body, headers, status, code):
    with pytest.raises(InvalidRequest) as err:
        parse(body, headers)
    assert (err.value.status, err.value.code) == (status, code)
    assert err.value.message


def test_message_at_the_limit_is_accepted():
    assert parse({"sender": "a", "message": "x" * 100})["text"] == "x" * 100


def test_conversation_id_joins_tenant_and_user():
    assert conversation_id("acme", "alice") == "acme:alice"


def test_limit_and_tenant_from_environment(monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_MAX_MESSAGE_CHARS", "50")
    monkeypatch.setenv("SWITCHBOARD_TENANT", "initech")
    channel = SwitchboardRestInput.from_credentials(None)
    assert (channel.max_message_chars, channel.default_tenant) == (50, "initech")
    monkeypatch.delenv("SWITCHBOARD_MAX_MESSAGE_CHARS")
    assert SwitchboardRestInput().max_message_chars == DEFAULT_MAX_MESSAGE_CHARS


def test_rasa_loads_our_channel_from_the_credentials_file(monkeypatch):
    from pathlib import Path

    from rasa.core.run import create_http_input_channels

    monkeypatch.chdir(Path(__file__).resolve().parents[4])
    channels = create_http_input_channels(None, ROOT_CREDENTIALS)
    assert [type(c) for c in channels] == [SwitchboardRestInput]
    assert channels[0].name() == "rest"
    from rasa.core.channels.channel import register
    from sanic import Sanic

    app = Sanic("test_switchboard_channel")
    register(channels, app, route="/webhooks/")
    app.router.finalize()
    paths = {"/" + "/".join(route.parts) for route in app.router.routes}
    assert {"/webhooks/rest/webhook", "/webhooks/rest", "/webhooks/rest/openapi.json"} <= paths
