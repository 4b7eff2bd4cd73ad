"""Start the action server: ``python -m app.actions.server [--port 5055]``.

rasa_sdk's server with our JSON logging, bound to ``settings.host``.
"""

from __future__ import annotations

import argparse
import os

from rasa_sdk.endpoint import run
from rasa_sdk.executor import ActionExecutor

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
    os.environ.setdefault("SANIC_HOST", settings.host)
    executor = ActionExecutor()
    executor.register_package("app.actions")
    run(executor, port=args.port, cors_origins=None)


if __name__ == "__main__":
    main()
