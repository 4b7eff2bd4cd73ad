"""One circuit breaker per dependency (pybreaker), kept in a registry whose states anyone can read.

Breakers are process-wide: every client of the same endpoint shares one, so failures seen by any caller
count. State changes are logged (``breaker.state_change``) and readable through :func:`breaker_states`,
which the degradation controller uses.

With ``SWITCHBOARD_BREAKER_STORAGE_URL=redis://...`` the state lives in Redis instead (pybreaker's
``CircuitRedisStorage``: state, failure count, opening time, under ``breaker_key_prefix`` + the breaker's
name), so every process of the deployment (action-server workers, the Streamlit app, several machines)
shares each breaker: a breaker one process opens is open in the others, and none of them calls the failing
dependency until the reset timeout passes. ``fail_max`` and ``reset_timeout_s`` stay each process's own
settings (the same params everywhere). When Redis does not answer, a breaker reads as closed (pybreaker's
fallback, logged): calls go through rather than fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pybreaker
import redis
import structlog

from app.settings import get_settings

logger = structlog.get_logger(__name__)

SHARED_SCHEMES = ("redis://", "rediss://", "unix://")

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN


class _LogStateChanges(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        logger.warning(
            "breaker.state_change",
            breaker=cb.name,
            old=getattr(old_state, "name", str(old_state)),
            new=getattr(new_state, "name", str(new_state)),
        )


class SharedStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage, except that an unreachable Redis when a breaker is created is logged, not
    raised (pybreaker only tolerates it on later reads and writes): the breaker then reads as closed."""

    def _initialize_redis_state(self, state: str) -> None:
        try:
            super()._initialize_redis_state(state)
        except redis.RedisError as exc:
            logger.error("breaker.storage_unavailable", namespace=self._namespace_name, error=repr(exc)[:300])

    def forget(self) -> None:
        """Delete this breaker's keys (its state, counters and opening time)."""
        keys = [self._namespace(k) for k in ("state", "fail_counter", "success_counter", "opened_at")]
        try:
            self._redis.delete(*keys)
        except redis.RedisError as exc:
            logger.error("breaker.storage_unavailable", namespace=self._namespace_name, error=repr(exc)[:300])


def is_shared_url(url: str) -> bool:
    """Whether ``url`` names a shared breaker storage (Redis); empty or ``memory://`` means per process."""
    return url.strip().startswith(SHARED_SCHEMES)


def check_storage_url(url: str) -> None:
    """``ValueError`` (one line, naming the setting) unless ``url`` is empty, ``memory://`` or a Redis URL."""
    if url.strip() in ("", "memory://") or is_shared_url(url):
        return
    raise ValueError(
        f"SWITCHBOARD_BREAKER_STORAGE_URL must be empty, memory:// or redis://host:port/db, not {url!r}"
    )


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    """One client (connection pool) per URL; short timeouts, so a hung Redis costs a call little."""
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def _storage(name: str) -> pybreaker.CircuitBreakerStorage | None:
    """The state storage of breaker ``name`` under the settings (None: pybreaker's in-memory default)."""
    settings = get_settings()
    url = settings.breaker_storage_url.strip()
    check_storage_url(url)
    if not is_shared_url(url):
        return None
    return SharedStorage(
        pybreaker.STATE_CLOSED, _redis(url), namespace=f"{settings.breaker_key_prefix}:{name}"
    )


_lock = threading.Lock()
_breakers: dict[str, pybreaker.CircuitBreaker] = {}


def get_breaker(
    name: str,
    *,
    fail_max: int = 3,
    reset_timeout_s: float = 30.0,
    exclude: Iterable[type[BaseException] | Callable[[BaseException], bool]] = (),
) -> pybreaker.CircuitBreaker:
    """The breaker called ``name``, created on first use with these settings (later calls reuse it).

    ``exclude``: exceptions (types or predicates) that are the caller's fault, not the dependency's; they
    pass through without counting as failures.
    """
    with _lock:
        breaker = _breakers.get(name)
        if breaker is None:
            breaker = pybreaker.CircuitBreaker(
                fail_max=fail_max,
                reset_timeout=reset_timeout_s,
                exclude=list(exclude),
                listeners=[_LogStateChanges()],
                state_storage=_storage(name),
                name=name,
                throw_new_error_on_trip=False,
            )
            _breakers[name] = breaker
        return breaker


def breaker_states(prefix: str = "") -> dict[str, str]:
    """``{name: "closed" | "open" | "half-open"}`` of every breaker whose name starts with ``prefix``.

    An open breaker whose reset timeout has passed reports ``half-open``: the next call is a trial.
    """
    with _lock:
        items = [(n, b) for n, b in _breakers.items() if n.startswith(prefix)]
    return {name: effective_state(breaker) for name, breaker in items}


def effective_state(breaker: pybreaker.CircuitBreaker) -> str:
    """The breaker's state as a caller would find it now (pybreaker moves open -> half-open lazily)."""
    state = breaker.current_state
    if state == OPEN:
        opened_at = breaker._state_storage.opened_at  # pybreaker has no public getter for it
        if opened_at is not None and datetime.now(UTC) >= opened_at + timedelta(
            seconds=breaker.reset_timeout
        ):
            return HALF_OPEN
    return state


def reset_breakers(prefix: str = "") -> None:
    """Forget the breakers whose names start with ``prefix`` (tests; an operator's "reset"); a shared
    breaker's state is deleted from Redis too, so it starts closed again in every process."""
    with _lock:
        for name in [n for n in _breakers if n.startswith(prefix)]:
            storage = _breakers.pop(name)._state_storage
            if isinstance(storage, SharedStorage):
                storage.forget()
