"""Schema fuzzing of one HTTP service from its OpenAPI description (schemathesis), counting what went wrong.

:func:`fuzz` loads the description (``schemathesis.openapi.from_url`` or ``from_dict``) and, for every
operation, runs the cases ``schema.parametrize()`` would run: the description's examples, the coverage cases
(boundaries and just-outside values, empty and over-long strings, wrong types, missing fields) and
``max_examples`` generated cases in positive and negative mode, with a fixed Hypothesis seed; then edge
integers (2**31, 2**63, 2**64, -2**63-1, 10**30) in each integer path or query parameter and top-level body
field of a valid case, which random generation reaches only by luck (the CRM service's ids beyond 64 bits
were 500s: the coverage cases stop at the declared bounds, and no bound was declared). Every case is sent to
the real service with a per-request timeout and classified, never raised, so one run counts every failure
instead of stopping (and shrinking) at the first:

- ``server_error``: any 5xx answer (the services' dependencies are up while they are fuzzed, so a 5xx is
  never a declared "unavailable", it is a fault);
- ``hang``: no answer within ``timeout_s``;
- ``connection``: the connection refused or dropped (the process died);
- other failures: the checks ``status_code_conformance`` (a status the operation does not declare),
  ``content_type_conformance``, ``response_schema_conformance`` (the body does not match its schema) and
  ``negative_data_rejection`` (input the description calls invalid accepted with a 2xx).

Used by ``tests/e2e/test_fuzz.py`` (a seeded slice in ``make test``) and ``benchmarks/fuzz.py`` (the long run),
which start the services the same way (:func:`fuzz_settings`, :func:`service_url`, :func:`gateway_headers`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
import uvicorn
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, Phase, Verbosity
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.gateway.auth import mint_token
from app.scaleout import free_port, free_ports
from app.settings import ROOT, Settings

SEED = 20261205
CHECKS = (
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
)
MODES = (HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE, HypothesisTestMode.FUZZING)
EDGE_INTEGERS = (2**31, 2**63, 2**64, -(2**63) - 1, 10**30)
SAMPLES_KEPT = 3  # example requests kept per (kind, operation) for the report
#: The services fuzzed without a trained model ("rest", Rasa's REST channel, needs one).
SERVICES = ("crm", "actions", "gateway", "recorder")
FUZZ_PLAN = "fuzz"  # a gateway plan no fuzzing reaches the limit of (429s would hide what is behind them)
FUZZ_TENANT = "acme"


@dataclass
class Finding:
    kind: str  # server_error, hang, connection, or the failed check's name
    operation: str  # "GET /jobs/{tenant}/{job_id}"
    status: int | None
    detail: str  # the request as a curl command, and what failed


@dataclass
class FuzzReport:
    """What one service answered: counts by kind, by operation, and a few reproducible examples."""

    service: str
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)  # kind -> requests
    by_operation: Counter = field(default_factory=Counter)  # (kind, operation) -> requests
    findings: list[Finding] = field(default_factory=list)
    unsendable: int = 0  # generated cases the HTTP client could not send (e.g. a header with a newline)
    invalid_operations: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return self.counts["server_error"]

    @property
    def hangs(self) -> int:
        return self.counts["hang"]

    @property
    def other_failures(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind not in ("server_error", "hang"))

    def record(self, kind: str, operation: str, status: int | None, detail: str) -> None:
        self.counts[kind] += 1
        self.by_operation[kind, operation] += 1
        if self.by_operation[kind, operation] <= SAMPLES_KEPT:
            self.findings.append(Finding(kind, operation, status, detail))

    def summary(self) -> str:
        """One paragraph: the counts, then each (kind, operation) with its first example."""
        lines = [
            f"{self.service}: {self.requests} requests in {self.seconds:.1f} s, {self.server_errors} 5xx, "
            f"{self.hangs} hangs, {self.other_failures} other failures, statuses {dict(sorted(self.statuses.items()))}"
        ]
        shown: set[tuple[str, str]] = set()
        for finding in self.findings:
            if (finding.kind, finding.operation) in shown:
                continue
            shown.add((finding.kind, finding.operation))
            n = self.by_operation[finding.kind, finding.operation]
            lines.append(
                f"  {finding.kind} x{n} {finding.operation} -> {finding.status}: {finding.detail[:600]}"
            )
        return "\n".join(lines)


def load(description: str | dict[str, Any], base_url: str) -> Any:
    """The schemathesis schema of a description (its URL, or the description itself) served at ``base_url``."""
    if isinstance(description, str):
        schema = schemathesis.openapi.from_url(description, timeout=30)
    else:
        schema = schemathesis.openapi.from_dict(description)
    schema.config.update(base_url=base_url)
    return schema


def fuzz(
    service: str,
    description: str | dict[str, Any],
    base_url: str,
    *,
    seed: int = SEED,
    max_examples: int = 20,
    timeout_s: float = 10.0,
    headers: dict[str, str] | None = None,
    headers_for: Callable[[Any], dict[str, str]] | None = None,
    include: Callable[[str], bool] | None = None,
    on_request: Callable[[], None] | None = None,
) -> FuzzReport:
    """Fuzz every operation of the service at ``base_url`` (``include(label)`` picks operations) and count.

    ``headers`` go with every request, ``headers_for(case)`` adds per-request ones (credentials that depend on
    the body, e.g. a token whose subject is the body's ``sender``); ``on_request`` is called after each
    (progress bars).
    """
    schema = load(description, base_url)
    report = FuzzReport(service)
    session = requests.Session()
    settings = hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )
    valid: dict[str, Any] = {}  # operation -> its first valid (positive) case, for the edge cases

    def one_case(case: Any) -> None:
        label = case.operation.label
        if (
            label not in valid
            and case.meta is not None
            and case.meta.generation.mode == GenerationMode.POSITIVE
        ):
            valid[label] = case
        sent = {**(headers or {}), **(headers_for(case) if headers_for is not None else {})}
        _send(case, label, base_url, session, timeout_s, sent, report)
        if on_request is not None:
            on_request()

    started = time.perf_counter()
    for result in schema.get_all_operations():
        try:
            operation = result.ok()
        except Exception as exc:  # an operation the description describes wrongly: reported, not fuzzed
            report.invalid_operations.append(str(exc).splitlines()[0])
            continue
        if include is not None and not include(operation.label):
            continue
        config = HypothesisTestConfig(project=schema.config, modes=list(MODES), settings=settings, seed=seed)
        test = create_test(operation=operation, test_func=one_case, config=config)
        try:
            test()
        except hypothesis.errors.Unsatisfiable:
            report.invalid_operations.append(f"{operation.label}: no case could be generated")
        if operation.label in valid:
            for case in edge_cases(operation, valid[operation.label]):
                one_case(case)
    report.seconds = time.perf_counter() - started
    session.close()
    return report


def fuzz_params(dest: Path) -> Path:
    """A copy of params.yaml whose gateway has a plan and ceilings the fuzzing never reaches."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    gateway = params.setdefault("gateway", {})
    gateway["plans"] = {**gateway.get("plans", {}), FUZZ_PLAN: "1000000/minute"}
    gateway["tenant_limit"] = gateway["channel_limit"] = "1000000/minute"
    gateway["storage_url"] = "memory://"
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def fuzz_settings(state: Path, gateway_upstream: str, **overrides: Any) -> Settings:
    """Settings for the services under fuzzing: free loopback ports, stores in ``state``, the gateway in front
    of ``gateway_upstream`` with a secret of this run."""
    state.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = free_ports(
        "127.0.0.1",
        ("rasa_port", "action_port", "streamlit_port", "crm_port", "gateway_port", "recorder_port"),
    )
    values |= {
        "host": "127.0.0.1",
        "state_dir": state,
        "params_file": fuzz_params(state / "params.yaml"),
        "gateway_upstreams": gateway_upstream,
        "jwt_secret": SecretStr(secrets.token_urlsafe(32)),
    }
    return Settings(**(values | overrides))


def service_url(settings: Settings, service: str) -> str:
    """The base URL of ``service`` (one of :data:`SERVICES` or ``rest``); its description is at
    ``/openapi.json`` (``rest``: ``/webhooks/rest/openapi.json``)."""
    return {
        "crm": settings.crm_url,
        "actions": f"http://{settings.host}:{settings.action_port}",
        "gateway": settings.gateway_url,
        "recorder": f"http://{settings.host}:{settings.recorder_port}",
        "rest": settings.rasa_url,
    }[service]


def description_url(settings: Settings, service: str) -> str:
    path = "/webhooks/rest/openapi.json" if service == "rest" else "/openapi.json"
    return service_url(settings, service) + path


def gateway_headers(settings: Settings) -> Callable[[Any], dict[str, str]]:
    """``headers_for`` of the gateway: a token of :data:`FUZZ_PLAN` for the body's sender."""
    secret = settings.jwt_secret.get_secret_value()
    return signed_as_sender(lambda user: mint_token(secret, tenant=FUZZ_TENANT, user=user, plan=FUZZ_PLAN))


def signed_as_sender(sign: Callable[[str], str]) -> Callable[[Any], dict[str, str]]:
    """``headers_for`` that sends ``Authorization: Bearer sign(sender)`` when the body has a string ``sender``
    (the gateway wants the token's subject to be the sender), else ``sign("fuzz")``."""

    def headers_for(case: Any) -> dict[str, str]:
        body = case.body if isinstance(case.body, dict) else {}
        sender = body.get("sender") if isinstance(body.get("sender"), str) else "fuzz"
        try:
            return {"Authorization": f"Bearer {sign(sender)}"}
        except Exception:  # noqa: BLE001 - a sender no token can carry: the gateway refuses it anyway
            return {"Authorization": f"Bearer {sign('fuzz')}"}

    return headers_for


def rest_channel_stand_in() -> FastAPI:
    """A stand-in for Rasa's REST channel behind a gateway under fuzzing (the gateway is what is tested):
    healthy, a one-message reply to every turn, 404 for the other channels as Rasa answers them."""
    app = FastAPI()

    @app.get("/webhooks/rest/")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/rest/webhook")
    async def turn(request: Request) -> JSONResponse:
        sender = json.loads(await request.body()).get("sender", "")
        return JSONResponse([{"recipient_id": sender, "text": "stand-in reply"}])

    @app.api_route("/webhooks/{channel}/webhook", methods=["GET", "POST"])
    def other(channel: str) -> JSONResponse:
        return JSONResponse({"error": "not_found", "message": "no such channel"}, status_code=404)

    return app


@contextmanager
def serving(app: Any, port: int | None = None) -> Iterator[str]:
    """``app`` (ASGI) served by uvicorn in a thread on loopback until the block ends; yields its base URL."""
    port = port or free_port("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def edge_cases(operation: Any, valid: Any) -> Iterable[Any]:
    """``valid`` with one integer at a time replaced by each of :data:`EDGE_INTEGERS`: the integer path and
    query parameters the operation declares, and the integer fields of a JSON object body."""
    path, query = dict(valid.path_parameters or {}), dict(valid.query or {})
    body = valid.body if isinstance(valid.body, dict) else None
    slots: list[tuple[str, str]] = []
    for parameter in operation.iter_parameters():
        location = str(getattr(parameter.location, "value", parameter.location))
        if location in ("path", "query") and '"integer"' in json.dumps(parameter.definition):
            slots.append((location, parameter.name))
    if body is not None:
        slots += [("body", k) for k, v in body.items() if isinstance(v, int) and not isinstance(v, bool)]
    for location, name in slots:
        for value in EDGE_INTEGERS:
            yield operation.Case(
                method=valid.method,
                path_parameters={**path, name: value} if location == "path" else path,
                query={**query, name: value} if location == "query" else query,
                headers=dict(valid.headers or {}),
                body={**body, name: value} if location == "body" and body is not None else valid.body,
                media_type=valid.media_type,
            )


def _send(
    case: Any,
    label: str,
    base_url: str,
    session: requests.Session,
    timeout_s: float,
    headers: dict[str, str],
    report: FuzzReport,
) -> None:
    try:
        curl = case.as_curl_command(headers=headers, base_url=base_url)
    except Exception:  # noqa: BLE001 - a case that cannot even be written down cannot be sent either
        report.unsendable += 1
        return
    try:
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=timeout_s)
    except requests.Timeout:
        report.requests += 1
        report.record("hang", label, None, f"no answer within {timeout_s} s: {curl}")
        return
    except requests.ConnectionError as exc:
        report.requests += 1
        report.record("connection", label, None, f"{type(exc).__name__}: {curl}")
        return
    except Exception:  # noqa: BLE001 - the client refused to build the request (invalid header, URL)
        report.unsendable += 1
        return
    report.requests += 1
    status = response.status_code
    report.statuses[status] += 1
    if status >= 500:
        report.record("server_error", label, status, f"{curl}\n  answered: {response.text[:300]}")
        return
    try:
        case.validate_response(response, checks=list(CHECKS), headers=headers)
    except FailureGroup as group:
        for failure in group.exceptions:
            name = type(failure).__name__
            report.record(name, label, status, f"{curl}\n  {failure.title}: {failure.message[:300]}")
    except Exception as exc:  # noqa: BLE001 - a check that could not run on this answer
        report.record("check_error", label, status, f"{curl}\n  {type(exc).__name__}: {exc}")
