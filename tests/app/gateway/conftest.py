"""Helpers for the gateway tests: a config, tokens, a fake upstream (httpx.MockTransport) and a client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from app.gateway.app import create_app
from app.gateway.config import GatewayConfig, GatewayParams

SECRET = "test-secret-0123456789-abcdefghijklmnop"  # 40 bytes: long enough for HS256
UPSTREAM = "http://rasa-1.test"
WEBHOOK = "/webhooks/rest/webhook"


def make_config(
    upstreams: list[str] | None = None, secret: str = SECRET, public_key: str = "", **params: Any
) -> GatewayConfig:
    """A gateway config with the default plans unless overridden (``plans=...``, ``tenant_limit=...``)."""
    return GatewayConfig(
        params=GatewayParams(**params),
        upstreams=upstreams or [UPSTREAM],
        jwt_secret=secret,
        jwt_public_key=public_key,
        max_message_chars=100,
    )


def make_token(
    secret: str = SECRET, algorithm: str = "HS256", drop: tuple[str, ...] = (), **claims: Any
) -> str:
    """A token for alice of acme on pro, valid for an hour; ``claims`` override, ``drop`` removes claims."""
    body = {"sub": "alice", "tenant": "acme", "plan": "pro", "exp": int(time.time()) + 3600, **claims}
    for name in drop:
        body.pop(name)
    return jwt.encode(body, secret, algorithm=algorithm)


def auth(token: str | None = None, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or make_token(**claims)}"}


@dataclass
class FakeUpstream:
    """Plays the Rasa REST channel for any number of upstream URLs; records what reached each.

    ``behaviour[url]`` is an exception instance (raised, as the network would) or a callable returning an
    ``httpx.Response``; by default the channel's echo: one message to ``<tenant>:<sender>``.
    """

    seen: list[httpx.Request] = field(default_factory=list)
    behaviour: dict[str, Any] = field(default_factory=dict)

    def handler(self, request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}"
        action = self.behaviour.get(base)
        if isinstance(action, Exception):
            raise action
        self.seen.append(request)
        if callable(action):
            return action(request)
        if request.method == "GET":
            return httpx.Response(200, json={"status": "ok"})
        sender = json.loads(request.content)["sender"]
        tenant = request.headers["X-Tenant-Id"]
        return httpx.Response(
            200,
            json=[{"recipient_id": f"{tenant}:{sender}", "text": f"hello from {base}"}],
            headers={"X-Request-Id": request.headers["X-Request-Id"]},
        )

    def posts(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.method == "POST"]

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
def gateway(upstream: FakeUpstream) -> Iterator[Callable[..., TestClient]]:
    """``gateway(config=None)``: a started gateway (lifespan run) in front of the fake upstream."""
    clients: list[TestClient] = []

    def start(config: GatewayConfig | None = None) -> TestClient:
        app = create_app(config or make_config(), transport=upstream.transport)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def turn(
    client: TestClient, sender: str = "alice", headers: dict[str, str] | None = None, message: str = "hello"
) -> httpx.Response:
    return client.post(WEBHOOK, json={"sender": sender, "message": message}, headers=headers or {})
