"""The gateway's OpenAPI description, published at ``GET /openapi.json`` (so it can be fuzzed like the rest).

The webhook reads its body itself (bad input must cost no Rasa call and get the REST channel's error codes),
so FastAPI cannot infer the request body: it is declared here from :class:`Turn`, with the bearer token and
every status the webhook answers. Every refusal has the REST channel's shape ``{"error", "message"}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from app.identity import ID_PATTERN

BEARER = "bearerAuth"


class Turn(BaseModel):
    """A user's message, as the REST channel takes it; ``sender`` must be the token's user (``sub``)."""

    model_config = ConfigDict(extra="allow")

    sender: str = Field(pattern=ID_PATTERN.pattern, examples=["alice"])
    message: str = Field(
        min_length=1,
        pattern=r"\S",
        description="non-blank, at most max_message_chars characters (413 beyond)",
    )
    metadata: dict[str, Any] | None = Field(default_factory=dict)


class BotMessage(BaseModel):
    """One message of the bot's answer (Rasa's collecting output channel)."""

    model_config = ConfigDict(extra="allow")

    recipient_id: str = Field(description="<tenant>:<sender>")
    text: str | None = None
    buttons: list[dict[str, Any]] | None = None
    image: str | None = None
    custom: Any = None


class Error(BaseModel):
    """A refused turn: a machine-readable code and a message for people."""

    error: str = Field(examples=["rate_limited"])
    message: str


class UpstreamHealth(BaseModel):
    url: str
    reachable: bool


class ServiceHealth(BaseModel):
    state: str = Field(
        description="starting, running, backoff (restarting after a crash), gave_up or stopped"
    )
    restarts: int = Field(description="restarts by the launcher's supervisor in this launcher run")
    last_exit_code: int | None = None
    last_restart_at: str | None = None


class Degradation(BaseModel):
    level: str = Field(description="full, reduced, static or maintenance (the worst of the tenants)")
    tenants: dict[str, str]
    reason: str


class Health(BaseModel):
    status: str = Field(description="ok, or unavailable when no Rasa server answers")
    upstreams: list[UpstreamHealth]
    services: dict[str, ServiceHealth] | None = Field(
        None, description="the launcher's services (when the gateway runs under it)"
    )
    degradation: Degradation | None = Field(
        None, description="the level the bot serves at (when the gateway knows the action server)"
    )


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


REQUEST_ID = {"X-Request-Id": _header("the client's id when it is a plain id, else a new one")}


def _error(description: str, **headers: str) -> dict[str, Any]:
    return {
        "model": Error,
        "description": description,
        "headers": {**REQUEST_ID, **{name.replace("_", "-"): _header(h) for name, h in headers.items()}},
    }


WEBHOOK: dict[str, Any] = {
    "summary": "Send a user's message to the bot",
    "response_model": list[BotMessage],
    "responses": {
        200: {
            "description": "the bot's messages",
            "headers": {**REQUEST_ID, "X-Model-Variant": _header("champion or challenger")},
        },
        400: _error("malformed JSON, not an object, bad sender, empty message or bad metadata"),
        401: _error("no, malformed, expired or badly signed bearer token", WWW_Authenticate="Bearer"),
        403: _error("sender is not the token's user, or the token's plan is unknown"),
        413: _error("body larger than max_body_bytes, or message longer than max_message_chars"),
        429: _error(
            "rate limit of the plan or the tenant",
            Retry_After="seconds",
            X_RateLimit_Limit="requests per window",
            X_RateLimit_Remaining="requests left",
            X_RateLimit_Reset="when the window resets",
        ),
        502: _error("the bot's connection failed or its reply was not usable"),
        503: _error(
            "no bot server is reachable, the gateway is busy, or the conversation store cannot take the turn (Retry-After: send it again)"
        ),
        504: _error("the bot took too long to answer"),
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": Turn.model_json_schema()}},
        },
        "security": [{BEARER: []}],
    },
}

CHANNEL_NAMES = ("slack", "botframework", "twilio", "twilio_voice")

CHANNEL_WEBHOOK: dict[str, Any] = {
    "summary": "A vendor's webhook (Slack, Microsoft Teams, Twilio SMS and voice), relayed to the bot's channel",
    "description": "Authenticated by the vendor's own signature, which the bot's channel checks (the gateway "
    "relays the body and the headers it is computed over unchanged). Register "
    "`<public URL>/webhooks/<channel>/webhook` with the vendor (README, Channels).",
    "responses": {
        200: {
            "description": "the channel's answer: JSON for Slack and Teams, TwiML (text/xml) for Twilio",
            "headers": REQUEST_ID,
        },
        400: _error("malformed body or missing fields"),
        401: _error("bad Slack signature or Teams token, or a wrong channel secret"),
        403: _error("bad Twilio signature, or a workspace, Microsoft tenant, account or number of no tenant"),
        404: _error("no such channel, or the channel is not configured on the bot"),
        413: _error("body larger than max_body_bytes, or message longer than max_message_chars"),
        415: _error("a content type the vendor does not send"),
        429: _error("the channel's rate limit", Retry_After="seconds"),
        502: _error("the bot's connection failed or it failed to handle the request"),
        503: _error("no bot server is reachable, the gateway is busy, or Microsoft's keys are unavailable"),
        504: _error("the bot took too long to answer"),
    },
    "openapi_extra": {
        "parameters": [
            {"name": "channel", "in": "path", "required": True, "schema": {"enum": list(CHANNEL_NAMES)}}
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            },
        },
    },
}

HEALTH: dict[str, Any] = {
    "response_model": Health,
    "responses": {503: {"model": Health, "description": "no Rasa server answers"}},
}

METRICS: dict[str, Any] = {
    "responses": {200: {"description": "Prometheus metrics", "content": {"text/plain": {}}}},
}


def publish(app: FastAPI) -> None:
    """Serve the description with the bearer scheme (``/openapi.json``), generated once, on first request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
