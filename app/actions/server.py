"""Start the action server: ``python -m app.actions.server [--port 5055] [--workers N]``.

rasa_sdk's server with our JSON logging and Prometheus metrics (``GET /metrics``, see
``app.observability.metrics``), bound to ``settings.host``.

One worker (the default, ``SWITCHBOARD_ACTION_WORKERS=1``) serves in this process. With ``--workers N``
(N > 1) the server runs as rasa_sdk's own ``run`` does when ``SANIC_WORKERS`` is set: Sanic's worker manager
binds the port once and starts N worker processes that accept connections from that one socket, each
building the app from :func:`worker_app` (so each configures our logging and metrics, which rasa_sdk's
``run`` would not). Rasa keeps one action endpoint URL; the kernel hands each action call (a new connection
per call) to a worker that is waiting. Metrics are then in prometheus_client's multiprocess mode: every
worker writes its counters to files under ``<state dir>/metrics/actions-<port>`` (emptied at start) and
``GET /metrics``, on whichever worker answers it, adds up all of them. State a worker learns that the others
need (circuit breakers, degradation windows) must then be in Redis: the launcher refuses several workers
without it (``app.scaleout.check_action_workers``).

Its OpenAPI description is ``app/actions/openapi.yaml`` (written by hand, served at ``GET /openapi.json``),
and every ``POST /webhook`` body is checked against its ``ActionCall`` schema first: a call that is not
JSON, or not shaped as Rasa sends it, gets a 400 before any action runs (rasa_sdk would answer most of them
with a 500), and an unknown path or method gets its 404/405 as JSON (rasa_sdk's catch-all made them 500s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import zlib
from functools import cache, partial
from pathlib import Path
from typing import Any

import structlog
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor
from sanic import Request, Sanic, response
from sanic.exceptions import SanicException
from sanic.worker.loader import AppLoader
from sanic.worker.manager import WorkerManager
from sanic.worker.process import WorkerProcess

from app.observability import metrics
from app.observability.logging import configure_logging
from app.offline import apply_offline_env
from app.settings import get_settings

logger = structlog.get_logger("app.actions.server")  # also in workers, where this module is __mp_main__

OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")
# Sanic stops every worker when one has not started within 30 s (its class constant, in tenths of a second);
# a worker imports the whole app, which takes longer than that on a busy two-core machine.
WORKER_START_TIMEOUT_S = 120


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


def warm_up() -> None:
    """What the first turns would otherwise build, built now: the knowledge base (index and embedding model),
    the brain (LLM tier clients, cache, degradation controller) and every tool's breaker. So the first
    knowledge turn a worker serves does not pay for loading, and every worker reports the same breakers
    and degradation levels in ``/metrics`` from the start. A part that cannot be built is logged; the
    turns that need it report it as they do without warm-up."""
    from app.actions import brain, services

    try:
        services.knowledge()
    except services.KnowledgeUnavailable as exc:
        logger.warning("knowledge.unavailable", error=str(exc)[:300])
    try:
        brain.brain()
        registry = services.tools()
        for name in registry.names():
            registry.breaker(registry.get(name))
    except Exception as exc:  # an optimisation only: the turn that needs it raises it again, in context
        logger.warning("actions.warm_up_incomplete", error=f"{type(exc).__name__}: {exc}"[:300])


def build_app(app_name: str | None = None, multiprocess_dir: Path | None = None) -> Sanic:
    """The Sanic app: rasa_sdk's endpoints (``/webhook``, ``/health``, ``/actions``) plus ``/metrics`` and
    ``/openapi.json``, with the action call checked first (see the module docstring). ``multiprocess_dir``:
    the workers' metric files, which ``/metrics`` adds up (None: this process's metrics only)."""
    executor = TimedExecutor()
    executor.register_package("app.actions")
    app = create_app_for_serve(executor, cors_origins=None)

    @app.before_server_start
    async def started(_app: Sanic) -> None:
        metrics.WORKER_STARTS.labels("actions").inc()
        logger.info("actions.worker_started", pid=os.getpid())

    @app.after_server_start
    async def load_knowledge(_app: Sanic) -> None:
        _app.add_task(asyncio.to_thread(warm_up))  # in the background: the worker serves meanwhile

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
        body, content_type = metrics.render(multiprocess_dir)
        return response.raw(body, content_type=content_type)

    @app.get("/openapi.json")
    async def openapi(_request: Any) -> Any:
        return response.json(description())

    return app


def worker_app(log_level: str, multiprocess_dir: str) -> Sanic:
    """The app as each worker process builds it (Sanic's ``AppLoader`` calls this in every worker): our
    logging first, then :func:`build_app` with the shared metrics directory."""
    apply_offline_env()
    configure_logging(log_level)
    return build_app(multiprocess_dir=Path(multiprocess_dir))


def metrics_dir(port: int) -> Path:
    """Where the workers of the action server on ``port`` write their metrics (multiprocess mode)."""
    return get_settings().state_dir / "metrics" / f"actions-{port}"


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.actions.server", description=__doc__)
    parser.add_argument("--port", type=int, default=settings.action_port)
    parser.add_argument(
        "--workers",
        type=int,
        default=settings.action_workers,
        metavar="N",
        help="worker processes behind the port (default: SWITCHBOARD_ACTION_WORKERS, 1)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    apply_offline_env()
    configure_logging(args.log_level)
    if args.workers == 1:
        app = build_app()
        app.prepare(host=settings.host, port=args.port, single_process=True, motd=False, access_log=False)
        Sanic.serve_single(app)
        return
    WorkerManager.THRESHOLD = WorkerProcess.THRESHOLD = WORKER_START_TIMEOUT_S * 10
    directory = metrics_dir(args.port)
    metrics.use_multiprocess_dir(directory)  # before the workers start: they inherit it
    loader = AppLoader(factory=partial(worker_app, args.log_level, str(directory)))
    app = loader.load()
    app.prepare(host=settings.host, port=args.port, workers=args.workers, motd=False, access_log=False)
    logger.info("actions.serving", port=args.port, workers=args.workers, metrics_dir=str(directory))
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
