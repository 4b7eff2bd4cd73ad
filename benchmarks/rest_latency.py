"""REST turn latency and throughput of the running bot, per message kind and concurrency.

    python benchmarks/rest_latency.py [--url http://127.0.0.1:5005] [--turns 200] [--concurrency 1 8]
                                      [--tenant acme] [--max-seconds 120] [--json PATH]

Start the bot first (``make run`` in another terminal). For each concurrency level and message kind, the
given number of turns is shared by that many concurrent clients; each client talks as its own sender, so
conversations are independent, and starts a new conversation every ``--conversation-turns`` turns so
trackers stay as short as real ones. The ``baseline`` kind is ``GET /`` of the Rasa server: the HTTP
floor, without NLU. A few warm-up turns per kind come first and are not counted.

Bounded: turns per cell, a per-request timeout and a wall-clock cap (no turn starts after it; turns in
flight end within the timeout). Only loopback URLs are accepted. Exit status: 0 all turns answered,
1 some turns failed, 2 the bot is not reachable or the arguments are refused.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.table import Table

from app.analytics.stats import percentile
from app.settings import get_settings

# Message kind -> what the user says; None is the baseline (GET / of the Rasa server).
MESSAGE_KINDS: dict[str, str | None] = {
    "baseline": None,
    "greet": "hello",
    "knowledge": "How long does delivery to Germany take?",
    "order": "Where is my order ORD-10042?",
}
WEBHOOK_PATH = "/webhooks/rest/webhook"
CONNECT_TIMEOUT_S = 3.0
LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")


class BotUnreachable(Exception):
    """The bot did not answer the reachability check; the message says where and why."""


def is_loopback_url(url: str) -> bool:
    """True for an http(s) URL whose host is ``localhost`` or an IPv4 address in 127.0.0.0/8."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in {"http", "https"} or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host) in LOOPBACK_V4
    except ValueError:
        return False


@dataclass
class CellResult:
    """The turns of one message kind at one concurrency level."""

    kind: str
    concurrency: int
    planned: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The cell's figures: counts, latency percentiles in ms (None without answers) and req/s."""
        n = len(self.latencies_ms)

        def pct(q: float) -> float | None:
            return round(percentile(self.latencies_ms, q), 2) if n else None

        return {
            "kind": self.kind,
            "message": MESSAGE_KINDS[self.kind],
            "concurrency": self.concurrency,
            "planned": self.planned,
            "n": n,
            "errors": self.errors,
            "p50_ms": pct(50),
            "p95_ms": pct(95),
            "p99_ms": pct(99),
            "mean_ms": round(sum(self.latencies_ms) / n, 2) if n else None,
            "req_per_s": round(n / self.wall_s, 2) if n else None,
            "wall_s": round(self.wall_s, 3),
        }


def new_sender() -> str:
    """A fresh sender id, so the bot starts a new conversation."""
    return f"bench-{uuid.uuid4().hex[:16]}"


async def turn(http: httpx.AsyncClient, kind: str, sender: str) -> bool:
    """One turn of ``kind`` as ``sender``; True if the bot answered 200."""
    text = MESSAGE_KINDS[kind]
    try:
        if text is None:
            response = await http.get("/")
        else:
            response = await http.post(WEBHOOK_PATH, json={"sender": sender, "message": text})
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def run_cell(
    http: httpx.AsyncClient, kind: str, concurrency: int, turns: int, conversation_turns: int, deadline: float
) -> CellResult:
    """``turns`` turns of ``kind`` shared by ``concurrency`` clients, none started after ``deadline``."""
    result = CellResult(kind, concurrency, planned=turns)
    remaining = turns

    async def client() -> None:
        nonlocal remaining
        sender, sent = new_sender(), 0
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            if sent == conversation_turns:
                sender, sent = new_sender(), 0
            started = time.perf_counter()
            ok = await turn(http, kind, sender)
            elapsed_ms = (time.perf_counter() - started) * 1000
            sent += 1
            if ok:
                result.latencies_ms.append(elapsed_ms)
            else:
                result.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.wall_s = time.perf_counter() - started
    return result


async def check_reachable(http: httpx.AsyncClient, url: str) -> None:
    """Raise ``BotUnreachable`` unless a Rasa server answers ``GET /`` at ``url``."""
    try:
        response = await http.get("/")
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise BotUnreachable(
            f"the bot is not reachable at {url} ({reason}); start it with `make run` in another terminal"
        ) from exc
    if response.status_code != 200 or not response.text.startswith("Hello from Rasa"):
        raise BotUnreachable(f"{url} answers GET / with HTTP {response.status_code}, not as a Rasa server")


