"""The Rasa servers behind the gateway: round-robin, failover on connection errors, mapped failures.

A turn goes to the next upstream in turn. If no connection can be made (refused, or no connect in
``connect_timeout_s``) the request never reached Rasa, so trying the next upstream cannot run the turn twice;
any failure after the request was sent is final for that turn (a retry could answer the user twice):

- every upstream refused the connection -> 503 ``upstream_unavailable``;
- no answer within ``upstream_timeout_s``, or Rasa's own 504 -> 504 ``upstream_timeout``;
- the channel's own 503 ``store_unavailable`` (the tracker store cannot take the turn: it was not run) -> 503
  ``store_unavailable`` with the channel's ``Retry-After``, so the client sends it again;
- the connection broke mid-answer, another 5xx, or a reply that is not the channel's JSON -> 502 ``bad_upstream``.

4xx replies of the channel (its 400/413 validation errors) are the client's and pass through unchanged.

Vendor webhooks (Slack, Teams, Twilio) are relayed the same way (:meth:`UpstreamPool.relay`), to their own
path, with their body and content type as they are: a Slack event or a Twilio form is not the REST channel's
JSON, and voice answers in TwiML.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from app.gateway.auth import GatewayError

logger = structlog.get_logger(__name__)

WEBHOOK_PATH = "/webhooks/rest/webhook"
HEALTH_PATH = "/webhooks/rest/"  # the REST channel's own health route: Rasa loaded the channel
HEALTH_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class UpstreamReply:
    """What an upstream answered: status, JSON body (a list on success) and which upstream it was."""

    status: int
    body: Any
    upstream: str
    attempts: int


@dataclass(frozen=True)
class RelayedReply:
    """A vendor webhook's answer from an upstream: status, body bytes and headers as Rasa sent them."""

    status: int
    content: bytes
    headers: dict[str, str]
    upstream: str
    attempts: int


class UpstreamPool:
    """Forwards turns to a list of Rasa base URLs over one shared ``httpx.AsyncClient``."""

    def __init__(self, urls: list[str], client: httpx.AsyncClient) -> None:
        self.urls = list(urls)
        self.client = client
        self._turns = itertools.count()

    def order(self) -> list[str]:
        """The upstreams to try for the next turn: round-robin start, then the others in order."""
        start = next(self._turns) % len(self.urls)
        return self.urls[start:] + self.urls[:start]

    async def forward(self, body: bytes, headers: dict[str, str]) -> UpstreamReply:
        """POST ``body`` to the webhook of the first upstream that accepts a connection (see the docstring)."""
        response, base, attempt = await self._post(WEBHOOK_PATH, body, headers)
        return _check_reply(response, base, attempt)

    async def relay(self, path: str, body: bytes, headers: dict[str, str]) -> RelayedReply:
        """POST a vendor's webhook to ``path`` (with its query) of the first upstream that accepts a
        connection; its reply as it is, but a 5xx maps as for turns (502/504)."""
        response, base, attempt = await self._post(path, body, headers)
        if response.status_code >= 500:
            logger.error("gateway.upstream.bad_reply", upstream=base, status=response.status_code, path=path)
            raise _failure(response, f"The bot failed (HTTP {response.status_code}).")
        return RelayedReply(response.status_code, response.content, dict(response.headers), base, attempt)

    async def _post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[httpx.Response, str, int]:
        """The first upstream's answer to the POST, with that upstream and the attempt number."""
        refused: list[str] = []
        for attempt, base in enumerate(self.order(), start=1):
            try:
                response = await self.client.post(f"{base}{path}", content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                logger.warning("gateway.upstream.unreachable", upstream=base, error=type(exc).__name__)
                refused.append(base)
                continue
            except httpx.PoolTimeout as exc:  # our own connection pool is exhausted: overloaded, not down
                raise GatewayError(503, "gateway_busy", "The gateway is busy; retry shortly.") from exc
            except httpx.TimeoutException as exc:
                logger.error("gateway.upstream.timeout", upstream=base, error=type(exc).__name__)
                raise GatewayError(504, "upstream_timeout", "The bot took too long to answer.") from exc
            except httpx.HTTPError as exc:
                logger.error("gateway.upstream.failure", upstream=base, error=repr(exc)[:300])
                raise GatewayError(502, "bad_upstream", "The bot's connection failed mid-answer.") from exc
            return response, base, attempt
        raise GatewayError(503, "upstream_unavailable", f"No bot server is reachable ({len(refused)} tried).")

    async def health(self) -> dict[str, bool]:
        """Which upstreams answer the REST channel's health route now (checked concurrently)."""

        async def reachable(base: str) -> bool:
            try:
                reply = await self.client.get(f"{base}{HEALTH_PATH}", timeout=HEALTH_TIMEOUT_S)
            except httpx.HTTPError:
                return False
            return reply.status_code == 200

        results = await asyncio.gather(*(reachable(u) for u in self.urls))
        return dict(zip(self.urls, results, strict=True))


def _check_reply(response: httpx.Response, base: str, attempts: int) -> UpstreamReply:
    """The upstream's reply if it is usable, else the ``GatewayError`` to answer (see the docstring)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    status = response.status_code
    if status == 200 and isinstance(body, list):
        return UpstreamReply(status, body, base, attempts)
    if 400 <= status < 500 and isinstance(body, dict) and "error" in body:
        return UpstreamReply(status, body, base, attempts)
    logger.error("gateway.upstream.bad_reply", upstream=base, status=status, body=response.text[:200])
    raise _failure(response, f"The bot answered with an unexpected reply (HTTP {status}).")


def _failure(response: httpx.Response, message: str) -> GatewayError:
    """The error for an upstream's failed answer (see the docstring); ``message`` for a ``bad_upstream``."""
    if response.status_code == 504:
        return GatewayError(504, "upstream_timeout", "The bot took too long to answer.")
    if response.status_code == 503 and "retry-after" in response.headers:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict) and body.get("error") == "store_unavailable":
            return GatewayError(
                503, "store_unavailable", str(body.get("message") or "Please send it again shortly."),
                {"Retry-After": response.headers["retry-after"]},
            )  # fmt: skip
    return GatewayError(502, "bad_upstream", message)
