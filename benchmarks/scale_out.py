"""Greeting throughput and latency with one Rasa replica against two, on the shared stores.

    python benchmarks/scale_out.py [--turns 480] [--concurrency 8] [--rounds 4] [--postgres-url URL]
                                   [--redis-url URL] [--model PATH] [--json PATH]

No running bot needed: the script starts Rasa for every setup below with the launcher's own ``Stack`` (a
greeting is NLU + a rule, no action server), warms each replica up, then sends each setup ``--turns``
greetings shared by ``--concurrency`` clients (each its own conversation, a new one every
``--conversation-turns`` turns), split in ``--rounds`` rounds that visit the setups in a rotating order, so
that a busy spell of a shared machine does not land on one row only; then it stops them all. Setups:

- ``baseline``: one replica, SQLite tracker store, in-memory lock store (what ``make run`` serves);
- ``1 replica``: PostgreSQL tracker store + Redis lock store;
- ``2 replicas``: the same stores, each request sent to the next replica in turn (what a round-robin
  gateway does), so consecutive turns of one conversation land on different replicas.

One table compares them side by side. PostgreSQL gets a database of its own (created, dropped at the end)
and Redis a key prefix of its own (deleted at the end); both must be on loopback. The turn loop, the
percentiles and the reachability check are ``benchmarks/rest_latency.py``'s. Exit status: 0 every turn
answered, 1 some turns failed, 2 a store is unreachable, the model is missing or a setup did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# `python benchmarks/scale_out.py` puts this folder first on sys.path, where benchmarks/nlu.py would shadow
# the nlu package the launcher imports: the repository goes first, this folder (rest_latency) after it.
BENCHMARKS = Path(__file__).resolve().parent
sys.path[:] = [str(BENCHMARKS.parent), str(BENCHMARKS)] + [
    p for p in sys.path if Path(p or ".").resolve() != BENCHMARKS
]

import httpx  # noqa: E402
import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from rest_latency import (  # noqa: E402 - the helpers are shared, not copied
    CONNECT_TIMEOUT_S,
    BotUnreachable,
    CellResult,
    at_least,
    check_reachable,
    is_loopback_url,
    run_cell,
)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from app.scaleout import ensure_postgres_database, replica_ports  # noqa: E402
from app.settings import Settings, get_settings  # noqa: E402
from app.stack import Stack, StackError  # noqa: E402

KIND = "greet"  # rest_latency.MESSAGE_KINDS: "hello"


@dataclass(frozen=True)
class Setup:
    """One row of the table: how many replicas, on which stores."""

    name: str
    replicas: int
    shared_stores: bool  # PostgreSQL tracker + Redis lock store; else SQLite + in-memory

    @property
    def tracker(self) -> str:
        return "PostgreSQL" if self.shared_stores else "SQLite"

    @property
    def lock(self) -> str:
        return "Redis" if self.shared_stores else "in-memory"


SETUPS = (Setup("baseline", 1, False), Setup("1 replica", 1, True), Setup("2 replicas", 2, True))


class RoundRobin:
    """Stands in for the one ``httpx.AsyncClient`` that ``rest_latency.run_cell`` sends through: each
    request goes to the next replica, as a round-robin load balancer would send it."""

    def __init__(self, clients: Sequence[httpx.AsyncClient]) -> None:
        self._next = itertools.cycle(clients)

    async def post(self, *args: Any, **kwargs: Any) -> httpx.Response:
        return await next(self._next).post(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> httpx.Response:
        return await next(self._next).get(*args, **kwargs)


def merge(into: CellResult | None, part: CellResult) -> CellResult:
    """One setup's rounds as one cell: all latencies, errors and wall time together."""
    if into is None:
        return part
    into.planned += part.planned
    into.latencies_ms.extend(part.latencies_ms)
    into.errors += part.errors
    into.wall_s += part.wall_s
    return into


