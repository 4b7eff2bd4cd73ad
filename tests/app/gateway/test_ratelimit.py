"""Rate limits on their own (memory and real Redis storage) and two gateways sharing Redis counters.

The Redis tests use the test database (tests/app/conftest.py: skip without Redis, fail under CI=true) and a
key prefix of their own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from app.gateway.config import GatewayParams
from app.gateway.ratelimit import RateLimiter, async_storage_url
from tests.app.gateway.conftest import auth, make_config, turn
from tests.conftest import free_port


def hits(limiter: RateLimiter, n: int, tenant: str = "acme", user: str = "alice", plan: str = "free"):
    async def run():
        return [await limiter.check(tenant, user, plan) for _ in range(n)]

    return asyncio.run(run())


def test_memory_moving_window_refuses_after_the_limit_with_retry_after():
    limiter = RateLimiter(GatewayParams(plans={"free": "3/minute"}, tenant_limit="100/minute"))
    decisions = hits(limiter, 4)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.scope == "user" and 1 <= refused.retry_after <= 60
    assert refused.headers()["Retry-After"] == str(refused.retry_after)
    assert "Retry-After" not in decisions[0].headers()


def test_memory_window_moves_on():
    limiter = RateLimiter(GatewayParams(plans={"free": "2/second"}, tenant_limit="100/minute"))
    assert [d.allowed for d in hits(limiter, 3)] == [True, True, False]
    time.sleep(1.1)
    assert hits(limiter, 1)[0].allowed


def test_a_refused_tenant_turn_costs_the_user_nothing():
    limiter = RateLimiter(GatewayParams(plans={"free": "5/minute"}, tenant_limit="2/minute"))
    hits(limiter, 2, user="u1")
    refused = hits(limiter, 1, user="u2")[0]
    assert not refused.allowed and refused.scope == "tenant"
    assert hits(limiter, 1, tenant="globex", user="u2")[0].remaining == 4  # u2 of globex: own counter


def test_async_storage_url():
    assert async_storage_url("memory://") == "async+memory://"
    assert async_storage_url("async+redis://h:1/0") == "async+redis://h:1/0"


def redis_params(redis_url: str, prefix: str, **kw) -> GatewayParams:
    return GatewayParams(storage_url=redis_url, key_prefix=prefix, **kw)


def test_redis_storage_counts_across_limiters_under_our_prefix(redis_url, redis_prefix):
    """Two limiters (two gateway processes) on one Redis share the user's window."""
    params = redis_params(redis_url, redis_prefix, plans={"free": "3/minute"}, tenant_limit="100/minute")
    first, second = RateLimiter(params), RateLimiter(params)
    assert [d.allowed for d in hits(first, 2)] == [True, True]
    assert [d.allowed for d in hits(second, 2)] == [True, False]
    assert hits(second, 1, tenant="globex")[0].allowed  # another tenant: its own key

    client = redis.Redis.from_url(redis_url)
    keys = [k.decode() for k in client.scan_iter(match=f"{redis_prefix}:*")]
    client.close()
    assert keys and all(k.startswith(f"{redis_prefix}:") for k in keys)
    assert any("acme" in k and "alice" in k for k in keys)


def test_two_gateways_on_redis_share_the_plan_limit(gateway, redis_url, redis_prefix):
    config = make_config(storage_url=redis_url, key_prefix=redis_prefix, plans={"free": "4/minute"})
    first, second = gateway(config), gateway(config)
    free = auth(sub="fay", plan="free")
    codes = [turn(client, "fay", free).status_code for client in (first, second, first, second, first)]
    assert codes == [200, 200, 200, 200, 429]


def test_unreachable_redis_fails_open():
    """Counters unavailable: the turn goes through (auth still applies) and the failure is logged."""
    port = free_port()
    limiter = RateLimiter(
        GatewayParams(storage_url=f"redis://127.0.0.1:{port}/0", plans={"free": "1/minute"})
    )
    decisions = hits(limiter, 2)
    assert [d.allowed for d in decisions] == [True, True]


@pytest.mark.parametrize("plan", ["free", "pro", "enterprise"])
def test_every_default_plan_has_its_own_amount(plan):
    limiter = RateLimiter(GatewayParams())
    assert hits(limiter, 1, plan=plan)[0].limit == {"free": 10, "pro": 60, "enterprise": 600}[plan]
