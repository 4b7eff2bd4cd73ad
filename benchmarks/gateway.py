"""Greeting latency straight to Rasa against through the gateway, in the same run on the same machine.

    python benchmarks/gateway.py [--turns 200] [--rounds 10] [--concurrency 1] [--rasa-url URL]
                                 [--model PATH] [--json PATH]

No running bot needed: the script starts Rasa and a gateway in front of it with the launcher's own ``Stack``
(a greeting is NLU + a rule, no action server), or, with ``--rasa-url``, starts only the gateway in front
of a Rasa server that is already running (``make run``). The gateway gets a secret of this run and a params
file whose ``bench`` plan allows far more turns than the run sends, so every turn pays the full gateway
path (token check, body check, a moving-window hit on both limits, forwarding) and none is refused.

Turns alternate between the two paths in ``--rounds`` blocks (direct, gateway, direct, ...), so a drift of
the machine during the run (other work, a warming cache) falls on both alike. Every conversation has a
sender of its own; its token is minted once by the client (not measured as gateway work: a real client
reuses its token too). The turn loop, the percentiles and the reachability check are
``benchmarks/rest_latency.py``'s. Exit status: 0 every turn answered, 1 some failed, 2 a setup did not start
or the arguments are refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

# `python benchmarks/gateway.py` puts this folder first on sys.path, where benchmarks/nlu.py would shadow
# the nlu package the launcher imports: the repository goes first, this folder (rest_latency) after it.
BENCHMARKS = Path(__file__).resolve().parent
sys.path[:] = [str(BENCHMARKS.parent), str(BENCHMARKS)] + [
    p for p in sys.path if Path(p or ".").resolve() != BENCHMARKS
]

import httpx  # noqa: E402
import yaml  # noqa: E402
from pydantic import SecretStr  # noqa: E402
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

from app.gateway.auth import mint_token  # noqa: E402
from app.scaleout import replica_ports  # noqa: E402
from app.settings import Settings, get_settings  # noqa: E402
from app.stack import Stack, StackError  # noqa: E402

KIND = "greet"  # rest_latency.MESSAGE_KINDS: "hello"
BENCH_PLAN = "bench"


def bench_params(source: Path, dest: Path) -> Path:
    """A copy of params.yaml whose gateway has a ``bench`` plan and tenant ceiling no run can reach."""
    params = yaml.safe_load(source.read_text()) or {}
    gateway = params.setdefault("gateway", {})
    gateway["plans"] = {**(gateway.get("plans") or {}), BENCH_PLAN: "1000000/minute"}
    gateway["tenant_limit"] = "1000000/minute"
    gateway["storage_url"] = "memory://"
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def tokens_hook(secret: str, tenant: str):
    """An httpx request hook that signs each turn as its sender (the gateway wants ``sender`` == ``sub``),
    minting one token per conversation."""
    cache: dict[str, str] = {}

    async def sign(request: httpx.Request) -> None:
        if request.method != "POST":
            return
        sender = json.loads(request.content)["sender"]
        if sender not in cache:
            cache[sender] = mint_token(secret, tenant=tenant, user=sender, plan=BENCH_PLAN)
        request.headers["Authorization"] = f"Bearer {cache[sender]}"

    return sign


async def measure(
    rasa_url: str, gateway_url: str, secret: str, args: argparse.Namespace
) -> dict[str, CellResult]:
    """Warm both paths up, then ``--turns`` greetings per path in alternating blocks; one result per path."""
    timeout = httpx.Timeout(args.timeout, connect=min(args.timeout, CONNECT_TIMEOUT_S))
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    direct = httpx.AsyncClient(
        base_url=rasa_url,
        timeout=timeout,
        limits=limits,
        headers={"X-Tenant-Id": args.tenant, **get_settings().channel_headers},
    )
    gated = httpx.AsyncClient(
        base_url=gateway_url,
        timeout=timeout,
        limits=limits,
        event_hooks={"request": [tokens_hook(secret, args.tenant)]},
    )
    results = {
        "direct": CellResult(KIND, args.concurrency, planned=args.turns),
        "gateway": CellResult(KIND, args.concurrency, planned=args.turns),
    }
    try:
        deadline = time.monotonic() + args.max_seconds
        await check_reachable(direct, rasa_url)
        for client in (direct, gated):
            await run_cell(client, KIND, 1, args.warmup, args.conversation_turns, deadline)
        per_round = [
            args.turns // args.rounds + (1 if i < args.turns % args.rounds else 0) for i in range(args.rounds)
        ]
        for turns in per_round:
            for name, client in (("direct", direct), ("gateway", gated)):
                cell = await run_cell(
                    client, KIND, args.concurrency, turns, args.conversation_turns, deadline
                )
                total = results[name]
                total.latencies_ms += cell.latencies_ms
                total.errors += cell.errors
                total.wall_s += cell.wall_s
    finally:
        await direct.aclose()
        await gated.aclose()
    return results


def stack_for(args: argparse.Namespace, state_dir: Path) -> Stack:
    """Rasa (unless ``--rasa-url``) and a gateway in front of it, on free ports, with a secret of this run."""
    base = get_settings()
    gateway_port, rasa_port = replica_ports(args.host, 0, 2)  # two distinct free ports
    update: dict[str, object] = {
        "state_dir": state_dir,
        "database_url": "",  # our stores: SQLite in the state dir (greetings do not touch them)
        "tracker_store_db": "",
        "tracker_store_url": "",
        "lock_store_url": "",
        "rasa_replicas": 1,
        "model_path": args.model,
        "params_file": bench_params(base.params_file, state_dir / "params.yaml"),
        "gateway_port": gateway_port,
        "gateway_upstreams": args.rasa_url or "",
        "gateway_storage_url": "",
        "jwt_audience": "",  # the benchmark's tokens carry no aud/iss: its gateway checks none
        "jwt_issuer": "",
        "jwt_secret": SecretStr(secrets.token_urlsafe(32)),
    }
    if not args.rasa_url:
        update["rasa_port"] = rasa_port
    settings: Settings = base.model_copy(update=update)
    return Stack(settings, services=("gateway",) if args.rasa_url else ("rasa", "gateway"))


def render_table(results: dict[str, CellResult], args: argparse.Namespace) -> Table:
    """Both paths side by side, and what the gateway adds."""
    rows = {name: result.summary() for name, result in results.items()}
    table = Table(
        title=f"Greetings: direct to Rasa vs through the gateway ({args.concurrency} client(s), "
        f"{args.turns} turns each, {args.rounds} alternating rounds)"
    )
    for column in ("path", "n", "p50 ms", "p95 ms", "mean ms", "errors"):
        table.add_column(column, justify="left" if column == "path" else "right")

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    for name, row in rows.items():
        table.add_row(
            name,
            str(row["n"]),
            num(row["p50_ms"]),
            num(row["p95_ms"]),
            num(row["mean_ms"]),
            f"[red]{row['errors']}[/red]" if row["errors"] else "0",
        )
    d, g = rows["direct"], rows["gateway"]
    if d["n"] and g["n"]:
        table.add_row(
            "gateway adds",
            "",
            f"{g['p50_ms'] - d['p50_ms']:+,.1f}",
            f"{g['p95_ms'] - d['p95_ms']:+,.1f}",
            f"{g['mean_ms'] - d['mean_ms']:+,.1f}",
            "",
            style="bold",
        )
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--rasa-url",
        default="",
        help="a running Rasa server (loopback) to put the gateway in front of; default: start one",
    )
    add("--model", type=Path, default=settings.model_path, help="the Rasa model to serve (when starting one)")
    add("--host", default="127.0.0.1")
    add("--tenant", default=settings.tenant)
    add("--turns", type=at_least(1), default=200, help="measured greetings per path")
    add("--rounds", type=at_least(1), default=10, help="alternating blocks the turns are split into")
    add("--concurrency", type=at_least(1), default=1, help="concurrent clients per block")
    add("--warmup", type=at_least(0), default=5, help="uncounted greetings per path first")
    add(
        "--conversation-turns", type=at_least(1), default=10, help="turns before a client starts a new sender"
    )
    add("--timeout", type=at_least(0.1, float), default=30.0, help="seconds per request")
    add("--max-seconds", type=at_least(1, float), default=300.0, help="cap for the measured run")
    add("--start-timeout", type=at_least(1, float), default=240.0, help="seconds for the services to start")
    add("--json", type=Path, metavar="PATH", help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.rounds > args.turns:
        parser.error("--rounds must not exceed --turns")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.rasa_url = args.rasa_url.rstrip("/")
    if args.rasa_url and not is_loopback_url(args.rasa_url):
        print(f"error: refusing {args.rasa_url}: only localhost or 127.0.0.0/8", file=sys.stderr)
        return 2
    if not args.rasa_url and not args.model.exists():
        print(f"error: no trained model at {args.model}: run `dvc repro` first", file=sys.stderr)
        return 2
    console = Console()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="switchboard-gateway-bench-") as tmp:
        stack = stack_for(args, Path(tmp))
        try:
            with console.status(f"Starting {', '.join(stack.names)}…"):
                stack.start(timeout=args.start_timeout)
            rasa_url = args.rasa_url or stack.rasa_urls[0]
            with console.status(f"Measuring {args.turns} greetings per path…"):
                results = asyncio.run(
                    measure(
                        rasa_url,
                        stack.settings.gateway_url,
                        stack.settings.jwt_secret.get_secret_value(),
                        args,
                    )
                )
        except (StackError, BotUnreachable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            stack.stop()
    console.print(render_table(results, args))
    if args.json:
        report = {
            "started_at": started_at,
            "rasa_url": args.rasa_url or "started by the benchmark",
            "turns": args.turns,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "results": {name: r.summary() for name, r in results.items()},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"Figures written to {args.json}")
    failed = sum(r.errors for r in results.values())
    if failed:
        console.print(f"[red]{failed} turn(s) failed.[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
