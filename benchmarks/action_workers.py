"""Knowledge and order turns with one action-server worker against two, side by side in the same run.

    python benchmarks/action_workers.py [--turns 200] [--concurrency 8 32] [--rounds 2] [--redis-url URL]
                                        [--model PATH] [--index PATH] [--json PATH]

No running bot needed: the script starts two stacks with the launcher's own ``Stack`` (CRM service, action
server, one Rasa server on SQLite) that differ only in the action server's workers (``--action-workers 1``
and ``2``). Both keep their circuit breakers and degradation windows in Redis (what several workers
require, so the one-worker row pays the same Redis round trips), each under a key prefix of this run.
Both stacks run for the whole measurement: for every number of clients and message kind, ``--turns`` turns
are shared by that many clients (each its own conversation, a new one every ``--conversation-turns``
turns), split in ``--rounds`` rounds that visit the two setups in a rotating order, so that a busy spell
of a shared machine does not land on one column only. Message kinds are ``benchmarks/rest_latency.py``'s:
``knowledge`` (router, cache, retrieval, tier 0 in the action server) and ``order`` (the ``order_status``
tool and the CRM service over HTTP); the turn loop, the percentiles and the reachability check are its
helpers too.

The table puts p50, p95 and throughput of both setups on one row per kind and number of clients, with
the two-worker throughput relative to the one-worker one. Every stack serves the built model and index
(``dvc repro`` first). Exit status: 0 every turn answered, 1 some turns failed, 2 Redis is unreachable,
the model or index is missing, or a setup did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

# `python benchmarks/action_workers.py` puts this folder first on sys.path, where benchmarks/nlu.py would
# shadow the nlu package the launcher imports: the repository goes first, this folder after it.
BENCHMARKS = Path(__file__).resolve().parent
sys.path[:] = [str(BENCHMARKS.parent), str(BENCHMARKS)] + [
    p for p in sys.path if Path(p or ".").resolve() != BENCHMARKS
]

import httpx  # noqa: E402
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
from scale_out import delete_keys, merge, redis_problem  # noqa: E402

from app.scaleout import replica_ports  # noqa: E402
from app.settings import Settings, get_settings  # noqa: E402
from app.stack import Stack, StackError  # noqa: E402

KINDS = ("knowledge", "order")  # rest_latency.MESSAGE_KINDS
WORKERS = (1, 2)


def setup_name(workers: int) -> str:
    return f"{workers} worker" + ("s" if workers > 1 else "")


def settings_for(workers: int, args: argparse.Namespace, state_dir: Path, prefix: str) -> Settings:
    """Launcher settings of one setup: its own state dir (SQLite stores) and ports, the shared state in
    Redis under this run's prefix; nothing else differs between the setups."""
    rasa_port, action_port = replica_ports(args.host, 0, 2)
    return get_settings().model_copy(
        update={
            "host": args.host,
            "state_dir": state_dir,
            "database_url": "",
            "tracker_store_db": "",
            "tracker_store_url": "",
            "lock_store_url": "",
            "event_broker_url": "",
            "rasa_replicas": 1,
            "rasa_port": rasa_port,
            "action_port": action_port,
            "crm_port": 0,
            "action_workers": workers,
            "breaker_storage_url": args.redis_url,
            "breaker_key_prefix": f"{prefix}:{workers}w",
            # limits' sliding-window keys (params.yaml storage_key_prefix) expire after two windows by themselves
            "degradation_storage_url": args.redis_url,
            "model_path": args.model,
            "index_dir": args.index,
        }
    )


