"""LLM test helpers: tier configs pointing at the test server, a fresh breaker registry per test."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from app.llm.client import CallContext, CallRecord
from app.llm.config import BreakerConfig, RetryConfig, TierConfig
from app.reliability.breakers import reset_breakers
from tests.llm_server import LLMTestServer

CTX = CallContext(tenant_id="acme", user_id="alice", conversation_id="acme:alice")
PRICES = {1: (Decimal("0.5"), Decimal("1.5")), 2: (Decimal("5"), Decimal("15"))}
MODELS = {1: "small", 2: "large"}


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    """Breakers are process-wide; every test starts with none."""
    reset_breakers()
    yield
    reset_breakers()


def tier_config(llm: LLMTestServer, tier: int, **overrides) -> TierConfig:
    price_in, price_out = PRICES[tier]
    values = {
        "base_url": llm.base_url,
        "model": MODELS[tier],
        "price_in_per_1k": price_in,
        "price_out_per_1k": price_out,
        "timeout_s": 5.0,
    }
    values.update(overrides)
    return TierConfig(**values)


FAST_RETRY = RetryConfig(attempts=3, wait_initial_s=0.01, wait_max_s=0.05)
BREAKER = BreakerConfig(fail_max=2, reset_timeout_s=60)


class ListSink:
    """Collects call records in memory."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)

    @property
    def outcomes(self) -> list[tuple[int, str]]:
        return [(c.tier, c.outcome) for c in self.calls]
