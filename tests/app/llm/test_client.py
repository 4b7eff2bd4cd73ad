"""TierClient against the local test LLM server: answers, usage and cost, retries, timeouts and the breaker."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from app.llm.client import TierClient, TierUnavailable
from app.llm.config import BreakerConfig, RetryConfig
from tests.llm_server import LLMTestServer, count_tokens

from .conftest import BREAKER, CTX, FAST_RETRY, ListSink, tier_config

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the refund policy?"},
]


def client(llm: LLMTestServer, tier: int = 1, sink: ListSink | None = None, **config) -> TierClient:
    retry = config.pop("retry", FAST_RETRY)
    breaker = config.pop("breaker", BREAKER)
    return TierClient(tier, tier_config(llm, tier, **config), retry=retry, breaker=breaker, usage=sink)


def test_answer_with_usage_and_cost(llm: LLMTestServer) -> None:
    llm.add_rule(model="small", pattern="refund", content="Refunds take 5 working days.")
    sink = ListSink()
    result = client(llm, 1, sink).complete(MESSAGES, CTX)

    assert result.text == "Refunds take 5 working days."
    prompt = count_tokens("Be brief.\nWhat is the refund policy?")
    completion = count_tokens("Refunds take 5 working days.")
    assert (result.prompt_tokens, result.completion_tokens) == (prompt, completion)
    assert result.cost == (Decimal("0.5") * prompt + Decimal("1.5") * completion) / 1000
    [record] = sink.calls
    assert (record.outcome, record.tier, record.model, record.attempts) == ("ok", 1, "small", 1)
    assert (record.prompt_tokens, record.completion_tokens, record.cost) == (prompt, completion, result.cost)
    assert record.context == CTX


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_errors_are_retried_then_answered(llm: LLMTestServer, status: int) -> None:
    llm.set_faults(model="small", fail_next=2, error_status=status, retry_after_s=0)
    sink = ListSink()
    result = client(llm, 1, sink).complete(MESSAGES, CTX)
    assert result.attempts == 3
    assert llm.request_counts == {"small": 3}
    assert sink.outcomes == [(1, "ok")]


def test_retries_are_bounded(llm: LLMTestServer) -> None:
    llm.set_faults(model="small", fail_next=10, error_status=500)
    sink = ListSink()
    with pytest.raises(TierUnavailable) as caught:
        client(llm, 1, sink).complete(MESSAGES, CTX)
    assert caught.value.reason == "server_error"
    assert llm.request_counts == {"small": 3}
    assert sink.outcomes == [(1, "server_error")]
    assert sink.calls[0].prompt_tokens == 0 and sink.calls[0].cost == 0


def test_client_errors_are_not_retried_and_do_not_open_the_breaker(llm: LLMTestServer) -> None:
    sink = ListSink()
    tier = client(llm, 1, sink, model="no-such-model")  # the server answers 404
    for _ in range(3):
        with pytest.raises(TierUnavailable) as caught:
            tier.complete(MESSAGES, CTX)
        assert caught.value.reason == "client_error"
    assert [c.attempts for c in sink.calls] == [1, 1, 1]
    assert len(llm.requests) == 3
    assert tier.breaker_state == "closed"


def test_a_malformed_body_fails_the_tier(llm: LLMTestServer) -> None:
    llm.set_faults(model="small", malformed_next=1)
    with pytest.raises(TierUnavailable) as caught:
        client(llm, 1).complete(MESSAGES, CTX)
    assert caught.value.reason == "malformed"
    assert llm.request_counts == {"small": 1}


def test_a_hanging_endpoint_times_out(llm: LLMTestServer) -> None:
    llm.set_faults(model="small", hang_next=5, hang_s=5.0)
    sink = ListSink()
    retry = RetryConfig(attempts=2, wait_initial_s=0.01, wait_max_s=0.02)
    with pytest.raises(TierUnavailable) as caught:
        client(llm, 1, sink, timeout_s=0.3, retry=retry).complete(MESSAGES, CTX)
    assert caught.value.reason == "timeout"
    assert llm.request_counts == {"small": 2}  # a timeout is retryable, within the bound
    assert sink.outcomes == [(1, "timeout")]


def test_retry_after_is_honoured_up_to_the_cap(llm: LLMTestServer) -> None:
    llm.set_faults(model="small", fail_next=1, error_status=429, retry_after_s=30)
    waits: list[float] = []
    retry = RetryConfig(attempts=2, wait_initial_s=0.01, wait_max_s=0.2)
    tier = TierClient(1, tier_config(llm, 1), retry=retry, breaker=BREAKER, sleep=waits.append)
    tier.complete(MESSAGES, CTX)
    assert waits == [0.2]  # Retry-After says 30 s: capped by wait_max_s


def test_breaker_opens_fails_fast_and_closes_after_recovery(llm: LLMTestServer) -> None:
    sink = ListSink()
    tier = client(llm, 1, sink, breaker=BreakerConfig(fail_max=2, reset_timeout_s=0.3),
                  retry=RetryConfig(attempts=1))  # fmt: skip
    llm.set_faults(model="small", error_rate=1.0)
    for _ in range(2):
        with pytest.raises(TierUnavailable):
            tier.complete(MESSAGES, CTX)
    assert tier.breaker_state == "open"
    assert not tier.available

    with pytest.raises(TierUnavailable) as caught:
        tier.complete(MESSAGES, CTX)
    assert caught.value.reason == "breaker_open"
    assert llm.request_counts == {"small": 2}  # no request while open

    llm.clear_model_faults("small")  # the endpoint recovers
    deadline = time.monotonic() + 10
    while tier.breaker_state != "half-open":
        assert time.monotonic() < deadline, "breaker never became half-open"
        time.sleep(0.05)
    assert tier.complete(MESSAGES, CTX).text.startswith("Echo:")
    assert tier.breaker_state == "closed"
    assert [o for _, o in sink.outcomes] == ["server_error", "server_error", "breaker_open", "ok"]


def test_breakers_are_per_endpoint(llm: LLMTestServer) -> None:
    small = client(llm, 1, retry=RetryConfig(attempts=1))
    large = client(llm, 2, retry=RetryConfig(attempts=1))
    llm.set_faults(model="small", error_rate=1.0)
    for _ in range(2):
        with pytest.raises(TierUnavailable):
            small.complete(MESSAGES, CTX)
    assert (small.breaker_state, large.breaker_state) == ("open", "closed")
    assert large.complete(MESSAGES, CTX).model == "large"


def test_validation_failure_is_recorded_and_does_not_count_against_the_breaker(llm: LLMTestServer) -> None:
    llm.add_rule(model="small", content="I don't know.")
    sink = ListSink()
    tier = client(llm, 1, sink)

    def validate(result):
        return "model said it does not know" if "know" in result.text else None

    for _ in range(3):
        with pytest.raises(TierUnavailable) as caught:
            tier.complete(MESSAGES, CTX, validate=validate)
        assert caught.value.reason == "invalid"
    assert tier.breaker_state == "closed"
    assert [c.outcome for c in sink.calls] == ["invalid"] * 3
    assert all(c.completion_tokens > 0 for c in sink.calls)  # the tokens were spent all the same


def test_api_key_comes_from_the_environment(llm: LLMTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    llm.update(api_key="s3cret")
    monkeypatch.setenv("TEST_TIER1_KEY", "s3cret")
    assert client(llm, 1, api_key_env="TEST_TIER1_KEY").complete(MESSAGES, CTX).text
    monkeypatch.setenv("TEST_TIER1_KEY", "wrong")
    with pytest.raises(TierUnavailable) as caught:
        client(llm, 1, api_key_env="TEST_TIER1_KEY").complete(MESSAGES, CTX)
    assert caught.value.reason == "client_error"


def test_empty_messages_are_refused(llm: LLMTestServer) -> None:
    with pytest.raises(ValueError, match="messages"):
        client(llm, 1).complete([], CTX)
