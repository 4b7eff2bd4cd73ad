"""End to end: the real gateway process (started by the launcher's ``Stack``) in front of the real bot.

The gateway runs as ``make run`` starts it (``python -m app.gateway serve``), with a per-run secret and the
``bot`` fixture's Rasa server as its upstream. The tenant a conversation lands in is checked in the tracker
store Rasa writes (the stack runs Rasa without ``--enable-api``, so its ``GET /conversations/<id>/tracker``
route is not served; the store is where the conversation id is recorded anyway).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from app.gateway.auth import mint_token
from app.stack import Stack
from app.ui.chat_client import client_for
from tests.conftest import free_port, start_guarded

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def gateway(bot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway process in front of ``bot.settings.rasa_url``, with a secret of this run."""
    settings = bot.settings.model_copy(
        update={
            "state_dir": tmp_path_factory.mktemp("gateway"),
            "gateway_port": free_port(),
            "gateway_upstreams": bot.settings.rasa_url,
            "jwt_secret": SecretStr(secrets.token_urlsafe(32)),
        }
    )
    stack = Stack(settings, services=("gateway",))
    start_guarded(stack, timeout=60)
    yield stack
    stack.stop()


def token(gateway: Stack, tenant: str, user: str, plan: str = "pro") -> str:
    return mint_token(gateway.settings.jwt_secret.get_secret_value(), tenant=tenant, user=user, plan=plan)


def post(gateway: Stack, body: dict, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{gateway.settings.gateway_url}/webhooks/rest/webhook", json=body, headers=headers, timeout=60
    )


def tracker_events(bot, conversation_id: str) -> list[dict]:
    with sqlite3.connect(bot.settings.tracker_db) as conn:
        rows = conn.execute(
            "SELECT data FROM events WHERE sender_id = ? ORDER BY id", (conversation_id,)
        ).fetchall()
    return [json.loads(row[0]) for row in rows]


def test_a_token_for_acme_bob_gets_the_greeting(gateway):
    reply = post(
        gateway,
        {"sender": "bob", "message": "hello"},
        {"Authorization": f"Bearer {token(gateway, 'acme', 'bob')}", "X-Request-Id": "e2e-bob-1"},
    )
    assert reply.status_code == 200, reply.text
    assert "Northwind Goods assistant" in "\n".join(m.get("text", "") for m in reply.json())
    assert reply.headers["X-Request-Id"] == "e2e-bob-1"
    assert int(reply.headers["X-RateLimit-Remaining"]) < int(reply.headers["X-RateLimit-Limit"])


def test_a_forged_tenant_header_is_ignored(bot, gateway):
    user = f"carol-{uuid.uuid4().hex[:8]}"
    reply = post(
        gateway,
        {"sender": user, "message": "hello"},
        {
            "Authorization": f"Bearer {token(gateway, 'acme', user)}",
            "X-Tenant-Id": "globex",
            "X-Request-Id": f"forged-{user}",
        },
    )
    assert reply.status_code == 200, reply.text

    acme_users = [e for e in tracker_events(bot, f"acme:{user}") if e["event"] == "user"]
    assert [e["text"] for e in acme_users] == ["hello"]
    assert acme_users[0]["metadata"]["tenant_id"] == "acme"
    assert acme_users[0]["metadata"]["correlation_id"] == f"forged-{user}"
    assert tracker_events(bot, f"globex:{user}") == []


def test_no_token_is_401_and_reaches_nothing(bot, gateway):
    user = f"dave-{uuid.uuid4().hex[:8]}"
    reply = post(gateway, {"sender": user, "message": "hello"}, {"X-Tenant-Id": "acme"})
    assert reply.status_code == 401
    assert reply.json()["error"] == "missing_token"
    assert tracker_events(bot, f"acme:{user}") == []


def test_sender_other_than_the_token_user_is_403(gateway):
    reply = post(
        gateway,
        {"sender": "bob", "message": "hello"},
        {"Authorization": f"Bearer {token(gateway, 'acme', 'mallory')}"},
    )
    assert (reply.status_code, reply.json()["error"]) == (403, "sender_mismatch")


def test_the_chat_client_talks_through_the_gateway(gateway):
    """What the chat page does when the launcher set a secret: ``client_for`` mints per-message tokens."""
    client = client_for(gateway.settings, "acme")
    assert client.webhook_url.startswith(gateway.settings.gateway_url)
    replies = client.send(f"page-{uuid.uuid4().hex[:8]}", "hello")
    assert any("Northwind Goods assistant" in (m.text or "") for m in replies)


def test_health_and_json_logs_with_correlation_tenant_and_user(gateway):
    health = httpx.get(f"{gateway.settings.gateway_url}/health", timeout=10).json()
    assert {key: health[key] for key in ("status", "upstreams")} == {
        "status": "ok",
        "upstreams": [{"url": gateway.settings.gateway_upstreams, "reachable": True}],
    }
    # the launcher's services (from its state file) and the level the action server serves at
    assert health["services"]["gateway"] == {
        "state": "running",
        "restarts": 0,
        "last_exit_code": None,
        "last_restart_at": None,
    }
    assert health["degradation"]["level"] == "full"

    post(
        gateway,
        {"sender": "bob", "message": "hi"},
        {"Authorization": f"Bearer {token(gateway, 'acme', 'bob')}", "X-Request-Id": "e2e-log-check"},
    )
    lines = [
        json.loads(line)
        for line in gateway.service("gateway").log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    turn = [line for line in lines if line.get("correlation_id") == "e2e-log-check"]
    assert turn and turn[-1]["event"] == "gateway.turn"
    assert (turn[-1]["tenant_id"], turn[-1]["user_id"], turn[-1]["status"]) == ("acme", "bob", 200)
