"""Breakers in Redis (``SWITCHBOARD_BREAKER_STORAGE_URL``): one state for every process, reset everywhere, and
calls that still go through when Redis does not answer. In-process here; the two-process test is
``tests/app/actions/test_server_workers.py``."""

from __future__ import annotations

import pybreaker
import pytest
import redis

from app.reliability import breakers
from app.reliability.breakers import (
    SharedStorage,
    check_storage_url,
    effective_state,
    get_breaker,
    reset_breakers,
)
from tests.conftest import free_port


def boom() -> None:
    raise ConnectionError("dependency down")


@pytest.fixture
def shared(monkeypatch, fresh_settings, redis_url, redis_prefix):  # noqa: ARG001 - fresh_settings: env counts
    monkeypatch.setenv("SWITCHBOARD_BREAKER_STORAGE_URL", redis_url)
    monkeypatch.setenv("SWITCHBOARD_BREAKER_KEY_PREFIX", redis_prefix)
    reset_breakers("shared-test")
    yield redis.Redis.from_url(redis_url)
    reset_breakers("shared-test")


def other_process_view(client: redis.Redis, prefix: str, name: str) -> pybreaker.CircuitBreaker:
    """A breaker as another process builds it: its own object, the same keys."""
    storage = SharedStorage(pybreaker.STATE_CLOSED, client, namespace=f"{prefix}:{name}")
    return pybreaker.CircuitBreaker(
        fail_max=2, reset_timeout=60, state_storage=storage, name=name, throw_new_error_on_trip=False
    )


def test_a_breaker_opened_here_is_open_for_another_process_and_reset_everywhere(shared, redis_prefix):
    breaker = get_breaker("shared-test:crm", fail_max=2, reset_timeout_s=60)
    assert isinstance(breaker._state_storage, SharedStorage)
    other = other_process_view(shared, redis_prefix, "shared-test:crm")
    assert other.current_state == "closed"
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert effective_state(breaker) == "open"
    assert other.current_state == "open" and effective_state(other) == "open"
    with pytest.raises(pybreaker.CircuitBreakerError):  # the other process does not call the dependency
        other.call(lambda: "called")
    assert shared.get(f"{redis_prefix}:shared-test:crm:pybreaker:state") == b"open"
    reset_breakers("shared-test")
    assert other.current_state == "closed" and other.call(lambda: "called") == "called"


def test_failures_of_two_processes_add_up(shared, redis_prefix):
    breaker = get_breaker("shared-test:llm", fail_max=2, reset_timeout_s=60)
    other = other_process_view(shared, redis_prefix, "shared-test:llm")
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    with pytest.raises(ConnectionError):
        other.call(boom)  # the second failure, in the other process, opens it for both
    assert effective_state(breaker) == "open"


def test_an_unreachable_redis_reads_as_closed_and_calls_go_through(monkeypatch, fresh_settings):  # noqa: ARG001
    monkeypatch.setenv("SWITCHBOARD_BREAKER_STORAGE_URL", f"redis://127.0.0.1:{free_port()}/0")
    breakers._redis.cache_clear()
    reset_breakers("shared-test")
    try:
        breaker = get_breaker("shared-test:down", fail_max=1, reset_timeout_s=60)  # created despite Redis
        assert breaker.call(lambda: "answered") == "answered"
        with pytest.raises(ConnectionError):
            breaker.call(boom)
        assert breaker.current_state == "closed"  # the fallback state: nothing is stored, nothing blocks
    finally:
        reset_breakers("shared-test")


def test_the_default_is_in_memory_per_process(monkeypatch, fresh_settings):  # noqa: ARG001
    monkeypatch.setenv("SWITCHBOARD_BREAKER_STORAGE_URL", "")
    reset_breakers("shared-test")
    breaker = get_breaker("shared-test:mem")
    assert isinstance(breaker._state_storage, pybreaker.CircuitMemoryStorage)
    reset_breakers("shared-test")


@pytest.mark.parametrize(
    "url", ["", "memory://", "redis://h:6379/3", "rediss://h/0", "unix:///run/redis.sock"]
)
def test_storage_urls_accepted(url):
    check_storage_url(url)


@pytest.mark.parametrize("url", ["http://h", "postgresql://h/d", "redis"])
def test_other_storage_urls_are_refused_naming_the_setting(url):
    with pytest.raises(ValueError, match="SWITCHBOARD_BREAKER_STORAGE_URL must be"):
        check_storage_url(url)
