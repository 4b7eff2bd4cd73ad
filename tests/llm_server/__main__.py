"""``python -m tests.llm_server``: serve the test LLM server until SIGINT or SIGTERM.

The first line printed is the OpenAI base URL (``http://127.0.0.1:PORT/v1``), so a parent process started with
``--port 0`` can read where the server is. Runtime changes go through ``POST /admin/config``.
"""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path

from .app import ServerConfig
from .server import LLMTestServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.llm_server", description="Deterministic OpenAI-compatible test LLM server."
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: a free port)")
    parser.add_argument("--latency-ms", type=int, help="delay added to every chat-completion request")
    parser.add_argument("--api-key", help="require this Bearer token on /v1 endpoints")
    parser.add_argument(
        "--model", action="append", dest="models", help="a model to serve (repeatable; default: small, large)"
    )
    parser.add_argument(
        "--config", type=Path, help="JSON file holding a ServerConfig; the flags above win over it"
    )
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> ServerConfig:
    """The server configuration described by the parsed options."""
    data = json.loads(args.config.read_text()) if args.config else {}
    if args.models:
        data["models"] = args.models
    if args.api_key is not None:
        data["api_key"] = args.api_key
    if args.latency_ms is not None:
        data.setdefault("faults", {})["latency_ms"] = args.latency_ms
    return ServerConfig.model_validate(data)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT or SIGTERM."""
    args = parse_args(argv)
    config = build_config(args)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the server thread starts, so that thread inherits the mask and only sigwait sees them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with LLMTestServer(config, port=args.port) as server:
        print(server.base_url, flush=True)
        signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
