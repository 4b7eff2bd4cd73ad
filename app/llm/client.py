"""A client per LLM tier: the ``openai`` client with an explicit timeout and no hidden retries, our own bounded
retries (tenacity) on retryable errors only, a circuit breaker per endpoint (pybreaker) and usage accounting.

Retryable: timeouts, connection errors, 408, 409, 429 and 5xx. Anything else (400, 401, 404, a malformed
body) fails at once. A call that still fails after its retries counts once against the endpoint's breaker;
errors that are the caller's fault (400, 401, 403, 404, 422) never do. While the breaker is open calls fail
at once with :class:`TierUnavailable` (reason ``breaker_open``) without touching the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import openai
import pybreaker
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from app.llm.config import BreakerConfig, RetryConfig, TierConfig
from app.observability import metrics
from app.reliability.breakers import effective_state, get_breaker

logger = structlog.get_logger(__name__)

RETRYABLE_STATUSES = frozenset({408, 409, 429})
CALLER_FAULT_STATUSES = frozenset({400, 401, 403, 404, 422})


class TierUnavailable(RuntimeError):
    """The tier could not answer. ``reason``: breaker_open, timeout, rate_limited, server_error, connection,
    client_error, malformed or invalid (the output failed validation)."""

    def __init__(self, tier: int, reason: str, detail: str = "") -> None:
        super().__init__(f"tier {tier} unavailable ({reason}){': ' + detail if detail else ''}")
        self.tier = tier
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CallContext:
    """Who a call is for: recorded with its usage."""

    tenant_id: str
    user_id: str
    conversation_id: str = ""
    correlation_id: str = ""  # the user turn (joins the call to its turn record)


@dataclass(frozen=True)
class LLMResult:
    """One answered completion."""

    tier: int
    model: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    latency_s: float
    attempts: int
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for (``arguments`` is the model's JSON text, unparsed)."""

    id: str
    name: str
    arguments: str

    def as_message_part(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class CallRecord:
    """What :class:`UsageSink` receives for every call (answered or not)."""

    context: CallContext
    tier: int
    model: str
    outcome: str  # ok, invalid, breaker_open, timeout, rate_limited, server_error, connection, ...
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    latency_s: float = 0.0
    attempts: int = 0
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class UsageSink(Protocol):
    """Where call records go (``app.llm.usage.UsageRecorder`` writes them to the ``llm_calls`` table)."""

    def record(self, call: CallRecord) -> None: ...


def is_retryable(exc: BaseException) -> bool:
    """Timeouts, connection errors, 408/409/429 and 5xx: worth another attempt."""
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is a subclass
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUSES or exc.status_code >= 500
    return False


def is_caller_fault(exc: BaseException) -> bool:
    """Errors that say our request was wrong, not that the endpoint is unhealthy (breaker ignores them)."""
    return isinstance(exc, openai.APIStatusError) and exc.status_code in CALLER_FAULT_STATUSES


def classify(exc: BaseException) -> str:
    """A short outcome name for an exception."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return "rate_limited"
        return "server_error" if exc.status_code >= 500 else "client_error"
    if isinstance(exc, pybreaker.CircuitBreakerError):
        return "breaker_open"
    return "malformed"


def _retry_after_s(exc: BaseException | None) -> float:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return 0.0


class _WaitBackoffOrRetryAfter:
    """Exponential backoff, or the server's Retry-After when longer; never more than ``cap`` seconds."""

    def __init__(self, config: RetryConfig) -> None:
        self._exponential = wait_exponential(multiplier=config.wait_initial_s, max=config.wait_max_s)
        self._honour = config.honour_retry_after
        self._cap = config.wait_max_s

    def __call__(self, state: RetryCallState) -> float:
        wait = self._exponential(state)
        if self._honour and state.outcome is not None and state.outcome.failed:
            wait = max(wait, _retry_after_s(state.outcome.exception()))
        return min(wait, self._cap)


class TierClient:
    """Chat completions from one tier's endpoint, with retries, a breaker and usage accounting."""

    def __init__(
        self,
        tier: int,
        config: TierConfig,
        *,
        retry: RetryConfig | None = None,
        breaker: BreakerConfig | None = None,
        usage: UsageSink | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tier = tier
        self.config = config
        self.retry = retry or RetryConfig()
        breaker_config = breaker or BreakerConfig()
        self.breaker = get_breaker(
            f"llm:{config.endpoint}",
            fail_max=breaker_config.fail_max,
            reset_timeout_s=breaker_config.reset_timeout_s,
            exclude=[is_caller_fault],
        )
        self.usage = usage
        self._sleep = sleep
        self._client = openai.OpenAI(
            base_url=config.base_url, api_key=config.api_key(), timeout=config.timeout_s, max_retries=0
        )

    @property
    def breaker_state(self) -> str:
        """``closed``, ``open`` or ``half-open`` (the next call is a trial)."""
        return effective_state(self.breaker)

    @property
    def available(self) -> bool:
        """False while the breaker is open (calls would fail at once)."""
        return self.breaker_state != "open"

    def complete(
        self,
        messages: Sequence[dict[str, Any]],
        context: CallContext,
        *,
        max_tokens: int | None = None,
        validate: Callable[[LLMResult], str | None] | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> LLMResult:
        """One chat completion. Raises :class:`TierUnavailable` when the tier cannot give a usable answer.

        ``validate`` returns why an answer is unusable (or None): such an answer is recorded as ``invalid``
        and raised as ``TierUnavailable(reason="invalid")``; it does not count against the breaker, since the
        endpoint itself worked. ``tools``: OpenAI function definitions offered to the model; a reply that
        calls tools has ``result.tool_calls`` and is not validated (it is not the answer yet).
        """
        if not messages:
            raise ValueError("messages must not be empty")
        started = time.perf_counter()
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            extra: dict[str, Any] = {"tools": list(tools), "tool_choice": "auto"} if tools else {}
            return self._client.chat.completions.create(
                model=self.config.model,
                messages=list(messages),
                max_tokens=max_tokens or self.config.max_tokens,
                **extra,
            )

        def retried() -> Any:
            retrying = Retrying(
                stop=stop_after_attempt(self.retry.attempts),
                wait=_WaitBackoffOrRetryAfter(self.retry),
                retry=retry_if_exception(is_retryable),
                sleep=self._sleep,
                reraise=True,
            )
            return retrying(attempt)

        try:
            response = self.breaker.call(retried)
        except Exception as exc:  # every failure is recorded, then re-raised as TierUnavailable
            outcome = classify(exc)
            self._record(context, outcome, started, attempts, error=f"{type(exc).__name__}: {exc}"[:500])
            logger.warning(
                "llm.call_failed",
                tier=self.tier,
                model=self.config.model,
                outcome=outcome,
                attempts=attempts,
                breaker=self.breaker_state,
            )
            raise TierUnavailable(self.tier, outcome, str(exc)[:200]) from exc

        result = self._result(response, started, attempts)
        problem = validate(result) if validate and not result.tool_calls else None
        self._record(
            context,
            "invalid" if problem else "ok",
            started,
            attempts,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost=result.cost,
            error=problem or "",
        )
        if problem:
            raise TierUnavailable(self.tier, "invalid", problem)
        return result

    def _result(self, response: Any, started: float, attempts: int) -> LLMResult:
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        choice = response.choices[0] if response.choices else None
        calls = tuple(
            ToolCall(call.id, call.function.name, call.function.arguments or "{}")
            for call in (getattr(choice.message, "tool_calls", None) or [] if choice else [])
            if getattr(call, "function", None) is not None
        )
        return LLMResult(
            tier=self.tier,
            model=self.config.model,
            text=(choice.message.content or "").strip() if choice else "",
            finish_reason=(choice.finish_reason or "") if choice else "",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=self.config.cost(prompt_tokens, completion_tokens),
            latency_s=time.perf_counter() - started,
            attempts=attempts,
            tool_calls=calls,
        )

    def _record(
        self, context: CallContext, outcome: str, started: float, attempts: int, **fields: Any
    ) -> None:
        labels = (str(self.tier), self.config.model)
        metrics.LLM_CALLS.labels(*labels, outcome).inc()
        metrics.LLM_SECONDS.labels(*labels).observe(time.perf_counter() - started)
        metrics.LLM_TOKENS.labels(*labels, "prompt").inc(fields.get("prompt_tokens", 0))
        metrics.LLM_TOKENS.labels(*labels, "completion").inc(fields.get("completion_tokens", 0))
        metrics.LLM_COST.labels(*labels).inc(float(fields.get("cost", 0)))
        if self.usage is None:
            return
        record = CallRecord(
            context=context,
            tier=self.tier,
            model=self.config.model,
            outcome=outcome,
            latency_s=time.perf_counter() - started,
            attempts=attempts,
            **fields,
        )
        try:
            self.usage.record(record)
        except Exception as exc:  # accounting must never take an answer down; it is logged loudly
            logger.error("llm.usage_record_failed", error=str(exc), tier=self.tier, outcome=outcome)
