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

import secrets
from collections.abc import Iterator

import pytest
import yaml
from pydantic import SecretStr

from app.gateway.auth import mint_token
from app.settings import Settings
from app.stack import Stack
from tests.conftest import ROOT, free_port, start_guarded
from tests.schema_fuzz import SEED, FuzzReport, fuzz, rest_channel_stand_in, serving, signed_as_sender

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAX_EXAMPLES = 60  # generated cases per operation, on top of the examples, coverage and edge cases
TIMEOUT_S = 10.0  # per request: no answer within it is a hang
#: Requests each service's slice sends at least (the recorder has three operations without parameters).
AT_LEAST = {"crm": 400, "actions": 200, "recorder": 10, "gateway": 150, "rest": 100}
REST_EXAMPLES = 15  # the REST channel: each accepted case is a real turn of the bot
REST_TIMEOUT_S = 60.0  # a knowledge turn may take seconds on a busy machine
FUZZ_PLAN = "fuzz"  # a gateway plan no slice reaches the limit of (429s would hide what is behind them)


def fuzz_params(dest) -> str:
    """params.yaml with a gateway plan and tenant ceiling the fuzzing never reaches."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    gateway = params.setdefault("gateway", {})
    gateway["plans"] = {**gateway.get("plans", {}), FUZZ_PLAN: "1000000/minute"}
    gateway["tenant_limit"] = gateway["channel_limit"] = "1000000/minute"
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The CRM service, action server, gateway (in front of a REST channel stand-in) and turn recorder."""
    state = tmp_path_factory.mktemp("fuzz")
    with serving(rest_channel_stand_in()) as upstream:
        settings = Settings(
            rasa_port=free_port(),
            action_port=free_port(),
            streamlit_port=free_port(),
            crm_port=free_port(),
            gateway_port=free_port(),
            recorder_port=free_port(),
            state_dir=state,
            params_file=fuzz_params(state / "params.yaml"),
            gateway_upstreams=upstream,
            jwt_secret=SecretStr(secrets.token_urlsafe(32)),
        )
        stack = Stack(settings, services=("crm", "actions", "gateway", "recorder"))
        start_guarded(stack, timeout=120)
        try:
            yield stack
        finally:
            stack.stop()


def base_url(stack: Stack, service: str) -> str:
    s = stack.settings
    return {
        "crm": s.crm_url,
        "actions": f"http://{s.host}:{s.action_port}",
        "gateway": s.gateway_url,
        "recorder": f"http://{s.host}:{s.recorder_port}",
    }[service]


def assert_clean(report: FuzzReport, at_least: int) -> None:
    print(report.summary())
    assert report.requests >= at_least, report.summary()
    assert report.server_errors == 0, report.summary()
    assert report.hangs == 0, report.summary()
    assert report.other_failures == 0, report.summary()
    assert not report.invalid_operations, report.invalid_operations


@pytest.mark.parametrize("service", ["crm", "actions", "recorder"])
def test_a_service_answers_every_fuzzed_request_as_described(services, service):
    url = base_url(services, service)
    report = fuzz(
        service, f"{url}/openapi.json", url, seed=SEED, max_examples=MAX_EXAMPLES, timeout_s=TIMEOUT_S
    )
    assert_clean(report, at_least=AT_LEAST[service])


def test_the_gateway_answers_every_fuzzed_request_as_described(services):
    url, secret = base_url(services, "gateway"), services.settings.jwt_secret.get_secret_value()
    sign = signed_as_sender(lambda user: mint_token(secret, tenant="acme", user=user, plan=FUZZ_PLAN))
    report = fuzz(
        "gateway",
        f"{url}/openapi.json",
        url,
        seed=SEED,
        max_examples=MAX_EXAMPLES,
        timeout_s=TIMEOUT_S,
        headers_for=sign,
    )
    assert_clean(report, at_least=AT_LEAST["gateway"])
    assert report.statuses[200] > 0, (
        "no fuzzed turn got through the gateway: the slice tests only its refusals"
    )


def test_the_rest_channel_answers_every_fuzzed_request_as_described(bot):
    """Rasa's REST channel (the model the pipeline run trained; every accepted turn is a real turn through
    NLU, the action server and the test LLM, so this slice is smaller and waits longer)."""
    url = bot.settings.rasa_url
    report = fuzz(
        "rest",
        f"{url}/webhooks/rest/openapi.json",
        url,
        seed=SEED,
        max_examples=REST_EXAMPLES,
        timeout_s=REST_TIMEOUT_S,
        headers=bot.settings.channel_headers,
    )
    assert_clean(report, at_least=AT_LEAST["rest"])
    assert report.statuses[200] > 0, "no fuzzed turn reached the bot: the slice tests only its refusals"
