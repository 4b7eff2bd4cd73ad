"""Four degradation levels (reference architecture) that follow failures by themselves, and recover by
themselves, unless an operator forces one with the ``degradation_level`` feature flag.

=============  ================================================================================
level          what the bot does
=============  ================================================================================
full           every handler, all model tiers
reduced        no LLM tiers: skills, extractive (tier 0) and cached knowledge answers
static         cached and static answers only: skills, the answer cache; no retrieval, no LLM
maintenance    acknowledge and take a message (handoff ticket); nothing else
=============  ================================================================================

Signals: every dependency reports its calls (:meth:`DegradationController.record`); its failure rate over a
sliding window (the ``limits`` library's sliding-window counters, in memory or shared through Redis) above
the dependency's ``error_rate`` (with at least ``min_calls`` calls) puts the bot at that dependency's level.
Circuit breakers count too: when every LLM tier's breaker is open, the level is at least ``reduced``. The
worst signal wins; when failures stop (successes dilute the rate, breakers close) the level comes back down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import structlog
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = structlog.get_logger(__name__)


class DegradationLevel(IntEnum):
    """Higher is more degraded."""

    FULL = 0
    REDUCED = 1
    STATIC = 2
    MAINTENANCE = 3

    @classmethod
    def parse(cls, value: str | DegradationLevel) -> DegradationLevel:
        """``"full"``, ``"reduced"``, ``"static"``, ``"maintenance"`` (any case) or a level."""
        if isinstance(value, DegradationLevel):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            names = ", ".join(level.name.lower() for level in cls)
            raise ValueError(f"unknown degradation level {value!r}: use one of {names} (or auto)") from None

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def max_tier(self) -> int | None:
        """Highest model tier allowed at this level (None: no knowledge answers beyond the cache)."""
        return {DegradationLevel.FULL: 2, DegradationLevel.REDUCED: 0}.get(self)


class DependencyRule(BaseModel):
    """When a dependency's failures push the bot to a level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: str
    error_rate: float = Field(0.5, gt=0, le=1)
    min_calls: int = Field(5, ge=1)

    def target(self) -> DegradationLevel:
        return DegradationLevel.parse(self.level)


