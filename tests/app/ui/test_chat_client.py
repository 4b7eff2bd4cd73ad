"""ChatClient against a closed port, a silent socket and canned HTTP replies (httpx.MockTransport)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from app.ui.chat_client import (
    BotFailed,
    BotMessage,
    BotRejected,
    BotUnavailable,
    Button,
    ChatClient,
    is_up,
)
from tests.conftest import free_port


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (kernel backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def client_replying(status: int, body: object, seen: list[httpx.Request] | None = None) -> ChatClient:
    """A ChatClient whose every request gets ``status`` and ``body`` (JSON, or raw text if a str)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    return ChatClient("http://bot.test/webhooks/rest/webhook", "acme", transport=httpx.MockTransport(handler))


def test_closed_port_raises_bot_unavailable_naming_the_url(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/webhooks/rest/webhook"
    with pytest.raises(BotUnavailable) as raised:
        ChatClient(url, "acme").send("user-1", "hello")
    assert raised.value.url == url
    assert url in str(raised.value)


def test_no_answer_in_time_raises_bot_unavailable(silent_port: int) -> None:
    client = ChatClient(f"http://127.0.0.1:{silent_port}/webhooks/rest/webhook", "acme", timeout=0.5)
    with pytest.raises(BotUnavailable, match=r"no answer within 0\.5 s"):
        client.send("user-1", "hello")


def test_is_up_is_false_when_nothing_listens(closed_port: int, silent_port: int) -> None:
    assert is_up(f"http://127.0.0.1:{closed_port}") is False
    assert is_up(f"http://127.0.0.1:{silent_port}", timeout=0.5) is False


def test_send_posts_the_contract_and_parses_the_reply() -> None:
    seen: list[httpx.Request] = []
    reply = [
        {"recipient_id": "acme:user-1", "text": "Hi! How can I help?"},
        {
            "recipient_id": "acme:user-1",
            "text": "Is it about an order?",
            "buttons": [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}],
        },
        {"recipient_id": "acme:user-1", "image": "http://example.test/map.png"},
    ]
    messages = client_replying(200, reply, seen).send("user-1", "hello", metadata={"page": "chat"})

    assert messages == [
        BotMessage(text="Hi! How can I help?"),
        BotMessage(text="Is it about an order?", buttons=(Button("Yes", "/affirm"), Button("No", "/deny"))),
        BotMessage(image="http://example.test/map.png"),
    ]
    (request,) = seen
    assert request.method == "POST"
    assert json.loads(request.content) == {
        "sender": "user-1",
        "message": "hello",
        "metadata": {"page": "chat"},
    }
    assert request.headers["X-Tenant-Id"] == "acme"
    assert request.headers["X-Request-Id"]


def test_empty_reply_is_an_empty_list() -> None:
    assert client_replying(200, []).send("user-1", "hello") == []


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, "invalid_sender", "'sender' is required."),
        (413, "message_too_long", "'message' is longer than 2000 characters."),
    ],
)
def test_4xx_raises_bot_rejected_with_the_servers_message(status: int, code: str, message: str) -> None:
    with pytest.raises(BotRejected) as raised:
        client_replying(status, {"error": code, "message": message}).send("user-1", "hello")
    assert (raised.value.status, raised.value.code, raised.value.message) == (status, code, message)
    assert message in str(raised.value)


def test_4xx_without_json_still_raises_bot_rejected() -> None:
    with pytest.raises(BotRejected, match="Not Found"):
        client_replying(404, "Not Found").send("user-1", "hello")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"error": "internal_error", "message": "The bot failed to process the message."}),
        (504, {"error": "timeout", "message": "The bot took too long to answer."}),
        (200, {"not": "a list"}),
        (200, "<html>not json</html>"),
    ],
)
def test_server_errors_and_odd_replies_raise_bot_failed(status: int, body: object) -> None:
    with pytest.raises(BotFailed) as raised:
        client_replying(status, body).send("user-1", "hello")
    assert raised.value.status == status