async def measure(
    urls: dict[int, str], args: argparse.Namespace, console: Console
) -> dict[tuple[int, str, int], CellResult]:
    """Warm up every setup, then each (clients, kind) cell in rounds that rotate the setups' order."""
    pool = max(args.concurrency)
    timeout = httpx.Timeout(args.timeout, connect=min(args.timeout, CONNECT_TIMEOUT_S))
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    headers = {"X-Tenant-Id": args.tenant, **get_settings().channel_headers}
    clients = {
        w: httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits, headers=headers)
        for w, url in urls.items()
    }
    results: dict[tuple[int, str, int], CellResult] = {}
    try:
        deadline = time.monotonic() + args.max_seconds
        for workers, client in clients.items():
            await check_reachable(client, urls[workers])
            with console.status(f"Warming up {setup_name(workers)}…"):
                for kind in KINDS:  # concurrent, so that every worker gets some of them
                    await run_cell(client, kind, 8, args.warmup, args.conversation_turns, deadline)
        for concurrency in args.concurrency:
            for kind in KINDS:
                for round_no in range(args.rounds):
                    turns = args.turns // args.rounds + (1 if round_no < args.turns % args.rounds else 0)
                    order = WORKERS[round_no % 2 :] + WORKERS[: round_no % 2]
                    for workers in order:
                        label = f"{kind}, {concurrency} clients, {setup_name(workers)}"
                        with console.status(f"Measuring {label} (round {round_no + 1}/{args.rounds})…"):
                            part = await run_cell(
                                clients[workers], kind, concurrency, turns, args.conversation_turns, deadline
                            )
                        key = (workers, kind, concurrency)
                        results[key] = merge(results.get(key), part)
    finally:
        for client in clients.values():
            await client.aclose()
    return results


def rows_of(cells: dict[tuple[int, str, int], CellResult], args: argparse.Namespace) -> list[dict]:
    """One row per (clients, kind): both setups' figures (``CellResult.summary``) side by side."""
    rows = []
    for concurrency in args.concurrency:
        for kind in KINDS:
            row: dict = {"kind": kind, "clients": concurrency}
            for workers in WORKERS:
                row[f"{workers}w"] = cells[(workers, kind, concurrency)].summary()
            one, two = row["1w"]["req_per_s"], row["2w"]["req_per_s"]
            row["throughput_ratio"] = round(two / one, 2) if one and two else None
            rows.append(row)
    return rows


def render_table(rows: list[dict], args: argparse.Namespace, load: tuple[float, float]) -> Table:
    title = (
        f"Action-server workers: {args.turns} turns per cell, {os.cpu_count()} CPU cores, "
        f"load average {load[0]:.1f} before, {load[1]:.1f} after"
    )
    table = Table(title=title)
    table.add_column("kind")
    for column in ("clients", "1w p50 ms", "1w p95 ms", "1w req/s", "2w p50 ms", "2w p95 ms", "2w req/s"):
        table.add_column(column, justify="right")
    table.add_column("2w/1w req/s", justify="right")
    table.add_column("errors", justify="right")

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    for row in rows:
        one, two = row["1w"], row["2w"]
        errors = one["errors"] + two["errors"]
        table.add_row(
            row["kind"],
            str(row["clients"]),
            num(one["p50_ms"]),
            num(one["p95_ms"]),
            num(one["req_per_s"]),
            num(two["p50_ms"]),
            num(two["p95_ms"]),
            num(two["req_per_s"]),
            f"{row['throughput_ratio']:.2f}x" if row["throughput_ratio"] else "-",
            f"[red]{errors}[/red]" if errors else "0",
        )
    return table


def run_setups(args: argparse.Namespace, root: Path, prefix: str, console: Console) -> dict:
    """Start both setups (one after the other), measure them, stop them; the figures."""
    stacks: dict[int, Stack] = {}
    try:
        for workers in WORKERS:
            settings = settings_for(workers, args, root / f"{workers}w", prefix)
            stack = Stack(settings, services=("crm", "actions", "rasa"))
            with console.status(f"Starting {setup_name(workers)} (CRM, action server, Rasa)…"):
                stacks[workers] = stack
                stack.start(timeout=args.start_timeout)
        urls = {w: stack.rasa_urls[0] for w, stack in stacks.items()}
        cells = asyncio.run(measure(urls, args, console))
        seen = {w: action_workers_started(stack) for w, stack in stacks.items()}
    finally:
        for stack in reversed(list(stacks.values())):
            stack.stop()
    return {"cells": cells, "workers_seen": seen}