class DegradationSettings(BaseModel):
    """``router.degradation`` in params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: int = Field(60, ge=1, description="sliding window of the failure rates")
    storage_url: str = Field("memory://", description="limits storage: memory:// or redis://host:port/db")
    storage_key_prefix: str = Field("switchboard:degradation", description="key prefix in a shared storage")
    llm_breaker_prefix: str = "llm:"
    dependencies: dict[str, DependencyRule] = Field(
        default_factory=lambda: {
            "llm": DependencyRule(level="reduced"),
            "knowledge": DependencyRule(level="static"),
            "store": DependencyRule(level="maintenance"),
        }
    )

    @classmethod
    def from_settings(cls, settings: Any) -> DegradationSettings:
        """``router.degradation`` of the settings' params.yaml, with ``SWITCHBOARD_DEGRADATION_STORAGE_URL``
        (``settings.degradation_storage_url``) over its ``storage_url`` when set."""
        result = settings.section("router.degradation", cls.from_params)
        if settings.degradation_storage_url:
            result = result.model_copy(update={"storage_url": settings.degradation_storage_url})
        return result

    @property
    def shared(self) -> bool:
        """Whether the windows live in a store every process shares (not ``memory://``)."""
        return not self.storage_url.startswith("memory://")

    @classmethod
    def from_params(cls, section: Mapping[str, Any] | None) -> DegradationSettings:
        try:
            settings = cls.model_validate(section or {})
            for rule in settings.dependencies.values():
                rule.target()
        except (ValidationError, ValueError) as exc:
            raise ValueError(f"invalid `router.degradation` section in params.yaml: {exc}") from exc
        return settings


@dataclass(frozen=True)
class LevelStatus:
    """The level in force, why, and whether an operator forced it."""

    level: DegradationLevel
    reason: str
    forced: bool = False


_LARGE = 10**9  # the counters' "limit": we only read counts, never block


class DegradationController:
    """Computes the degradation level from failure rates and breaker states; flags can force it.

    ``breaker_states`` returns ``{name: state}`` (default: the process's breaker registry); ``flag`` reads
    the ``degradation_level`` flag for a tenant (default: :func:`app.flags.get_flags`).
    """

    def __init__(
        self,
        settings: DegradationSettings | None = None,
        *,
        breaker_states: Callable[[str], Mapping[str, str]] | None = None,
        flag: Callable[[str | None], Any] | None = None,
    ) -> None:
        self.settings = settings or DegradationSettings()
        url = self.settings.storage_url
        storage = (
            MemoryStorage()
            if url == "memory://"
            else storage_from_string(url, key_prefix=self.settings.storage_key_prefix)
        )
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._item = RateLimitItemPerSecond(_LARGE, self.settings.window_s)
        if breaker_states is None:
            from app.reliability.breakers import breaker_states as registry_states

            breaker_states = registry_states
        self._breaker_states = breaker_states
        if flag is None:

            def flag(tenant: str | None) -> Any:
                from app.flags import get_flags

                return get_flags().get("degradation_level", tenant, default="auto")

        self._flag = flag
        self._last: dict[str | None, DegradationLevel] = {}
        self._lock = threading.Lock()

    def record(self, dependency: str, ok: bool) -> None:
        """Count one call of ``dependency`` (a key of ``settings.dependencies``) and whether it worked."""
        if dependency not in self.settings.dependencies:
            known = ", ".join(sorted(self.settings.dependencies))
            raise ValueError(f"unknown dependency {dependency!r}: configured are {known}")
        self._limiter.hit(self._item, "degradation", dependency, "all")
        if not ok:
            self._limiter.hit(self._item, "degradation", dependency, "failed")

    def failure_rate(self, dependency: str) -> tuple[float, int]:
        """(failure rate, calls) of ``dependency`` over the window."""
        calls = (
            _LARGE - self._limiter.get_window_stats(self._item, "degradation", dependency, "all").remaining
        )
        failed = (
            _LARGE - self._limiter.get_window_stats(self._item, "degradation", dependency, "failed").remaining
        )
        return (failed / calls if calls else 0.0), calls

    def automatic(self) -> LevelStatus:
        """The level the signals call for, ignoring flags."""
        level, reasons = DegradationLevel.FULL, []
        for name, rule in self.settings.dependencies.items():
            rate, calls = self.failure_rate(name)
            if calls >= rule.min_calls and rate >= rule.error_rate:
                reasons.append(f"{name} failing ({rate:.0%} of {calls} calls)")
                level = max(level, rule.target())
        llm = self._breaker_states(self.settings.llm_breaker_prefix)
        if llm and all(state == "open" for state in llm.values()):
            reasons.append(f"all LLM breakers open ({len(llm)})")
            level = max(level, DegradationLevel.REDUCED)
        return LevelStatus(level, "; ".join(reasons) or "all dependencies healthy")

    def status(self, tenant: str | None = None) -> LevelStatus:
        """The level in force for ``tenant``: the flag when it names a level, else :meth:`automatic`."""
        forced = str(self._flag(tenant) or "auto").strip().lower()
        if forced != "auto":
            level = DegradationLevel.parse(forced)
            result = LevelStatus(level, f"forced by flag degradation_level={level.label}", forced=True)
        else:
            result = self.automatic()
        with self._lock:
            previous = self._last.get(tenant)
            self._last[tenant] = result.level
        if previous is not None and previous != result.level:
            logger.warning("degradation.level_change", tenant_id=tenant, old=previous.label, new=result.level.label,
                           reason=result.reason, forced=result.forced)  # fmt: skip
        return result

    def level(self, tenant: str | None = None) -> DegradationLevel:
        return self.status(tenant).level
