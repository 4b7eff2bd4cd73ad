"""The gateway over real loopback sockets: a uvicorn fake upstream, a closed port and a silent port.

MockTransport tests (test_app.py) raise httpx's exceptions by hand; these check that what the network
really does (a refused connection, a server that never answers) maps to failover, 503 and 504.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.gateway.app import create_app
from tests.app.gateway.conftest import auth, make_config, turn
from tests.conftest import free_port


@contextmanager
def fake_rasa() -> Iterator[tuple[str, list[dict]]]:
    """A tiny REST channel on a loopback port (uvicorn in a thread): echoes ``<tenant>:<sender>``."""
    seen: list[dict] = []
    app = FastAPI()

    @app.post("/webhooks/rest/webhook")
    async def webhook(request: Request) -> list[dict]:
        body = await request.json()
        seen.append({"tenant": request.headers.get("x-tenant-id"), "sender": body["sender"]})
        return [{"recipient_id": f"{request.headers.get('x-tenant-id')}:{body['sender']}", "text": "hi"}]

    @app.get("/webhooks/rest/")
    async def health() -> dict:
        return {"status": "ok"}

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "fake upstream did not start"
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A loopback port that accepts connections (kernel backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def real_gateway(upstreams: list[str], **params) -> Iterator[TestClient]:
    with TestClient(
        create_app(make_config(upstreams=upstreams, **params)), raise_server_exceptions=False
    ) as c:
        yield c


def test_refused_connection_fails_over_to_a_live_upstream():
    closed = f"http://127.0.0.1:{free_port()}"
    with fake_rasa() as (live, seen), real_gateway([closed, live]) as client:
        replies = [turn(client, headers={**auth(tenant="acme"), "X-Tenant-Id": "evil"}) for _ in range(4)]
        assert [r.status_code for r in replies] == [200] * 4
        assert replies[0].json() == [{"recipient_id": "acme:alice", "text": "hi"}]
        assert seen == [{"tenant": "acme", "sender": "alice"}] * 4
        health = client.get("/health").json()
        assert health["status"] == "ok"
        assert [u["reachable"] for u in health["upstreams"]] == [False, True]


def test_all_refused_is_503():
    with real_gateway([f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]) as client:
        reply = turn(client, headers=auth())
        assert (reply.status_code, reply.json()["error"]) == (503, "upstream_unavailable")
        assert client.get("/health").status_code == 503


def test_silent_upstream_is_504_after_the_timeout(silent_url):
    with real_gateway([silent_url], upstream_timeout_s=0.5) as client:
        started = time.monotonic()
        reply = turn(client, headers=auth())
        assert (reply.status_code, reply.json()["error"]) == (504, "upstream_timeout")
        assert time.monotonic() - started < 5


def test_the_fake_upstream_really_listens():
    """Guards the fixture: without the gateway, the fake answers directly."""
    with fake_rasa() as (live, _):
        assert httpx.get(f"{live}/webhooks/rest/", timeout=5).json() == {"status": "ok"}
