"""Degradation levels: they follow failures, recover by themselves, and flags can force them."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from app.flags import Flags
from app.reliability.breakers import breaker_states, effective_state, get_breaker, reset_breakers
from app.reliability.degradation import DegradationController, DegradationLevel, DegradationSettings


def controller(
    breakers: dict[str, str] | None = None, flag: str = "auto", **settings
) -> DegradationController:
    return DegradationController(
        DegradationSettings(**settings),
        breaker_states=lambda prefix: {k: v for k, v in (breakers or {}).items() if k.startswith(prefix)},
        flag=lambda tenant: flag,
    )


def fail(c: DegradationController, dependency: str, n: int, ok: bool = False) -> None:
    for _ in range(n):
        c.record(dependency, ok)


@pytest.mark.parametrize(
    ("dependency", "level"),
    [
        ("llm", DegradationLevel.REDUCED),
        ("knowledge", DegradationLevel.STATIC),
        ("store", DegradationLevel.MAINTENANCE),
    ],
)
def test_failures_move_the_level_and_successes_bring_it_back(
    dependency: str, level: DegradationLevel
) -> None:
    c = controller()
    assert c.level() is DegradationLevel.FULL
    fail(c, dependency, 4)
    assert c.level() is DegradationLevel.FULL  # under min_calls (5): not enough evidence yet
    fail(c, dependency, 1)
    status = c.status()
    assert status.level is level and not status.forced
    assert f"{dependency} failing (100% of 5 calls)" in status.reason
    fail(c, dependency, 6, ok=True)  # 5 of 11 failed: under the 50% rate
    assert c.level() is DegradationLevel.FULL


def test_the_worst_signal_wins() -> None:
    c = controller()
    fail(c, "llm", 5)
    fail(c, "knowledge", 5)
    assert c.level() is DegradationLevel.STATIC
    fail(c, "knowledge", 10, ok=True)
    assert c.level() is DegradationLevel.REDUCED


def test_all_llm_breakers_open_means_reduced() -> None:
    breakers = {"llm:a#small": "open", "llm:a#large": "closed", "crm": "open"}
    c = controller(breakers)
    assert c.level() is DegradationLevel.FULL
    breakers["llm:a#large"] = "open"
    status = c.status()
    assert status.level is DegradationLevel.REDUCED and "all LLM breakers open (2)" in status.reason
    breakers["llm:a#large"] = "half-open"  # a trial call is allowed again
    assert c.level() is DegradationLevel.FULL


def test_a_flag_forces_the_level_per_tenant() -> None:
    flags = Flags(
        defaults={"degradation_level": "auto"},
        tenants={"globex": {"degradation_level": "maintenance"}},
        env={},
    )
    c = DegradationController(
        DegradationSettings(), breaker_states=lambda p: {}, flag=lambda t: flags.get("degradation_level", t)
    )
    assert c.level("acme") is DegradationLevel.FULL
    status = c.status("globex")
    assert status.level is DegradationLevel.MAINTENANCE and status.forced
    assert c.status("acme").reason == "all dependencies healthy"


def test_a_forced_level_wins_over_the_signals() -> None:
    c = controller(flag="full")
    fail(c, "store", 10)
    assert c.status().level is DegradationLevel.FULL and c.status().forced
    assert c.automatic().level is DegradationLevel.MAINTENANCE


def test_level_changes_are_logged() -> None:
    c = controller()
    c.level("acme")
    with capture_logs() as logs:
        fail(c, "llm", 5)
        c.level("acme")
        c.level("acme")
    changes = [e for e in logs if e["event"] == "degradation.level_change"]
    assert len(changes) == 1
    assert (changes[0]["old"], changes[0]["new"], changes[0]["tenant_id"]) == ("full", "reduced", "acme")


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown dependency"):
        controller().record("crm", False)
    with pytest.raises(ValueError, match="unknown degradation level"):
        controller(flag="panic").level()
    with pytest.raises(ValueError, match="router.degradation"):
        DegradationSettings.from_params({"dependencies": {"llm": {"level": "sometimes"}}})
    assert DegradationLevel.parse("Static") is DegradationLevel.STATIC


def test_the_default_flag_reader_uses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    c = DegradationController(DegradationSettings(), breaker_states=lambda p: {})
    monkeypatch.setenv("SWITCHBOARD_FLAG_DEGRADATION_LEVEL", "static")
    assert c.status("acme").level is DegradationLevel.STATIC
    monkeypatch.setenv("SWITCHBOARD_FLAG_DEGRADATION_LEVEL__ACME", "auto")
    assert c.status("acme").level is DegradationLevel.FULL


def test_shared_failure_rates_through_redis(redis_url: str, redis_prefix: str) -> None:
    """Two controllers (two workers) on one Redis see each other's failures."""
    settings = DegradationSettings(storage_url=redis_url, storage_key_prefix=redis_prefix)
    a = DegradationController(settings, breaker_states=lambda p: {}, flag=lambda t: "auto")
    b = DegradationController(settings, breaker_states=lambda p: {}, flag=lambda t: "auto")
    fail(a, "llm", 5)
    assert b.level() is DegradationLevel.REDUCED
    fail(b, "llm", 10, ok=True)
    assert a.level() is DegradationLevel.FULL


def test_breaker_registry() -> None:
    reset_breakers("test:")
    breaker = get_breaker("test:crm", fail_max=1, reset_timeout_s=3600)
    assert get_breaker("test:crm") is breaker
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert breaker_states("test:") == {"test:crm": "open"}
    assert effective_state(breaker) == "open"
    reset_breakers("test:")
    assert breaker_states("test:") == {}
