"""One registry of tools (integrations) that both the Rasa actions and the LLM tiers call, so a tool is
written once: its name, description, input schema, timeout and circuit breaker live in one :class:`Tool`.

- Input is validated against the tool's pydantic model before anything runs (``extra="forbid"``): a bad
  argument from a model or a caller is a :class:`ToolError` with reason ``invalid_arguments``, never a call.
- Identity never comes from the arguments: the tenant, user and conversation are the :class:`ToolContext`
  the caller builds from the turn, so an LLM cannot look up another user's data by naming them.
- Every call runs under the tool's timeout (in a worker thread; the handler's own client timeout should be
  no longer, so a timed-out thread ends soon after) and through the dependency's circuit breaker
  (``app.reliability.breakers``; tools of one system share it: ``breaker="crm"``). Unavailability (the
  handler raised :class:`ToolUnavailable`, or timed out) counts against the breaker; rejections and bad
  input do not. While the breaker is open calls fail at once with reason ``breaker_open``.
- :meth:`ToolRegistry.openai_tools` gives the OpenAI function-calling definitions of the tools marked
  ``llm=True``; :meth:`ToolRegistry.call_json` runs a model's tool call and always returns JSON text (an
  error becomes ``{"error": reason, "message": ...}`` for the model to read).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import pybreaker
import structlog
from pydantic import BaseModel, ValidationError

from app.observability import metrics
from app.reliability.breakers import get_breaker

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ToolContext:
    """On whose behalf a tool runs: from the turn, never from the tool's arguments."""

    tenant_id: str
    user_id: str
    conversation_id: str = ""
    correlation_id: str = ""

    def log_fields(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "conversation_id": self.conversation_id,
            "correlation_id": self.correlation_id,
        }


class ToolError(RuntimeError):
    """A tool call that gave no result. ``reason``: unknown_tool, invalid_arguments, rejected (the system
    refused: not the dependency's fault), unavailable, timeout or breaker_open."""

    def __init__(self, tool: str, reason: str, message: str = "", *, status: int | None = None) -> None:
        super().__init__(f"tool {tool}: {reason}{': ' + message if message else ''}")
        self.tool, self.reason, self.message, self.status = tool, reason, message, status

    @property
    def unavailable(self) -> bool:
        """The dependency could not answer (worth "try again later"), as opposed to refusing the request."""
        return self.reason in {"unavailable", "timeout", "breaker_open"}


class ToolUnavailable(Exception):
    """Raised by a handler when its system is down or failing (counts against the breaker)."""


class ToolTimeout(ToolUnavailable):
    """The handler gave no answer within the tool's timeout."""


class ToolRejected(Exception):
    """Raised by a handler when its system refused the request (a 4xx); ``status`` is kept for callers."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer: JSON-able ``data``; ``personal`` when it holds the user's own data (never cached)."""

    tool: str
    data: dict[str, Any]
    personal: bool
    latency_s: float


Handler = Callable[[ToolContext, Any], dict[str, Any]]


@dataclass(frozen=True)
class Tool:
    """A callable integration: ``handler(ctx, args)`` gets validated ``args`` (an instance of ``schema``)."""

    name: str
    description: str
    schema: type[BaseModel]
    handler: Handler
    timeout_s: float = 5.0
    breaker: str = ""  # the dependency's breaker name; "" means the tool's own name
    personal: bool = True  # uses the user's data: answers built on it are never cached
    llm: bool = (
        False  # offered to the LLM tiers (read-only tools only: a model must not trigger side effects)
    )
    fail_max: int = 5
    reset_timeout_s: float = 15.0

    def openai_definition(self) -> dict[str, Any]:
        """The tool as an OpenAI function-calling definition (JSON Schema of its input)."""
        parameters = self.schema.model_json_schema()
        parameters.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": parameters},
        }


def _caller_fault(exc: BaseException) -> bool:
    return isinstance(exc, ToolRejected)


class ToolRegistry:
    """Tools by name, with the timeout and breaker applied on every call."""

    def __init__(self, tools: Iterable[Tool] = (), *, max_workers: int = 8) -> None:
        self._tools: dict[str, Tool] = {}
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tool")
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        if tool.timeout_s <= 0:
            raise ValueError(f"tool {tool.name!r}: timeout_s must be positive")
        self._tools[tool.name] = tool
        return tool

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return sorted(self._tools)

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolError(name, "unknown_tool", f"no tool named {name!r}") from None

    def breaker(self, tool: Tool) -> pybreaker.CircuitBreaker:
        return get_breaker(
            tool.breaker or tool.name,
            fail_max=tool.fail_max,
            reset_timeout_s=tool.reset_timeout_s,
            exclude=[_caller_fault],
        )

    def openai_tools(self) -> list[dict[str, Any]]:
        """Definitions of the tools offered to LLMs (``llm=True``), sorted by name."""
        return [self._tools[name].openai_definition() for name in self.names() if self._tools[name].llm]

    def call(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        """Validate ``arguments``, run the tool under its timeout and breaker; raises :class:`ToolError`."""
        tool = self.get(name)
        try:
            args = tool.schema.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolError(name, "invalid_arguments", problems) from None
        started = time.perf_counter()

        def run_with_timeout() -> dict[str, Any]:
            future = self._executor.submit(tool.handler, ctx, args)
            try:
                return future.result(timeout=tool.timeout_s)
            except FutureTimeout:
                future.cancel()
                raise ToolTimeout(f"no answer within {tool.timeout_s:g} s") from None

        try:
            data = self.breaker(tool).call(run_with_timeout)
        except pybreaker.CircuitBreakerError:
            error = ToolError(name, "breaker_open", f"{tool.breaker or name} is failing; not called")
        except ToolUnavailable as exc:
            reason = "timeout" if isinstance(exc, ToolTimeout) else "unavailable"
            error = ToolError(name, reason, str(exc)[:300])
        except ToolRejected as exc:
            error = ToolError(name, "rejected", str(exc)[:300], status=exc.status)
        else:
            latency = time.perf_counter() - started
            metrics.TOOL_CALLS.labels(name, "ok").inc()
            metrics.TOOL_SECONDS.labels(name).observe(latency)
            logger.info("tool.called", tool=name, latency_ms=round(latency * 1000, 1), **ctx.log_fields())
            return ToolResult(name, data, tool.personal, latency)
        metrics.TOOL_CALLS.labels(name, error.reason).inc()
        logger.warning(
            "tool.failed", tool=name, reason=error.reason, detail=error.message, **ctx.log_fields()
        )
        raise error

    async def acall(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        """:meth:`call` without blocking the event loop (actions are coroutines in the action server)."""
        return await asyncio.to_thread(self.call, name, arguments, ctx)

    def call_json(self, name: str, arguments_json: str, ctx: ToolContext) -> tuple[str, ToolResult | None]:
        """Run a model's tool call: the JSON text to send back to the model, and the result if it worked."""
        try:
            arguments = json.loads(arguments_json or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            return json.dumps({"error": "invalid_arguments", "message": str(exc)[:200]}), None
        try:
            tool = self.get(name)
            if not tool.llm:
                raise ToolError(name, "unknown_tool", f"{name!r} is not offered to models")
            result = self.call(name, arguments, ctx)
        except ToolError as exc:
            return json.dumps({"error": exc.reason, "message": exc.message}), None
        return json.dumps(result.data, default=str, sort_keys=True), result
