"""Prometheus metrics of the action server and the gateway (``GET /metrics`` on each), with the official
``prometheus_client``. Each process exposes the metrics it updates (the same registry module everywhere).

What operators watch: turns per action and their run time, the router's decisions per handler, knowledge
answers per tier (and from the cache), tool calls and their latency, LLM calls, tokens and cost per tier and
model, and - read at scrape time - the circuit breakers and the degradation level. The gateway also exports
the launcher's supervisor (``switchboard_service_restarts_total{service}``, ``switchboard_service_up``),
read from the supervisor's state file at scrape time: the launcher itself serves no HTTP.

Labels stay low-cardinality: tenants (a handful per deployment), handlers, tiers, tools, models; never user
or conversation ids (those are in the JSON logs, with the correlation id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

ACTION_SECONDS = Histogram(
    "switchboard_action_seconds",
    "Run time of custom actions",
    ["action", "outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
ROUTER_DECISIONS = Counter(
    "switchboard_router_decisions_total", "Router decisions", ["tenant", "handler", "rule"], registry=REGISTRY
)
KNOWLEDGE_ANSWERS = Counter(
    "switchboard_knowledge_answers_total",
    "Knowledge turns by how they were answered (tier0/tier1/tier2/cache/idk/unavailable)",
    ["tenant", "source"],
    registry=REGISTRY,
)
TOOL_CALLS = Counter(
    "switchboard_tool_calls_total",
    "Tool calls by outcome (ok or the ToolError reason)",
    ["tool", "outcome"],
    registry=REGISTRY,
)
TOOL_SECONDS = Histogram(
    "switchboard_tool_seconds",
    "Latency of answered tool calls",
    ["tool"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
LLM_CALLS = Counter(
    "switchboard_llm_calls_total", "LLM calls by outcome", ["tier", "model", "outcome"], registry=REGISTRY
)
LLM_TOKENS = Counter(
    "switchboard_llm_tokens_total", "LLM tokens", ["tier", "model", "kind"], registry=REGISTRY
)
LLM_COST = Counter(
    "switchboard_llm_cost_total", "LLM cost in the configured currency", ["tier", "model"], registry=REGISTRY
)
LLM_SECONDS = Histogram(
    "switchboard_llm_seconds",
    "LLM call latency including retries",
    ["tier", "model"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

GATEWAY_TURNS = Counter(
    "switchboard_gateway_turns_total",
    "Turns through the gateway by HTTP status, plan and model variant",
    ["tenant", "status", "plan", "variant"],
    registry=REGISTRY,
)
GATEWAY_SECONDS = Histogram(
    "switchboard_gateway_seconds",
    "Gateway turn latency (auth, limits, upstream)",
    ["variant"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


class _StateCollector(Collector):
    """Breaker states and degradation levels, read when Prometheus scrapes (never stale)."""

    def __init__(self) -> None:
        self.levels: Callable[[], dict[str, int]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from app.reliability.breakers import breaker_states

        breakers = GaugeMetricFamily(
            "switchboard_breaker_state", "Circuit breakers: 0 closed, 1 half-open, 2 open", labels=["breaker"]
        )
        codes = {"closed": 0, "half-open": 1, "open": 2}
        for name, state in sorted(breaker_states().items()):
            breakers.add_metric([name], codes.get(state, 2))
        yield breakers
        if self.levels is not None:
            gauge = GaugeMetricFamily(
                "switchboard_degradation_level",
                "Degradation level per tenant: 0 full, 1 reduced, 2 static, 3 maintenance",
                labels=["tenant"],
            )
            for tenant, level in sorted(self.levels().items()):
                gauge.add_metric([tenant], level)
            yield gauge


STATE = _StateCollector()
REGISTRY.register(STATE)


class _SupervisorCollector(Collector):
    """The launcher's restart counts and service states, read from its state file when Prometheus scrapes
    (``state_file`` is set by the process that exports them: the gateway)."""

    def __init__(self) -> None:
        self.state_file: Path | None = None

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        if self.state_file is None:
            return
        from app.supervisor import RUNNING, read_state

        services = read_state(self.state_file)
        restarts = CounterMetricFamily(
            "switchboard_service_restarts",
            "Restarts of a crashed or hung service by the launcher's supervisor (this launcher run)",
            labels=["service"],
        )
        up = GaugeMetricFamily(
            "switchboard_service_up",
            "1 while the service runs and passed its health check; 0 while it restarts or was given up on",
            labels=["service"],
        )
        for name, service in sorted(services.items()):
            restarts.add_metric([name], float(service.get("restarts") or 0))
            up.add_metric([name], 1.0 if service.get("state") == RUNNING else 0.0)
        yield restarts
        yield up


SUPERVISOR = _SupervisorCollector()
REGISTRY.register(SUPERVISOR)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
