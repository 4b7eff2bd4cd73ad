"""Start the action server: ``python -m app.actions.server [--port 5055]``.

rasa_sdk's server with our JSON logging and Prometheus metrics (``GET /metrics``, see
``app.observability.metrics``), bound to ``settings.host``. It runs in a single process
(rasa_sdk's own ``run`` serves from a Sanic worker process, where our logging configuration would not
apply); scale out with more action-server processes behind Rasa's action endpoint instead.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic, response

from app.observability import metrics
from app.observability.logging import configure_logging
from app.offline import apply_offline_env
from app.settings import get_settings


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
    """The Sanic app: rasa_sdk's endpoints (``/webhook``, ``/health``, ``/actions``) plus ``/metrics``."""
    executor = TimedExecutor()
    executor.register_package("app.actions")
    app = create_app_for_serve(executor, cors_origins=None)

    @app.get("/metrics")
    async def prometheus(_request: Any) -> Any:
        body, content_type = metrics.render()
        return response.raw(body, content_type=content_type)

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