def test_fetch_notifications_passes_the_cursor_and_parses_messages():
    import httpx

    from app.ui.chat_client import NotificationsUnavailable, fetch_notifications

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.params.get("after") == "7":
            return httpx.Response(
                200, json={"notifications": [{"id": 8, "text": "Refund done", "created_at": "t"}]}
            )
        return httpx.Response(500, text="boom")

    got = fetch_notifications(
        "http://crm.test", "acme", "u1", after=7, transport=httpx.MockTransport(handler)
    )
    assert [(n.id, n.text) for n in got] == [(8, "Refund done")]
    assert seen == ["http://crm.test/notifications/acme/u1?after=7"]
    with pytest.raises(NotificationsUnavailable, match="HTTP 500"):
        fetch_notifications("http://crm.test", "acme", "u1", transport=httpx.MockTransport(handler))


def test_token_factory_adds_a_bearer_token_per_message() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    client = ChatClient(
        "http://gateway.test/webhooks/rest/webhook",
        "acme",
        transport=httpx.MockTransport(handler),
        token_factory=lambda tenant, sender: f"token-{tenant}-{sender}",
    )
    client.send("user-1", "hello")
    assert seen[0].headers["Authorization"] == "Bearer token-acme-user-1"
    client_replying(200, [], seen).send("user-1", "hello")  # no factory: no header (straight to Rasa)
    assert "authorization" not in seen[1].headers


def test_client_for_goes_through_the_gateway_only_with_a_secret(tmp_path) -> None:
    import jwt
    from pydantic import SecretStr

    from app.settings import Settings
    from app.ui.chat_client import client_for

    direct = client_for(Settings(state_dir=tmp_path, jwt_secret=SecretStr("")), "acme")
    assert direct.webhook_url == "http://127.0.0.1:5005/webhooks/rest/webhook"

    secret = "s" * 40
    settings = Settings(state_dir=tmp_path, jwt_secret=SecretStr(secret), gateway_port=5999)
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(200, json=[]))
    gated = client_for(settings, "globex", transport=transport)
    assert gated.webhook_url == "http://127.0.0.1:5999/webhooks/rest/webhook"
    gated.send("visitor-1", "hello")
    claims = jwt.decode(
        seen[0].headers["Authorization"].removeprefix("Bearer "), secret, algorithms=["HS256"]
    )
    assert (claims["sub"], claims["tenant"], claims["plan"]) == ("visitor-1", "globex", "pro")
    with pytest.raises(BotRejected, match="invalid tenant"):  # shown by the page, nothing is sent
        client_for(settings, "Not A Tenant", transport=transport).send("visitor-1", "hello")
    assert len(seen) == 1


def test_client_for_sends_the_channel_secret_to_rasa_and_aud_iss_in_its_tokens(tmp_path) -> None:
    import jwt
    from pydantic import SecretStr

    from app.settings import Settings
    from app.ui.chat_client import client_for

    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(200, json=[]))
    channel_secret = "c" * 24
    direct = Settings(state_dir=tmp_path, jwt_secret=SecretStr(""), channel_secret=SecretStr(channel_secret))
    client_for(direct, "acme", transport=transport).send("visitor-1", "hello")
    assert seen[0].headers["X-Channel-Secret"] == channel_secret

    secret = "s" * 40
    gated = Settings(
        state_dir=tmp_path,
        jwt_secret=SecretStr(secret),
        jwt_audience="switchboard",
        jwt_issuer="switchboard-demo",
        channel_secret=SecretStr(channel_secret),
    )
    client_for(gated, "acme", transport=transport).send("visitor-1", "hello")
    assert "x-channel-secret" not in seen[1].headers  # the gateway adds it, the browser side never has it
    token = seen[1].headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(
        token, secret, algorithms=["HS256"], audience="switchboard", issuer="switchboard-demo"
    )
    assert claims["sub"] == "visitor-1"
