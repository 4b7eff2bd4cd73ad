"""Our stores from the command line: schema, demo data, retention and per-user erasure.

    python -m app.data init      [--url URL]   migrate to the latest schema and seed the demo CRM
    python -m app.data migrate   [--url URL]   migrate only
    python -m app.data forget-user --tenant T --user U [--dry-run] [--url URL] [--tracker-url URL|PATH]
                                 [--include-pending-jobs] [--params params.yaml]
    python -m app.data purge     [--dry-run] [--params params.yaml] [--url URL] [--tracker-url URL|PATH]

forget-user and purge print rows per store (app/data/retention.py). Exit codes: 0 done; 2 bad input (a
malformed tenant or user id, an invalid option or retention policy); 1 a store is unusable (unreachable,
missing file or table). Errors are one line on stderr.

This command line is where the data layer meets the layers above it: it imports the modules that own our
user-data tables (each registers its retention handler) and builds the Redis answer cache from params.yaml
``cache`` to hand it to retention; app/data's other modules import none of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.exc import ArgumentError, SQLAlchemyError

# Imported for their retention handlers (app/data/retention.py refuses to run while one is missing).
import app.actions.records  # noqa: F401 - action_runs
import app.analytics.turn_records  # noqa: F401 - turn_records
import app.cache.backends  # noqa: F401 - answer_cache
import app.integrations.jobs  # noqa: F401 - jobs
import app.integrations.notifications  # noqa: F401 - notifications
import app.integrations.ticketing  # noqa: F401 - tickets
import app.llm.usage  # noqa: F401 - llm_calls
from app.data.db import get_engine, store_url, tracker_store_url, upgrade
from app.data.seed import seed_crm
from app.settings import get_settings, read_params


class UsageError(Exception):
    """Bad command-line usage (argparse's complaint), reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m app.data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, text in (("init", "migrate the stores and seed the demo CRM"), ("migrate", "migrate only")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--url", help="database URL (default: settings.db_url)")

    forget = commands.add_parser("forget-user", help="delete everything stored about one user of a tenant")
    forget.add_argument("--tenant", required=True, help="tenant id (as in X-Tenant-Id)")
    forget.add_argument("--user", required=True, help="user id (the REST sender)")
    forget.add_argument(
        "--include-pending-jobs",
        action="store_true",
        help="also cancel the user's pending refunds (kept by default)",
    )
    purge = commands.add_parser("purge", help="delete what is older than params.yaml `retention` allows")
    for command in (forget, purge):
        command.add_argument("--dry-run", action="store_true", help="count only; change nothing")
        command.add_argument("--url", help="our stores' database URL (default: settings.db_url)")
        command.add_argument(
            "--tracker-url",
            help="Rasa tracker store: a database URL or a SQLite file "
            "(default: settings.tracker_store_url, else settings.tracker_db)",
        )
        command.add_argument(
            "--params",
            type=Path,
            help="params.yaml with the `retention` and `cache` sections (default: settings)",
        )
    return parser


def _error(message: str) -> None:
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"error: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        _error(exc)
        return 2
    if args.command in ("init", "migrate"):
        return _prepare(args)
    return _retention(args)


def _prepare(args: argparse.Namespace) -> int:
    url = args.url or get_settings().db_url
    try:
        upgrade(url)
        if args.command == "init":
            added = seed_crm(get_engine(url))
            print(f"stores ready at {url} ({added} demo rows added)")
    except (SQLAlchemyError, OSError) as exc:
        print(
            f"error: cannot prepare the stores at {url}: {exc.__class__.__name__}: {exc}".splitlines()[0],
            file=sys.stderr,
        )
        return 1
    return 0


def _retention(args: argparse.Namespace) -> int:
    """forget-user and purge: resolve the stores, run, print the counts; one-line errors, exit 1 or 2."""
    import redis

    from app.data import retention

    try:
        settings = get_settings()
        params = _load_params(args.params or settings.params_file)
        stores = _engine(args.url or settings.db_url, "stores database")
        # the scale-out tracker store (PostgreSQL) when configured, else the SQLite file Rasa writes
        tracker_url = store_url(args.tracker_url) if args.tracker_url else tracker_store_url(settings)
        tracker = _engine(tracker_url, "Rasa tracker store")
        cache = _redis_cache(params.get("cache"))
        if args.command == "forget-user":
            report = retention.forget_user(
                args.tenant,
                args.user,
                stores=stores,
                tracker=tracker,
                redis_cache=cache,
                default_tenant=settings.tenant,
                include_pending_jobs=args.include_pending_jobs,
                dry_run=args.dry_run,
            )
            subject = f"{args.tenant}/{args.user}"
        else:
            policy = retention.RetentionPolicy.from_params(params.get("retention"))
            report = retention.purge(
                policy, stores=stores, tracker=tracker, redis_cache=cache, dry_run=args.dry_run
            )
            subject = "all tenants"
    except retention.BadInput as exc:
        _error(exc)
        return 2
    except retention.RetentionError as exc:
        _error(exc)
        return 1
    except (SQLAlchemyError, redis.RedisError, OSError) as exc:
        _error(
            f"{args.command} failed, nothing was changed in the failing database: "
            f"{retention.describe_error(exc)}"
        )
        return 1
    _print_report(report, subject)
    return 0


def _load_params(path: Path) -> dict[str, Any]:
    """The params file through the settings' reader; its problems as the CLI's errors."""
    from app.data.retention import BadInput, RetentionError

    try:
        return read_params(path)
    except FileNotFoundError as exc:
        raise RetentionError(f"no params file at {path}") from exc
    except ValueError as exc:  # not YAML, or not a mapping of sections
        raise BadInput(str(exc)) from exc


def _engine(url: str, what: str) -> Any:
    """The engine for ``url``; a SQLite file must exist (connecting would create an empty one)."""
    import sqlalchemy as sa

    from app.data.retention import BadInput, RetentionError

    try:
        parsed = sa.engine.make_url(url)
    except ArgumentError as exc:
        raise BadInput(f"invalid {what} URL {url!r}") from exc
    on_disk = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if on_disk and not Path(parsed.database).is_file():
        raise RetentionError(f"no {what} at {parsed.database} (wrong path or URL?)")
    try:
        return get_engine(url)
    except (ArgumentError, ImportError) as exc:  # an unknown dialect or driver
        raise BadInput(f"unusable {what} URL {url!r}: {exc}") from exc


def _redis_cache(section: dict[str, Any] | None) -> Any:
    """The Redis answer cache when params.yaml (or the environment) configures it; else ``None``."""
    import redis

    from app.cache.backends import RedisCacheBackend
    from app.cache.cache import CacheSettings
    from app.data.retention import BadInput, RetentionError

    try:
        settings = CacheSettings.from_params(section)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    if settings.backend != "redis":
        return None
    if not settings.redis_url:
        raise BadInput("cache.backend is redis but cache.redis_url is empty")
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5.0, socket_connect_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RetentionError(f"cannot reach the Redis cache at {settings.redis_url}: {exc}") from exc
    return RedisCacheBackend(client, settings.key_prefix)


def _print_report(report: Any, subject: str) -> None:
    from rich.console import Console
    from rich.table import Table

    verb = (
        "would be deleted or anonymised (dry run: nothing changed)"
        if report.dry_run
        else "deleted or anonymised"
    )
    table = Table()
    table.add_column("store")
    table.add_column("rows", justify="right")
    for store, count in report.counts.items():
        table.add_row(store, str(count))
    table.add_row("total", str(report.total), style="bold")
    console = Console(file=sys.stdout, width=110)
    console.print(f"{report.action.replace('_', '-')} {subject}: rows {verb}", markup=False, highlight=False)
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    if not report.dry_run:
        console.print("audit row written to retention_audit")


if __name__ == "__main__":
    sys.exit(main())
