"""Our REST channel's validation and its registration with Rasa (runs in the Rasa environment)."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from app.channels.rest import InvalidRequest, SwitchboardRestInput, conversation_id, parse_payload
from app.channels.settings import DEFAULT_MAX_MESSAGE_CHARS
from tests.rasa_env.app.channels.conftest import free_port, serving

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
        (
            {"sender": "a", "message": "hi", "metadata": []},
            {},
            400,
            "invalid_metadata",
        ),  # described: object or null
        ({"sender": "a", "message": "hi"}, {"X-Tenant-Id": "Bad Tenant"}, 400, "invalid_tenant"),
        # found by tests/e2e/test_fuzz.py: an empty header was taken as the default tenant
        ({"sender": "a", "message": "hi"}, {"X-Tenant-Id": ""}, 400, "invalid_tenant"),
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


def test_client_metadata_cannot_claim_another_tenant_or_user():
    turn = parse(
        {"sender": "alice", "message": "hi", "metadata": {"tenant_id": "globex", "user_id": "gus"}},
        {"X-Tenant-Id": "acme"},
    )
    assert (turn["metadata"]["tenant_id"], turn["metadata"]["user_id"]) == ("acme", "alice")


# --- the channel secret, over HTTP: the real blueprint in a Sanic server on a free loopback port -----------

SECRET = "channel-secret-0123456789abcdef"


@dataclass
class ServedChannel:
    channel: SwitchboardRestInput
    port: int
    received: list[str]

    def post(self, message: str, headers: dict[str, str] | None = None) -> tuple[int, object]:
        """POST a turn of alice; the status and the JSON body."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/webhooks/rest/webhook",
            data=json.dumps({"sender": "alice", "message": message}).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def served():
    """Our channel as Rasa registers it (``/webhooks/rest/webhook``), with an agent that echoes, served by
    Sanic in a thread (conftest.py ``serving``)."""
    from rasa.core.channels.channel import register
    from sanic import Sanic

    from app.channels.degraded import StoreUnavailable

    received: list[str] = []

    class EchoAgent:
        """Stands in for Rasa's agent, which ``register`` hands every accepted message to."""

        async def handle_message(self, message):
            if (
                message.text == "store down"
            ):  # what the tracker store's failure raises (app/channels/degraded.py)
                raise StoreUnavailable("OperationalError: connection refused")
            received.append(message.text)
            await message.output_channel.send_text_message(message.sender_id, f"echo {message.text}")

    channel = SwitchboardRestInput()
    app = Sanic("switchboard_channel_secret_test")
    app.ctx.agent = EchoAgent()
    register([channel], app, route="/webhooks/")
    port = free_port()
    with serving(app, port):
        yield ServedChannel(channel, port, received)


def test_the_channel_reads_its_secret_from_the_environment(monkeypatch):
    monkeypatch.delenv("SWITCHBOARD_CHANNEL_SECRET", raising=False)
    assert SwitchboardRestInput().secret == ""
    monkeypatch.setenv("SWITCHBOARD_CHANNEL_SECRET", f" {SECRET}\n")
    assert SwitchboardRestInput.from_credentials(None).secret == SECRET


def test_without_a_channel_secret_turns_are_accepted(served):
    served.channel.secret, served.received[:] = "", []
    assert served.post("hi") == (200, [{"recipient_id": "acme:alice", "text": "echo hi"}])
    assert served.post("again", {"X-Channel-Secret": "anything"})[0] == 200
    assert served.received == ["hi", "again"]


def test_with_a_channel_secret_only_turns_that_carry_it_reach_the_bot(served):
    served.channel.secret, served.received[:] = SECRET, []
    refused = [
        served.post("no secret", {"X-Tenant-Id": "globex"}),
        served.post("wrong secret", {"X-Channel-Secret": SECRET[:-1] + "X"}),
        served.post("empty secret", {"X-Channel-Secret": ""}),
    ]
    for status, body in refused:
        assert status == 401
        assert body["error"] == "invalid_channel_secret" and "X-Channel-Secret" in body["message"]
        assert SECRET not in body["message"]
    right = served.post("right secret", {"x-channel-secret": SECRET, "X-Tenant-Id": "globex"})
    assert right == (200, [{"recipient_id": "globex:alice", "text": "echo right secret"}])
    assert served.received == ["right secret"]


def test_a_turn_the_conversation_store_cannot_take_is_refused_with_503(served):
    served.channel.secret = ""
    status, body = served.post("store down")
    assert status == 503
    assert body["error"] == "store_unavailable" and "send your message again" in body["message"]
