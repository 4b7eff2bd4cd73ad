"""Prometheus metrics: tool calls, LLM calls and breaker states show up with the right labels."""

from __future__ import annotations

import contextlib

from pydantic import BaseModel, ConfigDict

from app.observability import metrics
from app.reliability.breakers import get_breaker, reset_breakers
from app.tools import Tool, ToolContext, ToolError, ToolRegistry, ToolUnavailable


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_tool_calls_are_counted_by_outcome_and_timed():
    def handler(ctx, args):
        if args.key == "down":
            raise ToolUnavailable("down")
        return {"ok": True}

    registry = ToolRegistry([Tool("metrics_probe", "probe", Args, handler, breaker="metrics-test")])
    ok_before = value("switchboard_tool_calls_total", tool="metrics_probe", outcome="ok")
    down_before = value("switchboard_tool_calls_total", tool="metrics_probe", outcome="unavailable")
    ctx = ToolContext("acme", "alice")
    registry.call("metrics_probe", {"key": "x"}, ctx)
    with contextlib.suppress(ToolError):
        registry.call("metrics_probe", {"key": "down"}, ctx)
    assert value("switchboard_tool_calls_total", tool="metrics_probe", outcome="ok") == ok_before + 1
    assert (
        value("switchboard_tool_calls_total", tool="metrics_probe", outcome="unavailable") == down_before + 1
    )
    assert value("switchboard_tool_seconds_count", tool="metrics_probe") >= 1
    reset_breakers("metrics-test")


def test_breaker_states_and_degradation_levels_are_read_at_scrape_time():
    breaker = get_breaker("metrics-breaker", fail_max=1, reset_timeout_s=60)
    assert value("switchboard_breaker_state", breaker="metrics-breaker") == 0
    with contextlib.suppress(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert value("switchboard_breaker_state", breaker="metrics-breaker") == 2
    metrics.STATE.levels = lambda: {"acme": 1}
    try:
        assert value("switchboard_degradation_level", tenant="acme") == 1
    finally:
        metrics.STATE.levels = None
        reset_breakers("metrics-breaker")
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain") and b"switchboard_llm_calls_total" in body
