"""Command line of the gateway.

    python -m app.gateway serve [--host H] [--port P] [--upstream URL ...]
    python -m app.gateway token --tenant acme --user alice --plan pro [--ttl 3600]

``serve`` runs the gateway (uvicorn) with the Settings (``SWITCHBOARD_*`` env) and params.yaml's
``gateway`` section. ``token`` prints a development token signed with ``SWITCHBOARD_JWT_SECRET``. Bad input:
one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from app.gateway.config import ConfigError, GatewayConfig, gateway_params
from app.settings import get_settings

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (``error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE, f"error: {message} (see `python -m app.gateway {self.prog.split()[-1]} --help`)\n"
        )


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = _Parser(
        prog="python -m app.gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default=settings.host)
    serve.add_argument("--port", type=int, default=settings.gateway_port)
    serve.add_argument(
        "--upstream",
        action="append",
        metavar="URL",
        help="a Rasa base URL (repeatable); default: SWITCHBOARD_GATEWAY_UPSTREAMS or the Rasa URL",
    )
    serve.add_argument("--log-level", default="INFO")
    token = commands.add_parser("token", help="print a development token (HS256, SWITCHBOARD_JWT_SECRET)")
    token.add_argument("--tenant", required=True)
    token.add_argument("--user", required=True)
    token.add_argument("--plan", required=True)
    token.add_argument("--ttl", type=int, default=3600, metavar="SECONDS", help="lifetime (default 3600)")
    return parser


def cmd_token(args: argparse.Namespace) -> int:
    """Print a token for the given tenant, user and plan (a plan of params.yaml's ``gateway.plans``)."""
    from app.gateway.auth import mint_token
    from app.gateway.config import MIN_SECRET_BYTES

    settings = get_settings()
    secret = settings.jwt_secret.get_secret_value()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return _fail(
            f"SWITCHBOARD_JWT_SECRET must be set to at least {MIN_SECRET_BYTES} bytes"
            + (" (it is too short)" if secret else "")
        )
    try:
        plans = gateway_params(settings).plans
    except ConfigError as exc:
        return _fail(str(exc))
    if args.plan not in plans:
        return _fail(f"unknown plan {args.plan!r}: one of {', '.join(plans)}")
    try:
        print(mint_token(secret, tenant=args.tenant, user=args.user, plan=args.plan, ttl_s=args.ttl))
    except ValueError as exc:
        return _fail(str(exc))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the gateway until interrupted; a configuration problem is one line and exit status 2."""
    import uvicorn

    from app.gateway.app import create_app
    from app.observability.logging import configure_logging

    try:
        config = GatewayConfig.from_settings(get_settings(), upstreams=args.upstream)
    except ConfigError as exc:
        return _fail(str(exc))
    configure_logging(args.log_level)
    uvicorn.run(
        create_app(config), host=args.host, port=args.port, log_config=None, access_log=False, lifespan="on"
    )
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"token": cmd_token, "serve": cmd_serve}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
