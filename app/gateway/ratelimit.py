"""Per-plan rate limits (``limits``, moving window), per user and per tenant, in memory or in Redis.

Each turn counts against two limits: the user's (key ``tenant/user``, the amount set by the token's plan)
and the tenant's ceiling (key ``tenant``, all its users together), so one tenant's burst never eats another
tenant's budget and a tenant cannot multiply its budget with many user ids. The moving window counts every
hit of the last period exactly (no burst at window edges, as fixed windows allow).

With ``memory://`` the counters live in the process; with ``redis://`` every gateway process shares them
(``limits`` runs the moving window as a Lua script, so concurrent processes cannot both take the last slot).
If the storage fails (Redis down) the gateway lets the turn through and logs an error: the limits protect
capacity, and an outage of the counter store should not take the support chat down with it (auth is
still enforced).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from app.gateway.config import GatewayParams, parse_limit

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RateDecision:
    """Whether a turn may go ahead, with what the ``X-RateLimit-*`` and ``Retry-After`` headers say."""

    allowed: bool
    limit: int  # the user's plan amount per window
    remaining: int
    reset: int  # epoch seconds when the oldest counted turn leaves the window
    retry_after: int = 0  # seconds, when refused
    scope: str = "user"  # which limit refused: user | tenant | channel

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def async_storage_url(url: str) -> str:
    """``limits`` wants ``async+`` URLs for its asyncio storages; params.yaml uses the plain ones."""
    return url if url.startswith("async+") else f"async+{url}"


class RateLimiter:
    """Checks and counts turns against the plan's per-user limit and the tenant ceiling."""

    def __init__(self, params: GatewayParams) -> None:
        self.plans: dict[str, RateLimitItem] = {name: parse_limit(v) for name, v in params.plans.items()}
        self.tenant_item = parse_limit(params.tenant_limit)
        self.channel_item = parse_limit(params.channel_limit)
        url = async_storage_url(params.storage_url)
        options: dict[str, object] = {}
        if "redis" in url:
            # redis-py's asyncio client (a dependency already) instead of limits' default, coredis.
            options = {"implementation": "redispy", "key_prefix": params.key_prefix}
        self.storage = storage_from_string(url, **options)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.storage_url = params.storage_url

    async def check(self, tenant: str, user: str, plan: str) -> RateDecision:
        """Count one turn of ``user`` in ``tenant``, or refuse it (nothing counted) if a limit is reached."""
        item = self.plans[plan]
        try:
            # The tenant's ceiling is only tested (not counted) first, so a refused turn costs the user nothing.
            if not await self.limiter.test(self.tenant_item, "tenant", tenant):
                stats = await self.limiter.get_window_stats(self.tenant_item, "tenant", tenant)
                return self._refused(item, stats.reset_time, scope="tenant")
            if not await self.limiter.hit(item, "user", tenant, user):
                stats = await self.limiter.get_window_stats(item, "user", tenant, user)
                return self._refused(item, stats.reset_time, scope="user")
            await self.limiter.hit(self.tenant_item, "tenant", tenant)
            stats = await self.limiter.get_window_stats(item, "user", tenant, user)
        except Exception as exc:  # any storage failure: fail open, loudly (see the module docstring)
            logger.error("gateway.ratelimit.unavailable", storage=self.storage_url, error=repr(exc)[:300])
            return RateDecision(True, item.amount, item.amount, int(time.time()) + item.get_expiry())
        return RateDecision(True, item.amount, max(stats.remaining, 0), math.ceil(stats.reset_time))

    async def check_channel(self, channel: str) -> RateDecision:
        """Count one vendor webhook of ``channel`` against the channel's ceiling (all its tenants together:
        the gateway cannot trust a tenant or user before the channel has checked the vendor's signature)."""
        item = self.channel_item
        try:
            if not await self.limiter.hit(item, "channel", channel):
                stats = await self.limiter.get_window_stats(item, "channel", channel)
                return self._refused(item, stats.reset_time, scope="channel")
            stats = await self.limiter.get_window_stats(item, "channel", channel)
        except Exception as exc:  # as for turns: fail open, loudly
            logger.error("gateway.ratelimit.unavailable", storage=self.storage_url, error=repr(exc)[:300])
            return RateDecision(True, item.amount, item.amount, int(time.time()) + item.get_expiry())
        return RateDecision(
            True, item.amount, max(stats.remaining, 0), math.ceil(stats.reset_time), scope="channel"
        )

    def _refused(self, item: RateLimitItem, reset_time: float, scope: str) -> RateDecision:
        retry_after = max(1, math.ceil(reset_time - time.time()))
        return RateDecision(False, item.amount, 0, math.ceil(reset_time), retry_after, scope)

    async def reset(self) -> None:
        """Forget every counter (tests)."""
        await self.storage.reset()
