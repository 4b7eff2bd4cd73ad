"""Shared HTTP plumbing of our integration clients: one timeout per call, bounded retries (tenacity) on
connection errors and 5xx only, and a circuit breaker per service (pybreaker, ``app.reliability.breakers``).

A 4xx is the caller's fault: it is neither retried nor counted against the breaker.
"""

from __future__ import annotations

from typing import Any

import httpx
import pybreaker
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from app.reliability.breakers import get_breaker


class ServiceUnavailable(RuntimeError):
    """The service could not answer: down, too slow, 5xx after retries, or its breaker is open."""


class ServiceRejected(RuntimeError):
    """The service refused the request (4xx other than 404 where a caller handles "not found")."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


class _ServerError(Exception):
    """A 5xx answer, raised inside the retry loop so that it is retried and counted by the breaker."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}: {response.text[:200]}")
        self.response = response


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (httpx.TransportError, _ServerError))


class JsonHttpClient:
    """Synchronous JSON calls to one base URL with timeout, retries and a breaker named ``breaker_name``
    (None: no breaker here, because the caller wraps the calls in one, as the tool registry does)."""

    def __init__(
        self,
        base_url: str,
        *,
        breaker_name: str | None,
        timeout_s: float = 5.0,
        attempts: int = 3,
        wait_initial_s: float = 0.2,
        fail_max: int = 5,
        reset_timeout_s: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0))
        self.attempts = attempts
        self.wait_initial_s = wait_initial_s
        self.breaker = (
            get_breaker(breaker_name, fail_max=fail_max, reset_timeout_s=reset_timeout_s)
            if breaker_name
            else None
        )
        self._transport = transport

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response (any status below 500), or ``ServiceUnavailable``."""

        def attempt() -> httpx.Response:
            with httpx.Client(
                base_url=self.base_url, timeout=self.timeout, transport=self._transport
            ) as http:
                response = http.request(method, path, **kwargs)
            if response.status_code >= 500:
                raise _ServerError(response)
            return response

        def retried() -> httpx.Response:
            retrying = Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=self.wait_initial_s, max=2.0),
                retry=retry_if_exception(_retryable),
                reraise=True,
            )
            return retrying(attempt)

        try:
            return self.breaker.call(retried) if self.breaker is not None else retried()
        except pybreaker.CircuitBreakerError as exc:
            raise ServiceUnavailable(f"{self.base_url}: circuit breaker open") from exc
        except (httpx.HTTPError, _ServerError) as exc:
            raise ServiceUnavailable(f"{self.base_url}{path}: {type(exc).__name__}: {exc}") from exc

    def json(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """The decoded JSON body of a response with a status in ``ok``; other 4xx raise ``ServiceRejected``."""
        response = self.request(method, path, **kwargs)
        if response.status_code not in ok:
            raise ServiceRejected(response.status_code, response.text[:300])
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceUnavailable(f"{self.base_url}{path}: the reply is not JSON") from exc
