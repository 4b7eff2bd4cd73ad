"""Fixtures shared by the app tests: the database URLs of tests/app/data (SQLite, and PostgreSQL when it is
there), a Redis database, and the local OpenAI-compatible test LLM server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.app.data.conftest import db_url, postgres_url, sqlite_url  # noqa: F401 - fixtures for all app tests
from tests.llm_server import LLMTestServer

REDIS_SERVER = os.environ.get("SWITCHBOARD_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis database (DB 15 by default). Skips without the service; fails under CI=true."""
    import redis

    client = redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI but not reachable at {REDIS_SERVER}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_SERVER}")
    finally:
        client.close()
    return REDIS_SERVER


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (other runs share the database)."""
    import redis

    prefix = f"switchboard-test:{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer() as server:
        yield server


@pytest.fixture
def llm(llm_server: LLMTestServer) -> LLMTestServer:
    """The session's test LLM server, back to its construction state for every test."""
    llm_server.reset()
    return llm_server