async def measure(
    setups: Sequence[tuple[Setup, Sequence[str]]], args: argparse.Namespace
) -> dict[str, CellResult]:
    """Check and warm up every replica, then measure the setups in ``--rounds`` interleaved rounds.

    All setups run at the same time and are measured in turn, in a rotating order, so that a busy spell of
    the machine (other processes on the same cores) falls on every setup alike instead of on one row.
    """
    timeout = httpx.Timeout(args.timeout, connect=min(args.timeout, CONNECT_TIMEOUT_S))
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    headers = {"X-Tenant-Id": args.tenant, **get_settings().channel_headers}
    clients = {
        setup.name: [
            httpx.AsyncClient(base_url=u, timeout=timeout, limits=limits, headers=headers) for u in urls
        ]
        for setup, urls in setups
    }
    results: dict[str, CellResult | None] = {setup.name: None for setup, _ in setups}
    try:
        deadline = time.monotonic() + args.max_seconds
        for setup, urls in setups:
            for url, client in zip(urls, clients[setup.name], strict=True):
                await check_reachable(client, url)
                await run_cell(client, KIND, 1, args.warmup, args.conversation_turns, deadline)
        for round_no in range(args.rounds):
            turns = args.turns // args.rounds + (1 if round_no < args.turns % args.rounds else 0)
            order = [setups[(round_no + i) % len(setups)][0] for i in range(len(setups))]
            for setup in order:
                part = await run_cell(
                    RoundRobin(clients[setup.name]),
                    KIND,
                    args.concurrency,
                    turns,
                    args.conversation_turns,
                    deadline,
                )
                results[setup.name] = merge(results[setup.name], part)
    finally:
        for group in clients.values():
            for client in group:
                await client.aclose()
    return {name: result for name, result in results.items() if result is not None}


def settings_for(setup: Setup, args: argparse.Namespace, state_dir: Path, prefix: str) -> Settings:
    """Launcher settings for ``setup``: its own state dir and ports; the shared stores when it uses them."""
    shared = {
        "tracker_store_url": args.postgres_url if setup.shared_stores else "",
        "lock_store_url": args.redis_url if setup.shared_stores else "",
        "lock_store_key_prefix": prefix if setup.shared_stores else "",
    }
    return get_settings().model_copy(
        update={
            "state_dir": state_dir,
            "database_url": "",  # our stores: SQLite in the state dir (greetings do not touch them)
            "tracker_store_db": "",
            "rasa_port": replica_ports(args.host, 0, 1)[0],  # the next ones: Stack
            "rasa_replicas": setup.replicas,
            "model_path": args.model,
            **shared,
        }
    )


def run_setups(args: argparse.Namespace, root: Path, prefix: str, console: Console) -> list[dict]:
    """Start every setup (one after the other: each loads its model alone), measure them, stop them all;
    the table rows (figures from ``CellResult.summary``)."""
    stacks: list[tuple[Setup, Stack, float]] = []
    try:
        for setup in SETUPS:
            settings = settings_for(setup, args, root / setup.name.replace(" ", "-"), prefix)
            stack = Stack(settings, services=("rasa",))
            with console.status(f"Starting {setup.name} ({setup.replicas} Rasa replica(s))…"):
                started = time.monotonic()
                try:
                    stack.start(timeout=args.start_timeout)
                finally:
                    stacks.append((setup, stack, time.monotonic() - started))  # start() stops it on failure
        with console.status(f"Measuring {len(SETUPS)} setups with {args.concurrency} concurrent clients…"):
            results = asyncio.run(measure([(setup, stack.rasa_urls) for setup, stack, _ in stacks], args))
    finally:
        for _, stack, _ in reversed(stacks):
            stack.stop()
    return [
        {
            "setup": setup.name,
            "replicas": setup.replicas,
            "tracker": setup.tracker,
            "lock": setup.lock,
            "start_s": round(start_s, 1),
            **results[setup.name].summary(),
        }
        for setup, _, start_s in stacks
    ]


def render_table(rows: list[dict], args: argparse.Namespace) -> Table:
    """The setups side by side; throughput also relative to the baseline row."""
    table = Table(title=f"Greetings, {args.concurrency} concurrent clients, {args.turns} turns per setup")
    columns = (
        "setup",
        "replicas",
        "tracker",
        "lock",
        "n",
        "p50 ms",
        "p95 ms",
        "req/s",
        "vs baseline",
        "errors",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in {"setup", "tracker", "lock"} else "right")
    base = rows[0]["req_per_s"] if rows and rows[0]["setup"] == "baseline" else None

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    for row in rows:
        ratio = f"{row['req_per_s'] / base:.2f}x" if base and row["req_per_s"] else "-"
        errors = f"[red]{row['errors']}[/red]" if row["errors"] else "0"
        table.add_row(
            row["setup"],
            str(row["replicas"]),
            row["tracker"],
            row["lock"],
            str(row["n"]),
            num(row["p50_ms"]),
            num(row["p95_ms"]),
            num(row["req_per_s"]),
            ratio,
            errors,
        )
    return table


