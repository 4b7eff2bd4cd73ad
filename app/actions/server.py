"""Start the action server: ``python -m app.actions.server [--port 5055]``.

rasa_sdk's server with our JSON logging, bound to ``settings.host``. It runs in a single process
(rasa_sdk's own ``run`` serves from a Sanic worker process, where our logging configuration would not
apply); scale out with more action-server processes behind Rasa's action endpoint instead.
"""

from __future__ import annotations

import argparse

from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic

from app.observability.logging import configure_logging
from app.offline import apply_offline_env
from app.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.actions.server", description=__doc__)
    parser.add_argument("--port", type=int, default=settings.action_port)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    apply_offline_env()
    configure_logging(args.log_level)
    executor = ActionExecutor()
    executor.register_package("app.actions")
    app = create_app_for_serve(executor, cors_origins=None)
    app.prepare(host=settings.host, port=args.port, single_process=True, motd=False, access_log=False)
    Sanic.serve_single(app)


if __name__ == "__main__":
    main()
