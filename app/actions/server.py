"""Start the action server: ``python -m app.actions.server [--port 5055]``.

rasa_sdk's server with our JSON logging and Prometheus metrics (``GET /metrics``, see
``app.observability.metrics``), bound to ``settings.host``. It runs in a single process
(rasa_sdk's own ``run`` serves from a Sanic worker process, where our logging configuration would not
apply); scale out with more action-server processes behind Rasa's action endpoint instead.

Its OpenAPI description is ``app/actions/openapi.yaml`` (written by hand, served at ``GET /openapi.json``),
and every ``POST /webhook`` body is checked against its ``ActionCall`` schema first: a call that is not
JSON, or not shaped as Rasa sends it, gets a 400 before any action runs (rasa_sdk would answer most of them
with a 500), and an unknown path or method gets its 404/405 as JSON (rasa_sdk's catch-all made them 500s).
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor
from sanic import Request, Sanic, response
from sanic.exceptions import SanicException

from app.observability import metrics
from app.observability.logging import configure_logging
from app.offline import apply_offline_env
from app.settings import get_settings

OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")


@cache
def description() -> dict[str, Any]:
    """The server's OpenAPI description (``openapi.yaml``)."""
    return yaml.safe_load(OPENAPI_FILE.read_text(encoding="utf-8"))


@cache
def action_call_validator() -> Draft202012Validator:
    """A validator of the description's ``ActionCall`` schema (its ``$ref`` resolved within the file)."""
    schema = {"$ref": "#/components/schemas/ActionCall", "components": description()["components"]}
    return Draft202012Validator(schema)


def action_call_problem(body: bytes, content_encoding: str | None) -> str | None:
    """What is wrong with a ``/webhook`` body (None: it is an action call as described)."""
    try:
        raw = zlib.decompress(body) if content_encoding == "deflate" else body
        call = json.loads(raw)
    except (zlib.error, ValueError, RecursionError):
        return "the body is not JSON"
    error = best_match(action_call_validator().iter_errors(call))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "the body"
    return f"{where}: {error.message}"[:300]


class TimedExecutor(ActionExecutor):
    """rasa_sdk's executor, timing every action run into ``switchboard_action_seconds``."""

    async def run(self, action_call: dict[str, Any]) -> Any:
        name = str(action_call.get("next_action") or "unknown")
        started, outcome = time.perf_counter(), "error"
        try:
            result = await super().run(action_call)
            outcome = "ok"
            return result
        finally:
            metrics.ACTION_SECONDS.labels(name, outcome).observe(time.perf_counter() - started)


def build_app(app_name: str | None = None) -> Sanic:
    """The Sanic app: rasa_sdk's endpoints (``/webhook``, ``/health``, ``/actions``) plus ``/metrics`` and
    ``/openapi.json``, with the action call checked first (see the module docstring)."""
    executor = TimedExecutor()
    executor.register_package("app.actions")
    app = create_app_for_serve(executor, cors_origins=None)

    @app.on_request
    async def check_action_call(request: Request) -> Any:
        """400 for a ``/webhook`` body that is not an action call, before rasa_sdk reads it."""
        if request.method == "POST" and request.path == "/webhook":
            problem = action_call_problem(request.body, request.headers.get("content-encoding"))
            if problem:
                return response.json({"error": "invalid_action_call", "message": problem}, status=400)
        return None

    @app.exception(SanicException)
    async def http_error(request: Request, exc: SanicException) -> Any:
        """Sanic's own 4xx (unknown path, wrong method) as JSON with their status, not rasa_sdk's 500."""
        return response.json({"error": type(exc).__name__, "message": str(exc)}, status=exc.status_code)

    @app.get("/metrics")
    async def prometheus(_request: Any) -> Any:
        body, content_type = metrics.render()
        return response.raw(body, content_type=content_type)

    @app.get("/openapi.json")
    async def openapi(_request: Any) -> Any:
        return response.json(description())

    return app


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.actions.server", description=__doc__)
    parser.add_argument("--port", type=int, default=settings.action_port)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    apply_offline_env()
    configure_logging(args.log_level)
    app = build_app()
    app.prepare(host=settings.host, port=args.port, single_process=True, motd=False, access_log=False)
    Sanic.serve_single(app)


if __name__ == "__main__":
    main()