def check_stores(args: argparse.Namespace) -> str | None:
    """None when PostgreSQL and Redis answer on loopback, else the one-line reason."""
    for url in (args.postgres_url, args.redis_url):
        if not is_loopback_url("http://" + (urlsplit(url).hostname or "") + "/"):
            return f"refusing {url}: the benchmark only uses services on localhost or 127.0.0.0/8"
    problem = redis_problem(args.redis_url)
    if problem:
        return problem
    try:  # last: only a run that goes ahead creates a database (dropped by clean_up)
        ensure_postgres_database(args.postgres_url)
    except sa.exc.SQLAlchemyError as exc:
        return f"PostgreSQL not usable at {args.postgres_url}: {str(exc).splitlines()[0]}"
    return None


def redis_problem(url: str) -> str | None:
    """None when Redis answers at ``url``, else the one-line reason."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {url}: {exc}"
    finally:
        client.close()
    return None


def delete_keys(url: str, prefix: str) -> None:
    """Delete the run's Redis keys (``prefix:*``)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def clean_up(args: argparse.Namespace, prefix: str) -> None:
    """Drop the benchmark's PostgreSQL database and delete its Redis keys."""
    target = sa.engine.make_url(args.postgres_url).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(target.database)
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    except sa.exc.SQLAlchemyError as exc:
        print(f"warning: could not drop {target.database}: {str(exc).splitlines()[0]}", file=sys.stderr)
    finally:
        admin.dispose()
    delete_keys(args.redis_url, prefix)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    settings = get_settings()
    run = uuid.uuid4().hex[:10]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--turns", type=at_least(1), default=480, metavar="N", help="greetings measured per setup (480)")
    add("--concurrency", type=at_least(1), default=8, metavar="N", help="concurrent clients (8)")
    add(
        "--warmup", type=at_least(0), default=5, metavar="N", help="uncounted greetings per replica first (5)"
    )
    add("--conversation-turns", type=at_least(1), default=10, metavar="N", help="turns per conversation (10)")
    add("--timeout", type=at_least(0.1, float), default=30.0, metavar="S", help="per request (30)")
    add(
        "--rounds",
        type=at_least(1),
        default=4,
        metavar="N",
        help="interleaved rounds the turns are split in (4)",
    )
    add("--max-seconds", type=at_least(1, float), default=240.0, metavar="S", help="cap for measuring (240)")
    add("--start-timeout", type=at_least(10, float), default=300.0, metavar="S", help="per setup start (300)")
    add(
        "--postgres-url",
        default=f"postgresql+psycopg://postgres@127.0.0.1:5432/switchboard_bench_{run}",
        help="tracker store database, created and dropped (default: a new one on the local server)",
    )
    add(
        "--redis-url", default="redis://127.0.0.1:6379/1", help="lock store (keys under a prefix of this run)"
    )
    add(
        "--model",
        type=Path,
        default=settings.model_path,
        help="the Rasa model (default: the served champion)",
    )
    add("--tenant", default=settings.tenant, help="sent as the X-Tenant-Id header")
    add("--host", default=settings.host, help="interface the replicas listen on (loopback)")
    add("--json", type=Path, metavar="PATH", help="also write the figures as JSON to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every setup and print the table; returns the exit status (see the module docstring)."""
    args = parse_args(argv)
    if not is_loopback_url(f"http://{args.host}/"):
        print(f"error: refusing host {args.host}: loopback only", file=sys.stderr)
        return 2
    if not args.model.exists():
        print(f"error: no trained model at {args.model}: run `dvc repro` first", file=sys.stderr)
        return 2
    problem = check_stores(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    console = Console(width=max(Console().width, 120))  # the table's ten columns, also when piped
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="switchboard-scale-out-") as tmp:
            rows = run_setups(args, Path(tmp), prefix, console)
    except (StackError, BotUnreachable) as exc:  # a StackError ends with the failing service's log tail
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        clean_up(args, prefix)

    console.print(render_table(rows, args))
    if any(row["n"] + row["errors"] < args.turns for row in rows):
        console.print(
            f"[yellow]Stopped early: the {args.max_seconds:g} s measuring cap was reached.[/yellow]"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "started_at": started_at,
            "turns": args.turns,
            "concurrency": args.concurrency,
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"Figures written to {args.json}")
    failed = sum(row["errors"] for row in rows)
    if failed:
        console.print(f"[red]{failed} turn(s) failed (non-200 answer, timeout or connection error).[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
