"""The gateway's HTTP app (FastAPI): ``POST /webhooks/rest/webhook``, the vendor channels'
``POST /webhooks/{channel}/webhook``, ``GET /health`` and ``GET /metrics``.

A turn goes through, in order: request id (the client's ``X-Request-Id`` if it is a sane id, else a new
one), credentials (a bearer token or an ``X-Api-Key``: 400/401/403/503), body (400/413, the REST channel's
codes), ``sender`` == the token's ``sub`` (403; an API key's client names any user of its tenant), rate
limits (429), then an upstream (502/503/504), with ``X-Channel-Secret`` when one is configured. Every
answer is JSON, carries ``X-Request-Id``, and every log line of the turn carries the correlation id, tenant
and user (and the API key's id).

Vendor webhooks (Slack, Microsoft Teams, Twilio SMS and voice) carry the vendor's signature, not a token:
the gateway relays them to Rasa's channel of that name with their body, content type, query and signature
headers unchanged (the channel checks the signature over exactly those), after the body limit (413) and the
channel's rate limit (429), and adds ``X-Request-Id`` and the channel secret. The channel's answer (JSON, or
TwiML for voice) comes back as it is; a channel the bot does not serve is a 404.

Canary routing of model versions: with challenger upstreams configured (Rasa servers of the registry's
challenger model), the flag ``challenger_percent`` (per tenant, ``app.flags``) sends that share of users,
sticky per user, to them; ``X-Model-Variant`` says which model answered. When no challenger server is
reachable the turn goes to the champion (``champion`` in the header): a canary never costs an answer.

``/health`` is the stack's one status page: ``ok`` (200) while a Rasa upstream answers, else 503 (what a
load balancer needs); with the launcher's state file it also lists every service's state and restart count
(``services``), and with the action server's URL the degradation level it serves at (``degradation``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.parser import text_string_to_metric_families

from app.channels.turns import REQUEST_ID_PATTERN, InvalidRequest, channel_headers, check_turn
from app.data.db import get_engine
from app.flags import Flags, choose_variant
from app.gateway import openapi
from app.gateway.auth import Authenticator, GatewayError, Principal, TokenKeys
from app.gateway.config import GatewayConfig
from app.gateway.keys import ApiKeyStore
from app.gateway.ratelimit import RateLimiter
from app.gateway.upstream import HEALTH_TIMEOUT_S, WEBHOOK_PATH, RelayedReply, UpstreamPool
from app.observability import metrics
from app.reliability.degradation import DegradationLevel
from app.supervisor import read_state

CHAMPION, CHALLENGER = "champion", "challenger"

logger = structlog.get_logger(__name__)

MAX_CONNECTIONS = 100
# What a vendor's webhook needs relayed: the headers its signature is checked over or that say what it is.
VENDOR_HEADERS = ("content-type", "authorization", "x-slack-signature", "x-slack-request-timestamp",
                  "x-slack-retry-num", "x-slack-retry-reason", "x-twilio-signature", "i-twilio-idempotency-token")  # fmt: skip
RELAYED_BACK = ("content-type", "x-slack-no-retry")  # what the vendor reads of the channel's answer


def request_id_of(request: Request) -> str:
    """The client's ``X-Request-Id`` when it is a plain id of at most 128 characters, else a new UUID."""
    given = request.headers.get("x-request-id", "")
    return given if REQUEST_ID_PATTERN.match(given) else uuid.uuid4().hex


def error_response(exc: GatewayError, request_id: str, extra: dict[str, str] | None = None) -> JSONResponse:
    """The channel's error shape ``{"error": code, "message": ...}`` with the gateway's headers."""
    headers = {"X-Request-Id": request_id, **exc.headers, **(extra or {})}
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status, headers=headers)


def parse_turn(body: bytes, max_message_chars: int) -> dict[str, Any]:
    """The JSON object of a turn, checked as the REST channel does (so bad input never costs a Rasa call)."""
    try:
        return check_turn(body, max_message_chars)
    except InvalidRequest as exc:
        raise GatewayError(exc.status, exc.code, exc.message) from exc


def tagged(payload: dict[str, Any], variant: str) -> bytes:
    """The turn as forwarded: the client's JSON with the model variant that serves it in ``metadata`` (the
    turn records keep it, so champion and challenger can be compared)."""
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    return json.dumps({**payload, "metadata": {**metadata, "model_variant": variant}}).encode()


def services_status(state_file: Path) -> dict[str, dict[str, Any]]:
    """Each service's state, restart count and last exit code, from the launcher's supervisor state file."""
    keep = ("state", "restarts", "last_exit_code", "last_restart_at")
    return {name: {k: s.get(k) for k in keep} for name, s in sorted(read_state(state_file).items())}