async def run_benchmark(args: argparse.Namespace, console: Console) -> list[CellResult]:
    """Check the bot, warm it up, then measure every (concurrency, kind) cell within the time cap."""
    deadline = time.monotonic() + args.max_seconds
    timeout = httpx.Timeout(args.timeout, connect=min(args.timeout, CONNECT_TIMEOUT_S))
    pool = max(args.concurrency)
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    headers = {"X-Tenant-Id": args.tenant, **get_settings().channel_headers}
    async with httpx.AsyncClient(base_url=args.url, timeout=timeout, limits=limits, headers=headers) as http:
        await check_reachable(http, args.url)
        with console.status("Warming up…"):
            for kind in MESSAGE_KINDS:
                await run_cell(http, kind, 1, args.warmup, args.conversation_turns, deadline)
        results = []
        for concurrency in args.concurrency:
            for kind in MESSAGE_KINDS:
                with console.status(f"Measuring {kind} with {concurrency} concurrent client(s)…"):
                    results.append(
                        await run_cell(http, kind, concurrency, args.turns, args.conversation_turns, deadline)
                    )
    return results


def render_table(results: list[CellResult], url: str, tenant: str) -> Table:
    """A Rich table: one row per kind and concurrency, grouped by concurrency."""
    table = Table(title=f"REST turn latency: {url} (tenant {tenant})")
    for column in ("kind", "clients", "n", "p50 ms", "p95 ms", "p99 ms", "req/s", "errors"):
        table.add_column(column, justify="left" if column == "kind" else "right")

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    for index, result in enumerate(results):
        row = result.summary()
        last_of_group = index + 1 == len(results) or results[index + 1].concurrency != result.concurrency
        errors = f"[red]{row['errors']}[/red]" if row["errors"] else "0"
        table.add_row(
            row["kind"],
            str(row["concurrency"]),
            str(row["n"]),
            cell(row["p50_ms"]),
            cell(row["p95_ms"]),
            cell(row["p99_ms"]),
            cell(row["req_per_s"]),
            errors,
            end_section=last_of_group,
        )
    return table


def at_least(minimum: float, cast: Callable[[str], float] = int) -> Callable[[str], float]:
    """An argparse type: a number (``int`` or ``float``) no smaller than ``minimum``."""

    def parse(text: str) -> float:
        value = cast(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    return parse


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the module docstring's layout and shows each option's default."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; defaults for URL and tenant come from the Switchboard settings."""
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    add = parser.add_argument
    add("--url", default=settings.rasa_url, help="Rasa server base URL (loopback only)")
    add("--tenant", default=settings.tenant, help="sent as the X-Tenant-Id header")
    add("--turns", type=at_least(1), default=200, metavar="N", help="turns per kind and concurrency")
    add("--concurrency", type=at_least(1), nargs="+", default=[1, 8], metavar="N", help="concurrent clients")
    add("--warmup", type=at_least(0), default=3, metavar="N", help="uncounted turns per kind first")
    add(
        "--conversation-turns",
        type=at_least(1),
        default=10,
        metavar="N",
        help="turns after which a client starts a new conversation (new sender id)",
    )
    add("--timeout", type=at_least(0.1, float), default=30.0, metavar="S", help="per request")
    add("--max-seconds", type=at_least(1, float), default=120.0, metavar="S", help="cap for the run")
    add("--json", type=Path, metavar="PATH", help="also write the figures as JSON to this file")
    return parser.parse_args(argv)


def write_json(path: Path, args: argparse.Namespace, results: list[CellResult], started_at: str) -> None:
    """The run's settings and each cell's figures as JSON."""
    report = {
        "started_at": started_at,
        "url": args.url,
        "tenant": args.tenant,
        "turns_per_cell": args.turns,
        "warmup_turns_per_kind": args.warmup,
        "conversation_turns": args.conversation_turns,
        "max_seconds": args.max_seconds,
        "results": [result.summary() for result in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; returns the exit status (see the module docstring)."""
    args = parse_args(argv)
    args.url = args.url.rstrip("/")
    if not is_loopback_url(args.url):
        print(
            f"error: refusing {args.url}: the benchmark only sends traffic to localhost or 127.0.0.0/8",
            file=sys.stderr,
        )
        return 2
    console = Console()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        results = asyncio.run(run_benchmark(args, console))
    except BotUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

    console.print(render_table(results, args.url, args.tenant))
    if any(len(r.latencies_ms) + r.errors < r.planned for r in results):
        console.print(f"[yellow]Stopped early: the {args.max_seconds:g} s cap was reached.[/yellow]")
    if args.json:
        write_json(args.json, args, results, started_at)
        console.print(f"Figures written to {args.json}")
    failed = sum(r.errors for r in results)
    if failed:
        console.print(f"[red]{failed} turn(s) failed (non-200 answer, timeout or connection error).[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
