"""Prometheus metrics of the action server and the gateway (``GET /metrics`` on each), with the official
``prometheus_client``. Each process exposes the metrics it updates (the same registry module everywhere).

What operators watch: turns per action and their run time, the router's decisions per handler, knowledge
answers per tier (and from the cache), tool calls and their latency, LLM calls, tokens and cost per tier and
model, and - read at scrape time - the circuit breakers and the degradation level. The gateway also exports
the launcher's supervisor (``switchboard_service_restarts_total{service}``, ``switchboard_service_up``),
read from the supervisor's state file at scrape time: the launcher itself serves no HTTP.

Labels stay low-cardinality: tenants (a handful per deployment), handlers, tiers, tools, models; never user
or conversation ids (those are in the JSON logs, with the correlation id).

A service with several worker processes (the action server with ``--workers N``) uses prometheus_client's
multiprocess mode: :func:`use_multiprocess_dir` in the parent, before the workers start, makes each worker
write its counters and histograms to files in one directory, and :func:`render` with that directory adds
them up, whichever worker the scrape reaches. Breaker states and degradation levels are read at scrape time
from the shared stores those workers then need (Redis), so every worker reports the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
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


WORKER_STARTS = Counter(
    "switchboard_worker_starts_total",
    "Server processes started per service (the action server's workers: one each, restarts counted)",
    ["service"],
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


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads it when a process imports it


def use_multiprocess_dir(directory: Path) -> None:
    """Make the worker processes started from now on write their metrics to ``directory`` (emptied now: the
    files of an earlier run would be added up too). Call in the parent before it starts them: they inherit
    the variable and read it on import; the parent's own metrics stay in its memory."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)


@lru_cache(maxsize=2)
def _multiprocess_registry(directory: str) -> CollectorRegistry:
    """Every worker's files in ``directory`` added up, plus the collectors read at scrape time."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    registry.register(STATE)
    registry.register(SUPERVISOR)
    return registry


def render(multiprocess_dir: Path | None = None) -> tuple[bytes, str]:
    """The exposition text and its content type: this process's metrics, or with ``multiprocess_dir`` those
    of every worker writing there."""
    registry = REGISTRY if multiprocess_dir is None else _multiprocess_registry(str(multiprocess_dir))
    return generate_latest(registry), CONTENT_TYPE_LATEST
