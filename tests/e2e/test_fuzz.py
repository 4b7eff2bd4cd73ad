"""Hostile input, end to end: schemathesis fuzzes every HTTP service from the OpenAPI description it serves, a
seeded slice (tests/schema_fuzz.py: the description's examples, the coverage cases, edge integers and
``MAX_EXAMPLES`` generated cases per operation, seed ``SEED``). Each service is the real process the launcher
starts (``Stack``); every answer is counted, and the test asserts 0 server errors, 0 hangs (no answer within
``TIMEOUT_S``) and answers as described (declared statuses, bodies of the declared schema).

The CRM service, action server, gateway and turn recorder need no trained model: they run here on their own
stores, the gateway in front of a stand-in for Rasa's REST channel (the gateway's own handling is under test:
auth, body checks, limits, relaying). The REST channel itself is fuzzed on the ``bot`` fixture's Rasa server
(the model the pipeline run trains). ``benchmarks/fuzz.py`` is the long run (``make bench-fuzz``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from app.stack import Stack
from tests.conftest import start_guarded
from tests.schema_fuzz import (
    SEED,
    FuzzReport,
    description_url,
    fuzz,
    fuzz_settings,
    gateway_headers,
    rest_channel_stand_in,
    service_url,
    serving,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAX_EXAMPLES = 60  # generated cases per operation, on top of the examples, coverage and edge cases
TIMEOUT_S = 10.0  # per request: no answer within it is a hang
#: Requests each service's slice sends at least (the recorder has three operations without parameters).
AT_LEAST = {"crm": 400, "actions": 200, "recorder": 10, "gateway": 150, "rest": 80}
REST_EXAMPLES = 40  # the REST channel: each accepted case is a real turn of the bot (100 requests)
REST_TIMEOUT_S = 60.0  # a knowledge turn may take seconds on a busy machine


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The CRM service, action server, gateway (in front of a REST channel stand-in) and turn recorder."""
    with serving(rest_channel_stand_in()) as upstream:
        stack = Stack(
            fuzz_settings(tmp_path_factory.mktemp("fuzz"), upstream),
            services=("crm", "actions", "gateway", "recorder"),
        )
        start_guarded(stack, timeout=120)
        try:
            yield stack
        finally:
            stack.stop()


def assert_clean(report: FuzzReport, at_least: int) -> None:
    print(report.summary())
    assert report.requests >= at_least, report.summary()
    assert report.server_errors == 0, report.summary()
    assert report.hangs == 0, report.summary()
    assert report.other_failures == 0, report.summary()
    assert not report.invalid_operations, report.invalid_operations


@pytest.mark.parametrize("service", ["crm", "actions", "recorder"])
def test_a_service_answers_every_fuzzed_request_as_described(services, service):
    s = services.settings
    report = fuzz(
        service,
        description_url(s, service),
        service_url(s, service),
        seed=SEED,
        max_examples=MAX_EXAMPLES,
        timeout_s=TIMEOUT_S,
    )
    assert_clean(report, at_least=AT_LEAST[service])


def test_the_gateway_answers_every_fuzzed_request_as_described(services):
    """Every case carries a token for its body's sender, so valid turns get through to the stand-in."""
    s = services.settings
    report = fuzz(
        "gateway",
        description_url(s, "gateway"),
        service_url(s, "gateway"),
        seed=SEED,
        max_examples=MAX_EXAMPLES,
        timeout_s=TIMEOUT_S,
        headers_for=gateway_headers(s),
    )
    assert_clean(report, at_least=AT_LEAST["gateway"])
    assert report.statuses[200] > 0, (
        "no fuzzed turn got through the gateway: the slice tests only its refusals"
    )


def test_the_rest_channel_answers_every_fuzzed_request_as_described(bot):
    """Rasa's REST channel (the model the pipeline run trained; every accepted turn is a real turn through
    NLU, the action server and the test LLM, so this slice is smaller and waits longer)."""
    # every accepted case is a turn of the session's shared bot: the description's example sender ("alice")
    # is one the other end-to-end tests talk as, so the fuzzed turns get a sender of their own
    served = httpx.get(
        description_url(bot.settings, "rest"), headers=bot.settings.channel_headers, timeout=30
    )
    description = json.loads(served.text.replace('"alice"', '"fuzz-sender"'))
    report = fuzz(
        "rest",
        description,
        service_url(bot.settings, "rest"),
        seed=SEED,
        max_examples=REST_EXAMPLES,
        timeout_s=REST_TIMEOUT_S,
        headers=bot.settings.channel_headers,
    )
    assert_clean(report, at_least=AT_LEAST["rest"])
    assert report.statuses[200] > 0, "no fuzzed turn reached the bot: the slice tests only its refusals"
