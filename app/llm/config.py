"""The ``tiers`` section of params.yaml: one OpenAI-compatible endpoint per LLM tier, prices and limits.

Example (``params.yaml``)::

    tiers:
      retry: {attempts: 3, wait_initial_s: 0.5, wait_max_s: 4.0}
      breaker: {fail_max: 3, reset_timeout_s: 30}
      endpoints:
        1: {base_url: http://127.0.0.1:8000/v1, model: small, price_in_per_1k: 0.00015,
            price_out_per_1k: 0.0006, timeout_s: 10, api_key_env: SWITCHBOARD_TIER1_API_KEY}
        2: {base_url: ..., model: large, ...}

A tier without an entry (or with an empty ``base_url``) is unavailable: the bot still answers with the tiers
it has. API keys never live in params.yaml: ``api_key_env`` names the environment variable (or ``.env`` entry)
that holds one. The section comes from ``get_settings().section("tiers", TiersConfig)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.settings import get_settings, validate_section

#: Tier numbers: 0 extractive (no LLM), 1 small LLM, 2 large LLM.
EXTRACTIVE, SMALL, LARGE = 0, 1, 2
TIERS = (EXTRACTIVE, SMALL, LARGE)
LLM_TIERS = (SMALL, LARGE)


class TierConfig(BaseModel):
    """One LLM tier's endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(min_length=1)
    price_in_per_1k: Decimal = Field(Decimal(0), ge=0, description="price per 1000 prompt tokens")
    price_out_per_1k: Decimal = Field(Decimal(0), ge=0, description="price per 1000 completion tokens")
    timeout_s: float = Field(10.0, gt=0, le=600)
    max_tokens: int = Field(400, ge=1)
    api_key_env: str = Field("", description="environment variable holding the API key (may be empty)")

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {value!r}")
        return value.rstrip("/")

    @property
    def endpoint(self) -> str:
        """What the circuit breaker guards: one model at one base URL."""
        return f"{self.base_url}#{self.model}"

    def api_key(self) -> str:
        """The API key from the environment or ``.env``; local servers accept any, so a placeholder when unset."""
        return get_settings().secret(self.api_key_env) or "not-needed"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """Price of one call with this usage."""
        return (self.price_in_per_1k * prompt_tokens + self.price_out_per_1k * completion_tokens) / 1000


class RetryConfig(BaseModel):
    """Retries of retryable errors (429, 5xx, timeouts, connection errors): bounded, exponential backoff."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(3, ge=1, le=10, description="total attempts, the first one included")
    wait_initial_s: float = Field(0.5, ge=0)
    wait_max_s: float = Field(4.0, ge=0)
    honour_retry_after: bool = Field(True, description="wait at least Retry-After (capped by wait_max_s)")


class BreakerConfig(BaseModel):
    """The circuit breaker of each endpoint (pybreaker)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_max: int = Field(3, ge=1, description="consecutive failed calls (after retries) that open it")
    reset_timeout_s: float = Field(30.0, gt=0, description="how long it stays open before one trial call")


class GroundingConfig(BaseModel):
    """How LLM answers are checked against the excerpts they were given (``knowledge.grounding.validate``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="cited excerpts must exist, numbers and most words come from them"
    )
    min_grounding: float = Field(
        0.6, ge=0, le=1, description="share of the answer's words found in its sources"
    )
    max_answer_chars: int = Field(800, ge=50)


class TiersConfig(BaseModel):
    """The whole ``tiers`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: dict[int, TierConfig] = Field(default_factory=dict)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    policy: dict[str, Any] = Field(default_factory=dict, description="app.llm.policy.build_policy reads it")
    grounding: GroundingConfig = Field(default_factory=GroundingConfig)
    function_calling: bool = Field(
        default=True, description="offer the read-only tools of app.tools to the LLM tiers"
    )
    max_tool_rounds: int = Field(default=2, ge=1, le=5)

    @field_validator("endpoints", mode="before")
    @classmethod
    def _drop_unconfigured(cls, value: Any) -> Any:
        """``None`` entries and entries with an empty ``base_url`` mean "tier not available"."""
        if not isinstance(value, dict):
            return value
        return {k: v for k, v in value.items() if v and (not isinstance(v, dict) or v.get("base_url"))}

    @field_validator("endpoints")
    @classmethod
    def _check_tiers(cls, value: dict[int, TierConfig]) -> dict[int, TierConfig]:
        bad = sorted(set(value) - set(LLM_TIERS))
        if bad:
            raise ValueError(f"LLM tiers are {list(LLM_TIERS)} (tier 0 needs no endpoint), not {bad}")
        return value

    def available(self) -> list[int]:
        """Tiers that can answer: 0 always, 1 and 2 when configured."""
        return [EXTRACTIVE, *sorted(self.endpoints)]


def load_tiers_config(section: Mapping[str, Any] | None) -> TiersConfig:
    """Validate a ``tiers`` section given as a mapping; a clear ValueError when invalid. The section of
    params.yaml itself: ``get_settings().section("tiers", TiersConfig)``."""
    return validate_section("tiers", TiersConfig, section)