def action_workers_started(stack: Stack) -> float | None:
    """``switchboard_worker_starts_total`` of the stack's action server: how many workers really served (the
    check that the two-worker setup ran two)."""
    s = stack.settings
    try:
        text = httpx.get(f"http://{s.host}:{s.action_port}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith('switchboard_worker_starts_total{service="actions"}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--turns", type=at_least(1), default=200, metavar="N", help="turns per kind, clients and setup (200)")
    add("--concurrency", type=at_least(1), nargs="+", default=[8, 32], metavar="N", help="clients (8 32)")
    add("--rounds", type=at_least(1), default=2, metavar="N", help="rounds each cell is split in (2)")
    add("--warmup", type=at_least(0), default=16, metavar="N", help="uncounted turns per kind and setup (16)")
    add("--conversation-turns", type=at_least(1), default=10, metavar="N", help="turns per conversation (10)")
    add("--timeout", type=at_least(0.1, float), default=60.0, metavar="S", help="per request (60)")
    add("--max-seconds", type=at_least(1, float), default=900.0, metavar="S", help="cap for measuring (900)")
    add("--start-timeout", type=at_least(10, float), default=300.0, metavar="S", help="per setup start (300)")
    add("--redis-url", default="redis://127.0.0.1:6379/3", help="breakers and degradation windows")
    add("--model", type=Path, default=settings.model_path, help="the Rasa model (default: the champion)")
    add("--index", type=Path, default=settings.index_dir, help="the knowledge index (default: the built one)")
    add("--tenant", default=settings.tenant, help="sent as the X-Tenant-Id header")
    add("--host", default=settings.host, help="interface the services listen on (loopback)")
    add("--json", type=Path, metavar="PATH", help="also write the figures as JSON to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run both setups and print the table; returns the exit status (see the module docstring)."""
    args = parse_args(argv)
    if not is_loopback_url(f"http://{args.host}/"):
        print(f"error: refusing host {args.host}: loopback only", file=sys.stderr)
        return 2
    if not is_loopback_url("http://" + (urlsplit(args.redis_url).hostname or "") + "/"):
        print(
            f"error: refusing {args.redis_url}: the benchmark only uses services on loopback", file=sys.stderr
        )
        return 2
    for what, path in (("trained model", args.model), ("knowledge index", args.index / "manifest.json")):
        if not path.exists():
            print(f"error: no {what} at {path}: run `dvc repro` first", file=sys.stderr)
            return 2
    problem = redis_problem(args.redis_url)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    console = Console(width=max(Console().width, 130))  # the table's eleven columns, also when piped
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="switchboard-action-workers-") as tmp:
            measured = run_setups(args, Path(tmp), prefix, console)
    except (StackError, BotUnreachable) as exc:  # a StackError ends with the failing service's log tail
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        delete_keys(args.redis_url, prefix)
    load = (load_before, os.getloadavg()[0])
    rows = rows_of(measured["cells"], args)
    console.print(render_table(rows, args, load))
    seen = measured["workers_seen"]
    console.print(f"Action-server workers that served, from their /metrics: 1w {seen[1]}, 2w {seen[2]}")
    if any(row[f"{w}w"]["n"] + row[f"{w}w"]["errors"] < args.turns for row in rows for w in WORKERS):
        console.print(
            f"[yellow]Stopped early: the {args.max_seconds:g} s measuring cap was reached.[/yellow]"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "started_at": started_at,
            "turns_per_cell": args.turns,
            "rounds": args.rounds,
            "cpu_count": os.cpu_count(),
            "load_average_before_after": load,
            "workers_started": seen,
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"Figures written to {args.json}")
    failed = sum(row[f"{w}w"]["errors"] for row in rows for w in WORKERS)
    if failed:
        console.print(f"[red]{failed} turn(s) failed (non-200 answer, timeout or connection error).[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
