"""One circuit breaker per dependency (pybreaker), kept in a registry whose states anyone can read.

Breakers are process-wide: every client of the same endpoint shares one, so failures seen by any caller
count. State changes are logged (``breaker.state_change``) and readable through :func:`breaker_states`,
which the degradation controller uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pybreaker
import structlog

logger = structlog.get_logger(__name__)

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN


class _LogStateChanges(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        logger.warning(
            "breaker.state_change",
            breaker=cb.name,
            old=getattr(old_state, "name", str(old_state)),
            new=getattr(new_state, "name", str(new_state)),
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
    """Forget the breakers whose names start with ``prefix`` (tests; an operator's "reset")."""
    with _lock:
        for name in [n for n in _breakers if n.startswith(prefix)]:
            del _breakers[name]