async def degradation_status(client: httpx.AsyncClient, actions_url: str) -> dict[str, Any]:
    """The degradation level the action server serves at (its ``switchboard_degradation_level`` gauge, per
    tenant; the worst wins). An action server that does not answer means rules and the channel's static
    replies only: ``static``."""
    try:
        reply = await client.get(f"{actions_url}/metrics", timeout=HEALTH_TIMEOUT_S)
        reply.raise_for_status()
        families = list(text_string_to_metric_families(reply.text))
    except (httpx.HTTPError, ValueError) as exc:
        return {
            "level": DegradationLevel.STATIC.label,
            "tenants": {},
            "reason": f"action server unavailable ({type(exc).__name__}): rules and static replies only",
        }
    levels = {
        sample.labels["tenant"]: DegradationLevel(int(sample.value))
        for family in families
        if family.name == "switchboard_degradation_level"
        for sample in family.samples
    }
    worst = max(levels.values(), default=DegradationLevel.FULL)
    return {
        "level": worst.label,
        "tenants": {tenant: level.label for tenant, level in sorted(levels.items())},
        "reason": "reported by the action server" if levels else "no knowledge turn answered yet",
    }


def create_app(
    config: GatewayConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    supervisor_state: Path | None = None,
    actions_url: str | None = None,
) -> FastAPI:
    """The gateway app for ``config``; ``transport`` replaces the network to the upstreams (tests).

    ``supervisor_state`` (the launcher's state file) and ``actions_url`` (the action server's base URL) add
    the services and the degradation level to ``/health``; the state file's restart counts are exported on
    ``/metrics`` too.
    """
    params = config.params
    if supervisor_state is not None:
        metrics.SUPERVISOR.state_file = supervisor_state
    authenticator = Authenticator(
        TokenKeys(config.jwt_secret, config.jwt_public_key),
        params.plans,
        audience=config.jwt_audience,
        issuer=config.jwt_issuer,
        api_keys=ApiKeyStore(get_engine(config.api_key_store_url), config.api_key_secret)
        if config.api_key_secret
        else None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(params.upstream_timeout_s, connect=params.connect_timeout_s)
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport) as client:
            app.state.pool = UpstreamPool(config.upstreams, client)
            app.state.canary_pool = (
                UpstreamPool(config.canary_upstreams, client) if config.canary_upstreams else None
            )
            logger.info(
                "gateway.started",
                upstreams=config.upstreams,
                storage=params.storage_url,
                plans=params.plans,
                tenant_limit=params.tenant_limit,
            )
            yield

    app = FastAPI(title="Switchboard gateway", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    openapi.publish(app)  # GET /openapi.json: the webhook's body, bearer token and every status it answers
    app.state.config = config
    app.state.limiter = RateLimiter(params)
    flags = Flags.from_params(config.flags)

    def variant_of(principal: Principal) -> str:
        """``challenger`` for the tenant's ``challenger_percent`` of users (sticky per user), else champion."""
        if not config.canary_upstreams:
            return CHAMPION
        percent = flags.percent("challenger_percent", principal.tenant)
        return choose_variant(
            principal.tenant, principal.user, percent, CHAMPION, CHALLENGER, salt="nlu-model"
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        """Last resort: a JSON 500 and a logged traceback, never a traceback to the client."""
        logger.exception("gateway.internal_error")
        return JSONResponse(
            {"error": "internal_error", "message": "The gateway failed to process the request."},
            status_code=500,
        )

    @app.post(WEBHOOK_PATH, **openapi.WEBHOOK)
    async def webhook(request: Request) -> JSONResponse:
        request_id = request_id_of(request)
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(
            correlation_id=request_id, tenant_id=None, user_id=None, api_key=None
        ):
            principal: Principal | None = None
            rate_headers: dict[str, str] = {}
            try:
                principal = await authenticator.authenticate(request.headers)
                structlog.contextvars.bind_contextvars(
                    tenant_id=principal.tenant,
                    user_id=principal.user or None,
                    api_key=principal.key_id or None,
                )
                body = await read_body(request, params.max_body_bytes)
                payload = parse_turn(body, config.max_message_chars)
                principal = principal.speaking_as(payload["sender"])
                structlog.contextvars.bind_contextvars(user_id=principal.user)
                decision = await app.state.limiter.check(
                    principal.tenant, principal.rate_subject, principal.plan
                )
                rate_headers = decision.headers()
                if not decision.allowed:
                    raise GatewayError(
                        429,
                        "rate_limited",
                        f"Too many messages for the {principal.plan} plan"
                        + (" (tenant ceiling)" if decision.scope == "tenant" else "")
                        + f": retry in {decision.retry_after} s.",
                    )
                headers = {
                    "Content-Type": "application/json",
                    "X-Tenant-Id": principal.tenant,
                    "X-Request-Id": request_id,
                    **channel_headers(config.channel_secret),
                }
                variant = variant_of(principal)
                if variant == CHALLENGER:
                    try:
                        reply = await app.state.canary_pool.forward(tagged(payload, variant), headers)
                    except GatewayError as exc:
                        if exc.status != 503:
                            raise
                        logger.warning("gateway.canary_unreachable", fallback=CHAMPION)
                        variant = CHAMPION
                        reply = await app.state.pool.forward(tagged(payload, variant), headers)
                else:
                    reply = await app.state.pool.forward(tagged(payload, variant), headers)
            except GatewayError as exc:
                metrics.GATEWAY_TURNS.labels(
                    principal.tenant if principal else "-",
                    str(exc.status),
                    principal.plan if principal else "-",
                    "-",
                ).inc()
                logger.info(
                    "gateway.turn.refused",
                    status=exc.status,
                    code=exc.code,
                    duration_ms=_ms(started),
                    plan=principal.plan if principal else None,
                )
                return error_response(exc, request_id, rate_headers)
            metrics.GATEWAY_TURNS.labels(principal.tenant, str(reply.status), principal.plan, variant).inc()
            metrics.GATEWAY_SECONDS.labels(variant).observe(time.perf_counter() - started)
            logger.info(
                "gateway.turn",
                status=reply.status,
                upstream=reply.upstream,
                attempts=reply.attempts,
                plan=principal.plan,
                model_variant=variant,
                duration_ms=_ms(started),
            )
            return JSONResponse(
                reply.body,
                status_code=reply.status,
                headers={"X-Request-Id": request_id, "X-Model-Variant": variant, **rate_headers},
            )

    @app.post("/webhooks/{channel}/webhook", **openapi.CHANNEL_WEBHOOK)
    async def channel_webhook(channel: str, request: Request) -> Response:
        request_id = request_id_of(request)
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(correlation_id=request_id, channel=channel):
            rate_headers: dict[str, str] = {}
            try:
                if channel not in openapi.CHANNEL_NAMES:
                    raise GatewayError(404, "unknown_channel", f"There is no channel {channel!r}.")
                body = await read_body(request, params.max_body_bytes)
                decision = await app.state.limiter.check_channel(channel)
                if not decision.allowed:
                    rate_headers = {"Retry-After": str(decision.retry_after)}
                    raise GatewayError(
                        429,
                        "rate_limited",
                        f"Too many {channel} requests: retry in {decision.retry_after} s.",
                    )
                headers = {name: request.headers[name] for name in VENDOR_HEADERS if name in request.headers}
                headers |= {"X-Request-Id": request_id, **channel_headers(config.channel_secret)}
                query = f"?{request.url.query}" if request.url.query else ""
                reply: RelayedReply = await app.state.pool.relay(request.url.path + query, body, headers)
                if reply.status == 404:
                    raise GatewayError(404, "channel_off", f"The bot does not serve the {channel} channel.")
            except GatewayError as exc:
                metrics.GATEWAY_TURNS.labels("-", str(exc.status), f"channel:{channel}", "-").inc()
                logger.info(
                    "gateway.channel.refused", status=exc.status, code=exc.code, duration_ms=_ms(started)
                )
                return error_response(exc, request_id, rate_headers)
            metrics.GATEWAY_TURNS.labels("-", str(reply.status), f"channel:{channel}", "-").inc()
            logger.info(
                "gateway.channel",
                status=reply.status,
                upstream=reply.upstream,
                attempts=reply.attempts,
                duration_ms=_ms(started),
            )
            back = {k: v for k, v in reply.headers.items() if k.lower() in RELAYED_BACK}
            return Response(
                reply.content, status_code=reply.status, headers={**back, "X-Request-Id": request_id}
            )

    @app.get("/metrics", **openapi.METRICS)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/health", **openapi.HEALTH)
    async def health() -> JSONResponse:
        """The gateway is up; ``ok`` when at least one upstream answers (else 503, so a balancer skips it).
        With the launcher's state file and the action server's URL: the services and the degradation level
        too (they do not change the status: a degraded bot still answers)."""
        pools = [app.state.pool] + ([app.state.canary_pool] if app.state.canary_pool is not None else [])
        checks = [pool.health() for pool in pools]
        if actions_url is not None:
            checks.append(degradation_status(app.state.pool.client, actions_url))
        results = await asyncio.gather(*checks)
        upstreams: dict[str, bool] = {}
        for reachable in results[: len(pools)]:
            upstreams |= reachable
        ok = any(upstreams.values())
        body: dict[str, Any] = {
            "status": "ok" if ok else "unavailable",
            "upstreams": [{"url": url, "reachable": up} for url, up in upstreams.items()],
        }
        if supervisor_state is not None:
            body["services"] = services_status(supervisor_state)
        if actions_url is not None:
            body["degradation"] = results[-1]
        return JSONResponse(body, status_code=200 if ok else 503)

    return app


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) more than ``max_bytes`` without reading it all into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise GatewayError(413, "body_too_large", f"The request body is larger than {max_bytes} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise GatewayError(413, "body_too_large", f"The request body is larger than {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
