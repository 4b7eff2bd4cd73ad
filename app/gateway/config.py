"""The gateway's configuration: the ``gateway`` section of params.yaml plus secrets and URLs from Settings.

Secrets never come from params.yaml (a tracked file): the HS256 key is ``SWITCHBOARD_JWT_SECRET`` and the
optional RS256 public key is read from the file named by ``SWITCHBOARD_JWT_PUBLIC_KEY_FILE``. API keys are
accepted when ``SWITCHBOARD_API_KEY_SECRET`` (the key of their stored hashes) is set; they are looked up in
our stores (``SWITCHBOARD_DATABASE_URL``). ``SWITCHBOARD_CHANNEL_SECRET`` is sent to Rasa's REST channel with
every turn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from limits import RateLimitItem, parse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.channels.settings import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_MESSAGE_CHARS
from app.settings import ServeParams, Settings, validate_section, validation_errors

MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash output
T = TypeVar("T")
MIN_CHANNEL_SECRET_BYTES = 16


class ConfigError(ValueError):
    """The gateway cannot run with this configuration; the message says what to fix."""


def parse_limit(text: str) -> RateLimitItem:
    """A ``limits`` rate string ("10/minute", "100 per hour") as an item; ``ConfigError`` if unreadable."""
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(f"invalid rate limit {text!r}: use e.g. '10/minute' or '600 per hour'") from exc


class GatewayParams(BaseModel):
    """``gateway`` in params.yaml: plans and their limits, storage, timeouts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plans: dict[str, str] = Field(
        default_factory=lambda: {"free": "10/minute", "pro": "60/minute", "enterprise": "600/minute"},
        description="plan name -> turns per user (tenant + user id), moving window",
    )
    tenant_limit: str = Field("1200/minute", description="ceiling per tenant, all users together")
    channel_limit: str = Field("1200/minute", description="vendor webhooks per channel, all tenants together")
    storage_url: str = Field("memory://", description="limits storage: memory:// or redis://host:port/db")
    key_prefix: str = "switchboard:gateway"
    connect_timeout_s: float = Field(2.0, gt=0)
    upstream_timeout_s: float = Field(30.0, gt=0)
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024)
    demo_plan: str = "pro"

    @field_validator("plans")
    @classmethod
    def _plans_parse(cls, plans: dict[str, str]) -> dict[str, str]:
        if not plans:
            raise ValueError("at least one plan is needed")
        for limit in plans.values():
            parse_limit(limit)
        return plans

    @field_validator("tenant_limit", "channel_limit")
    @classmethod
    def _limit_parses(cls, limit: str) -> str:
        parse_limit(limit)
        return limit


class GatewayConfig(BaseModel):
    """Everything a gateway process needs; built by :meth:`from_settings` (or directly in tests)."""

    model_config = ConfigDict(frozen=True)

    params: GatewayParams = Field(default_factory=GatewayParams)
    upstreams: list[str]
    jwt_secret: str = Field("", repr=False)
    jwt_public_key: str = Field("", repr=False)  # PEM text
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    canary_upstreams: list[str] = Field(default_factory=list)  # the challenger model's Rasa servers
    flags: dict[str, Any] = Field(default_factory=dict)  # params.yaml `flags`: challenger_percent per tenant
    # security (docs/gateway.md): token audience/issuer, API keys, the secret Rasa's channel expects
    jwt_audience: str = ""
    jwt_issuer: str = ""
    api_key_secret: str = Field("", repr=False)  # empty: API keys are refused
    api_key_store_url: str = ""  # our stores, where the api_keys table is
    channel_secret: str = Field("", repr=False)  # sent as X-Channel-Secret to every upstream

    @field_validator("upstreams")
    @classmethod
    def _some_upstreams(cls, urls: list[str]) -> list[str]:
        cleaned = [u.rstrip("/") for u in urls if u.strip()]
        if not cleaned:
            raise ValueError("at least one upstream Rasa URL is needed")
        for url in cleaned:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"upstream {url!r} is not an http(s) URL")
        return cleaned

    @model_validator(mode="after")
    def _has_a_key(self) -> GatewayConfig:
        if not self.jwt_secret and not self.jwt_public_key and not self.api_key_secret:
            raise ValueError(
                "no token key: set SWITCHBOARD_JWT_SECRET (HS256, at least 32 bytes) "
                "or SWITCHBOARD_JWT_PUBLIC_KEY_FILE (RS256) or SWITCHBOARD_API_KEY_SECRET (API keys)"
            )
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"SWITCHBOARD_JWT_SECRET is too short: use at least {MIN_SECRET_BYTES} bytes")
        if self.api_key_secret and len(self.api_key_secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"SWITCHBOARD_API_KEY_SECRET is too short: use at least {MIN_SECRET_BYTES} bytes"
            )
        if self.api_key_secret and not self.api_key_store_url:
            raise ValueError("API keys need a store: set SWITCHBOARD_DATABASE_URL")
        if self.channel_secret and len(self.channel_secret.encode()) < MIN_CHANNEL_SECRET_BYTES:
            raise ValueError(
                f"SWITCHBOARD_CHANNEL_SECRET is too short: use at least {MIN_CHANNEL_SECRET_BYTES} bytes"
            )
        return self

    @classmethod
    def from_settings(cls, settings: Settings, upstreams: list[str] | None = None) -> GatewayConfig:
        """The gateway's configuration from Settings (env) and ``params_file``; ``ConfigError`` if invalid."""
        params = gateway_params(settings)
        serve = _section(settings, "serve", ServeParams)
        flags = _section(settings, "flags", dict)
        if settings.gateway_storage_url:
            params = params.model_copy(update={"storage_url": settings.gateway_storage_url})
        public_key = ""
        if settings.jwt_public_key_file:
            try:
                public_key = Path(settings.jwt_public_key_file).read_text()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the JWT public key {settings.jwt_public_key_file}: {exc}"
                ) from exc
        try:
            return cls(
                params=params,
                upstreams=upstreams or settings.upstream_urls,
                jwt_secret=settings.jwt_secret.get_secret_value(),
                jwt_public_key=public_key,
                max_message_chars=serve.max_message_chars,
                canary_upstreams=settings.canary_upstream_urls,
                flags=flags,
                jwt_audience=settings.jwt_audience,
                jwt_issuer=settings.jwt_issuer,
                api_key_secret=settings.api_key_secret.get_secret_value(),
                api_key_store_url=settings.db_url,
                channel_secret=settings.channel_secret.get_secret_value(),
            )
        except ValidationError as exc:
            raise ConfigError(f"invalid gateway configuration: {validation_errors(exc)}") from exc


def gateway_params(settings: Settings) -> GatewayParams:
    """The ``gateway`` section of ``settings.params_file``; ``ConfigError`` if unreadable or invalid."""
    return _section(settings, "gateway", GatewayParams)


def _section(settings: Settings, name: str, model: type[T] | Callable[[dict[str, Any]], T]) -> T:
    """A params.yaml section through the settings' reader, its problems as ``ConfigError``."""
    try:
        return settings.section(name, model)
    except ConfigError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read {settings.params_file}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # not YAML, or an invalid section: the message names the file and section
        raise ConfigError(str(exc)) from exc


def load_params(section: dict[str, Any] | None) -> GatewayParams:
    """The ``gateway`` params section, validated; ``ConfigError`` names the bad key."""
    try:
        return validate_section("gateway", GatewayParams, section)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
