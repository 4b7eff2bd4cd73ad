"""Command line of the gateway.

    python -m app.gateway serve [--host H] [--port P] [--upstream URL ...]
    python -m app.gateway token --tenant acme --user alice --plan pro [--ttl 3600]
    python -m app.gateway key issue --tenant acme --client billing-backend --plan enterprise --name "Billing"
    python -m app.gateway key list --tenant acme
    python -m app.gateway key revoke --tenant acme --key-id 3f9a0c12ab34

``serve`` runs the gateway (uvicorn) with the Settings (``SWITCHBOARD_*`` env) and params.yaml's
``gateway`` section. ``token`` prints a development token signed with ``SWITCHBOARD_JWT_SECRET`` (with the
configured audience and issuer). ``key`` manages the API keys of server-to-server clients in our stores
(``SWITCHBOARD_DATABASE_URL`` or ``--url``): ``issue`` prints the new key once, alone on stdout (it is stored
only as a hash keyed by ``SWITCHBOARD_API_KEY_SECRET``). Errors are one line on stderr: exit status 2 for bad
input, 1 when the store cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from app.gateway.config import ConfigError, GatewayConfig, gateway_params
from app.gateway.keys import ApiKey, ApiKeyError, ApiKeyNotFound, ApiKeyStore
from app.settings import get_settings

EXIT_USAGE = 2
EXIT_STORE = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (``error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


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

    key = commands.add_parser("key", help="issue, list or revoke API keys of server-to-server clients")
    actions = key.add_subparsers(dest="key_command", required=True, parser_class=_Parser)
    issue = actions.add_parser("issue", help="issue a key (printed once: store it at once)")
    listing = actions.add_parser("list", help="the tenant's keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key (refused by the gateway from the next request)")
    for sub in (issue, listing, revoke):
        sub.add_argument("--tenant", required=True)
        sub.add_argument("--url", help="our stores' database URL (default: SWITCHBOARD_DATABASE_URL)")
    issue.add_argument("--client", required=True, help="the client's id (the key's user_id)")
    issue.add_argument("--plan", required=True, help="a plan of params.yaml gateway.plans")
    issue.add_argument("--name", required=True, help="what the key is for, e.g. 'Billing backend'")
    revoke.add_argument("--key-id", required=True, help="the key's id (the 12 hex digits after 'sbk_')")
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
        print(
            mint_token(
                secret,
                tenant=args.tenant,
                user=args.user,
                plan=args.plan,
                ttl_s=args.ttl,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
        )
    except ValueError as exc:
        return _fail(str(exc))
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    """``key issue|list|revoke``: the tenant's API keys in our stores."""
    import sqlalchemy as sa

    from app.data.db import get_engine

    settings = get_settings()
    url = args.url or settings.db_url
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return _fail(f"invalid database URL {url!r}")
    where = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        # connecting would create an empty database
        print(f"error: no database at {where}: run `python -m app.data migrate` first", file=sys.stderr)
        return EXIT_STORE
    store = ApiKeyStore(get_engine(url), settings.api_key_secret.get_secret_value())
    try:
        if args.key_command == "issue":
            plans = gateway_params(settings).plans
            if args.plan not in plans:
                return _fail(f"unknown plan {args.plan!r}: one of {', '.join(plans)}")
            issued = store.issue(args.tenant, args.client, args.name, args.plan)
            print(issued.key)
            print(
                f"issued API key {issued.record.key_id} for client {args.client} of tenant {args.tenant} "
                f"(plan {args.plan}): this is the only time it is shown",
                file=sys.stderr,
            )
        elif args.key_command == "list":
            print(_key_table(store.of_tenant(args.tenant)))
        else:
            record, changed = store.revoke(args.tenant, args.key_id)
            state = "revoked" if changed else f"already revoked at {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC:"
            print(f"{state} API key {record.key_id} ({record.name}) of client {record.user_id}")
    except (ConfigError, ApiKeyError, ApiKeyNotFound) as exc:
        return _fail(str(exc))
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0][:200]
        hint = "; run `python -m app.data migrate` first" if "api_keys" in reason else ""
        print(f"error: cannot use the API-key store at {where}: {reason}{hint}", file=sys.stderr)
        return EXIT_STORE
    return 0


def _key_table(keys: list[ApiKey]) -> str:
    """The keys as an aligned text table (an empty tenant says so)."""
    if not keys:
        return "no API keys"
    rows = [("key id", "client", "plan", "created (UTC)", "revoked (UTC)", "name")]
    for k in keys:
        revoked = f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-"
        rows.append((k.key_id, k.user_id, k.plan, f"{k.created_at:%Y-%m-%d %H:%M}", revoked, k.name))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]) for r in rows)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the gateway until interrupted; a configuration problem is one line and exit status 2."""
    import uvicorn

    from app.gateway.app import create_app
    from app.observability.logging import configure_logging
    from app.supervisor import STATE_FILE

    settings = get_settings()
    try:
        config = GatewayConfig.from_settings(settings, upstreams=args.upstream)
    except ConfigError as exc:
        return _fail(str(exc))
    configure_logging(args.log_level)
    # /health and /metrics also report the launcher's supervisor and the action server's degradation level
    app = create_app(
        config,
        supervisor_state=settings.state_dir / STATE_FILE,
        actions_url=settings.action_server_url,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False, lifespan="on")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"token": cmd_token, "serve": cmd_serve, "key": cmd_key}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
