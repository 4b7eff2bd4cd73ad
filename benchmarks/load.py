"""Mixed traffic through the gateway at rising concurrency, on one SQLite replica and on two replicas over
PostgreSQL + Redis, with every accepted turn checked against the tracker store (lost turns).

    python benchmarks/load.py [--concurrency 8 32 64] [--duration 180] [--setups sqlite scale-out]
                              [--baseline-duration 60] [--model PATH] [--index PATH]
                              [--postgres-url URL] [--redis-url URL] [--json PATH]

No running bot needed: for each setup the script starts the CRM service, the action server, Rasa, the
gateway and the turn recorder (what ``make run`` serves, without the Streamlit app) with the launcher's own
``Stack`` on free ports, in a state directory of its own:

- ``sqlite``: one Rasa replica, SQLite tracker store and our stores, in-memory lock store (``make run``);
- ``scale-out``: two Rasa replicas, tracker store and our stores on PostgreSQL, lock store and the gateway's
  rate-limit counters on Redis (docs/scale-out.md). PostgreSQL gets a database of its own (created, dropped
  at the end) and Redis a key prefix of its own (deleted at the end); both must be on loopback.

Traffic: ``--concurrency`` clients at a time, each talking as one user after another (a user per
conversation, its JWT minted with ``app.gateway.auth.mint_token`` on a plan whose limits no run reaches, so
rate limits are not the bottleneck; a 429 would be counted apart, as a configured refusal). A conversation
is a greeting, knowledge questions, an order lookup, a refund or a handoff to a person (:data:`MIX`); every
user owns an order of their own in the CRM (seeded before the run), so lookups and refunds succeed as a
real customer's would. Each concurrency level runs for ``--duration`` seconds (no turn starts later).
The baseline, in the same run: greetings only, 8 clients, on the ``sqlite`` setup.

Lost turns: every turn carries an ``X-Request-Id`` of its own, which the REST channel stores as the
``correlation_id`` in the metadata of the turn's ``user`` event. After the run the ``user`` events of the
run's senders (their ids are known) are read from the tracker store: an accepted turn (HTTP 200) with no
event is lost; 0 is the target. Turns refused or timed out that the bot stored anyway are reported too.

Exit status: 0 every turn accepted and stored, 1 some turns failed or were lost, 2 a setup did not start, a
store is unreachable, the model or index is missing, or the arguments are refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

# `python benchmarks/load.py` puts this folder first on sys.path, where benchmarks/nlu.py would shadow the
# nlu package the launcher imports: the repository goes first, this folder (the shared helpers) after it.
BENCHMARKS = Path(__file__).resolve().parent
sys.path[:] = [str(BENCHMARKS.parent), str(BENCHMARKS)] + [
    p for p in sys.path if Path(p or ".").resolve() != BENCHMARKS
]

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402
from gateway import bench_params, tokens_hook  # noqa: E402 - the helpers are shared, not copied
from pydantic import SecretStr  # noqa: E402
from rest_latency import CONNECT_TIMEOUT_S, WEBHOOK_PATH, at_least, is_loopback_url  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: E402
from rich.table import Table  # noqa: E402
from scale_out import check_stores, clean_up  # noqa: E402

from app.analytics.stats import percentile  # noqa: E402
from app.data.db import get_engine, tracker_store_url  # noqa: E402
from app.data.seed import DemoOrder, DemoTenant, insert_missing  # noqa: E402
from app.data.tracker import events  # noqa: E402 - Rasa's `events` table, declared once
from app.identity import conversation_id  # noqa: E402
from app.offline import apply_offline_env  # noqa: E402
from app.scaleout import replica_ports  # noqa: E402
from app.settings import Settings, get_settings  # noqa: E402
from app.stack import Stack, StackError  # noqa: E402

SERVICES = ("crm", "actions", "rasa", "gateway", "recorder")  # what `make run` serves, but the UI
BASELINE_CLIENTS = 8
FIRST_ORDER = 50000  # users' own orders are ORD-50000 to ORD-99999 (the demo data uses 1xxxx and 3xxxx)
MAX_USERS = 100000 - FIRST_ORDER

QUESTIONS = (
    "How long does standard delivery to Germany take?",
    "How long do I have to return an item?",
    "Do you deliver to Switzerland?",
    "Which payment methods do you accept?",
    "What time do I need to order by for my order to leave the warehouse the same day?",
    "How do I change my delivery address?",
)
# Conversation kind -> (share of conversations, its turns; "{order}" is the user's own order).
MIX: dict[str, tuple[float, tuple[str, ...]]] = {
    "greeting": (0.3, ("hello", "thank you")),
    "knowledge": (0.3, ("{question}", "{question}")),
    "order": (0.2, ("Where is my order {order}?", "thanks")),
    "refund": (0.1, ("I want a refund", "{order}")),
    "handoff": (0.1, ("I want to talk to a person", "are you still there?")),
}
# The baseline: plain greetings (NLU + a rule), conversations as long as the mix's.
GREETINGS_ONLY: dict[str, tuple[float, tuple[str, ...]]] = {"greeting": (1.0, ("hello", "hi"))}


@dataclass(frozen=True)
class Setup:
    """Where the bot runs: replicas and stores."""

    name: str
    code: str  # in request ids
    replicas: int
    shared_stores: bool  # PostgreSQL tracker and our stores, Redis lock store and rate-limit counters

    @property
    def stores(self) -> str:
        return "PostgreSQL + Redis" if self.shared_stores else "SQLite"


SETUPS = {"sqlite": Setup("sqlite", "q", 1, False), "scale-out": Setup("scale-out", "x", 2, True)}


@dataclass
class Turn:
    """One turn sent: what it was, how it ended (an HTTP status, ``timeout`` or ``connection``)."""

    kind: str
    request_id: str
    status: str
    latency_ms: float
    reply: str = ""  # the bot's texts, for the examples in the JSON report

    @property
    def accepted(self) -> bool:
        return self.status == "200"


@dataclass
class Cell:
    """The turns of one traffic at one concurrency level on one setup, and what the tracker store kept."""

    setup: str
    traffic: str  # "mixed" or "baseline"
    concurrency: int
    id_prefix: str  # of this cell's request ids
    turns: list[Turn] = field(default_factory=list)
    wall_s: float = 0.0
    reused_users: int = 0
    stored: Counter[str] | None = None  # request id -> user events with it (None: not checked)

    def summary(self) -> dict[str, Any]:
        """Counts, latency percentiles of accepted turns (ms), req/s, errors by status and lost turns."""
        accepted = [t for t in self.turns if t.accepted]
        latencies = [t.latency_ms for t in accepted]
        statuses = Counter(t.status for t in self.turns if not t.accepted)
        rate_limited = statuses.pop("429", 0)

        def pct(q: float) -> float | None:
            return round(percentile(latencies, q), 1) if latencies else None

        figures: dict[str, Any] = {
            "setup": self.setup,
            "traffic": self.traffic,
            "concurrency": self.concurrency,
            "sent": len(self.turns),
            "accepted": len(accepted),
            "rate_limited": rate_limited,
            "errors": dict(sorted(statuses.items())),
            "p50_ms": pct(50),
            "p95_ms": pct(95),
            "p99_ms": pct(99),
            "req_per_s": round(len(accepted) / self.wall_s, 2) if self.wall_s and accepted else None,
            "wall_s": round(self.wall_s, 1),
            "reused_users": self.reused_users,
            "by_kind": {
                kind: {
                    "accepted": len(lat),
                    "p50_ms": round(percentile(lat, 50), 1),
                    "p95_ms": round(percentile(lat, 95), 1),
                    "examples": list(dict.fromkeys(t.reply for t in accepted if t.kind == kind))[:3],
                }
                for kind in dict.fromkeys(t.kind for t in accepted)
                if (lat := [t.latency_ms for t in accepted if t.kind == kind])
            },
        }
        if self.stored is not None:
            stored_ids = {rid for rid in self.stored if rid.startswith(self.id_prefix)}
            figures["stored"] = sum(1 for t in accepted if t.request_id in stored_ids)
            figures["lost"] = figures["accepted"] - figures["stored"]
            figures["stored_not_accepted"] = sum(
                1 for t in self.turns if not t.accepted and t.request_id in stored_ids
            )
            figures["stored_twice"] = sum(1 for rid in stored_ids if self.stored[rid] > 1)
        return figures


class Users:
    """The run's users, one per conversation, each owning one order; wraps around (counted) when used up."""

    def __init__(self, prefix: str, count: int) -> None:
        self.ids = [f"{prefix}{n:05d}" for n in range(count)]
        self._next = 0

    def order_of(self, index: int) -> str:
        return f"ORD-{FIRST_ORDER + index}"

    def take(self) -> tuple[str, str, bool]:
        """(user id, their order id, whether the user talked before)."""
        index = self._next % len(self.ids)
        reused = self._next >= len(self.ids)
        self._next += 1
        return self.ids[index], self.order_of(index), reused

    def crm_rows(self) -> DemoTenant:
        """The users and their orders as CRM rows (a shipped order each)."""
        eta = date.today()
        return DemoTenant(
            customers=tuple(
                {"user_id": user, "name": f"Load user {n}", "email": f"{user}@example.invalid"}
                for n, user in enumerate(self.ids)
            ),
            orders=tuple(
                DemoOrder(self.order_of(n), user, "shipped", "DHL", f"JD{n:012d}", eta, "19.90")
                for n, user in enumerate(self.ids)
            ),
        )


def script(
    kind: str, mix: dict[str, tuple[float, tuple[str, ...]]], order: str, rng: random.Random
) -> list[str]:
    """The messages of one conversation of ``kind``."""
    return [text.format(order=order, question=rng.choice(QUESTIONS)) for text in mix[kind][1]]


async def send(http: httpx.AsyncClient, user: str, text: str, kind: str, request_id: str) -> Turn:
    """One turn as ``user``; never raises (a failure is a status)."""
    started = time.perf_counter()
    try:
        response = await http.post(
            WEBHOOK_PATH, json={"sender": user, "message": text}, headers={"X-Request-Id": request_id}
        )
    except httpx.TimeoutException:
        return Turn(kind, request_id, "timeout", (time.perf_counter() - started) * 1000)
    except httpx.HTTPError:
        return Turn(kind, request_id, "connection", (time.perf_counter() - started) * 1000)
    elapsed_ms = (time.perf_counter() - started) * 1000
    status, reply = str(response.status_code), ""
    if response.status_code == 200:
        try:
            reply = " | ".join(str(m.get("text") or "") for m in response.json())
        except (ValueError, AttributeError):  # not a JSON list of messages
            status = "invalid_body"
    return Turn(kind, request_id, status, elapsed_ms, reply)


async def run_cell(
    http: httpx.AsyncClient,
    cell: Cell,
    users: Users,
    mix: dict[str, tuple[float, tuple[str, ...]]],
    duration_s: float,
    seed: int,
    progress: Progress | None = None,
) -> Cell:
    """``cell.concurrency`` clients, each holding conversations one after another, until ``duration_s``
    has passed (no turn starts later; turns in flight finish)."""
    deadline = time.monotonic() + duration_s
    kinds, weights = list(mix), [share for share, _ in mix.values()]
    sequence = iter(range(10**9))

    async def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            user, order, reused = users.take()
            cell.reused_users += reused
            for text in script(kind, mix, order, rng):
                if time.monotonic() >= deadline:
                    return
                cell.turns.append(await send(http, user, text, kind, f"{cell.id_prefix}{next(sequence):07d}"))

    async def tick() -> None:
        task = progress.add_task(
            f"{cell.setup}: {cell.traffic}, {cell.concurrency} clients", total=duration_s
        )
        while time.monotonic() < deadline:
            progress.update(task, completed=duration_s - (deadline - time.monotonic()))
            await asyncio.sleep(0.5)
        progress.update(task, completed=duration_s)

    started = time.perf_counter()
    ticker = asyncio.create_task(tick()) if progress is not None else None
    await asyncio.gather(*(client(n) for n in range(cell.concurrency)))
    cell.wall_s = time.perf_counter() - started
    if ticker is not None:
        await ticker
    return cell


def stored_turns(tracker_url: str, tenant: str, user_prefix: str) -> Counter[str]:
    """Request ids (``correlation_id``) of the ``user`` events of the run's senders, and how often each is
    stored. Sender ids in the tracker are conversation ids (``app.identity``: ``<tenant>:<user>``)."""
    engine = get_engine(tracker_url)
    query = sa.select(events.c.data).where(
        events.c.type_name == "user",
        events.c.sender_id.startswith(conversation_id(tenant, user_prefix), autoescape=True),
    )
    found: Counter[str] = Counter()
    try:
        with engine.connect() as conn:
            for (data,) in conn.execute(query):
                metadata = (json.loads(data or "{}").get("metadata")) or {}
                found[str(metadata.get("correlation_id"))] += 1
    finally:
        engine.dispose()
    return found


def load_params(source: Path, dest: Path, key_prefix: str) -> Path:
    """params.yaml with the gateway benchmark's plan and ceiling (far above any run), rate-limit keys under
    this run's prefix."""
    bench_params(source, dest)
    params = yaml.safe_load(dest.read_text())
    params["gateway"]["key_prefix"] = f"{key_prefix}:gateway"
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def settings_for(setup: Setup, args: argparse.Namespace, state_dir: Path, prefix: str) -> Settings:
    """Launcher settings for ``setup``: its own state dir, free ports, the stores it uses, a secret of its own.
    Every store setting is written here, so none comes from the caller's environment by accident."""
    state_dir.mkdir(parents=True, exist_ok=True)
    base = get_settings()
    rasa, actions, gateway, canary, streamlit, recorder = replica_ports(args.host, 0, 6)
    shared = setup.shared_stores
    return base.model_copy(
        update={
            "host": args.host,
            "state_dir": state_dir,
            "rasa_port": rasa,
            "action_port": actions,
            "gateway_port": gateway,
            "canary_port": canary,
            "streamlit_port": streamlit,
            "recorder_port": recorder,
            "crm_port": 0,
            "rasa_replicas": setup.replicas,
            "database_url": args.postgres_url if shared else "",
            "tracker_store_db": "",
            "tracker_store_url": args.postgres_url if shared else "",
            "lock_store_url": args.redis_url if shared else "",
            "lock_store_key_prefix": prefix if shared else "",
            "gateway_storage_url": args.redis_url if shared else "",
            "gateway_upstreams": "",
            "gateway_canary_upstreams": "",
            "model_path": args.model,
            "index_dir": args.index,
            "params_file": load_params(base.params_file, state_dir / "params.yaml", prefix),
            "jwt_secret": SecretStr(secrets.token_urlsafe(32)),
        }
    )


async def measure_setup(
    stack: Stack, setup: Setup, args: argparse.Namespace, users: Users, console: Console
) -> list[Cell]:
    """Warm up, then the baseline (sqlite only) and one mixed cell per concurrency level."""
    settings = stack.settings
    pool = max([*args.concurrency, BASELINE_CLIENTS])
    timeout = httpx.Timeout(args.timeout, connect=min(args.timeout, CONNECT_TIMEOUT_S))
    async with httpx.AsyncClient(
        base_url=settings.gateway_url,
        timeout=timeout,
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        event_hooks={"request": [tokens_hook(settings.jwt_secret.get_secret_value(), args.tenant)]},
    ) as http:
        warm = Cell(setup.name, "warm-up", 1, f"{args.run}{setup.code}w-")
        with console.status(f"{setup.name}: warming up…"):
            await run_cell(http, warm, Users(f"{args.run}-warm-", 50), MIX, args.warmup, args.seed)
        plan: list[tuple[str, int, dict, float]] = []
        if setup.name == "sqlite" and args.baseline_duration > 0:
            plan.append(("baseline", BASELINE_CLIENTS, GREETINGS_ONLY, args.baseline_duration))
        plan += [("mixed", n, MIX, args.duration) for n in args.concurrency]
        cells = []
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            for traffic, clients, mix, duration in plan:
                cell = Cell(setup.name, traffic, clients, f"{args.run}{setup.code}{traffic[0]}{clients}-")
                cells.append(await run_cell(http, cell, users, mix, duration, args.seed, progress))
    return cells


def run_setup(
    setup: Setup, args: argparse.Namespace, root: Path, prefix: str, console: Console
) -> list[Cell]:
    """Start ``setup``, seed its users, measure, read the tracker store, stop it."""
    settings = settings_for(setup, args, root / setup.name, prefix)
    stack = Stack(settings, services=SERVICES)
    users = Users(f"{args.run}-", args.users)
    with console.status(f"Starting {setup.name} ({setup.replicas} Rasa replica(s), {setup.stores})…"):
        stack.start(timeout=args.start_timeout)
    try:
        with console.status(f"{setup.name}: seeding {args.users} users with an order each…"):
            insert_missing(get_engine(stack.settings.db_url), args.tenant, users.crm_rows())
        cells = asyncio.run(measure_setup(stack, setup, args, users, console))
        time.sleep(args.settle)  # turns the client gave up on may still be stored
        stored = stored_turns(tracker_store_url(stack.settings), args.tenant, f"{args.run}-")
        for cell in cells:
            cell.stored = stored
        return cells
    finally:
        stack.stop()
        get_engine(stack.settings.db_url).dispose()


def render_table(rows: Sequence[dict[str, Any]], args: argparse.Namespace) -> Table:
    """One row per setup and concurrency level, the baseline first; p50 also relative to the baseline."""
    table = Table(title=f"Mixed traffic through the gateway, {args.duration:g} s per row")
    columns = (
        "setup",
        "traffic",
        "clients",
        "sent",
        "accepted",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "x base p50",
        "errors",
        "429",
        "lost",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in {"setup", "traffic", "errors"} else "right")
    base = next((row["p50_ms"] for row in rows if row["traffic"] == "baseline"), None)

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    for row in rows:
        errors = ", ".join(f"{status}: {n}" for status, n in row["errors"].items())
        lost = row.get("lost")
        table.add_row(
            row["setup"],
            row["traffic"],
            str(row["concurrency"]),
            str(row["sent"]),
            str(row["accepted"]),
            num(row["req_per_s"]),
            num(row["p50_ms"]),
            num(row["p95_ms"]),
            num(row["p99_ms"]),
            f"{row['p50_ms'] / base:.1f}" if base and row["p50_ms"] else "-",
            f"[red]{errors}[/red]" if errors else "0",
            str(row["rate_limited"]),
            "-" if lost is None else (f"[red]{lost}[/red]" if lost else "0"),
        )
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    settings = get_settings()
    run = uuid.uuid4().hex[:8]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--concurrency",
        type=at_least(1),
        nargs="+",
        default=[8, 32, 64],
        metavar="N",
        help="concurrent conversations, one row each (8 32 64)",
    )
    add("--duration", type=at_least(1, float), default=180.0, metavar="S", help="seconds per row (180)")
    add(
        "--baseline-duration",
        type=at_least(0, float),
        default=60.0,
        metavar="S",
        help="seconds of the greetings baseline at 8 clients on sqlite; 0 skips it (60)",
    )
    add("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS), help="where to run (both)")
    add("--warmup", type=at_least(0, float), default=10.0, metavar="S", help="uncounted seconds first (10)")
    add(
        "--users",
        type=at_least(1),
        default=10000,
        metavar="N",
        help="users seeded per setup, one per conversation; reused (and counted) when used up (10000)",
    )
    add(
        "--timeout",
        type=at_least(0.1, float),
        default=60.0,
        metavar="S",
        help="per request; above the gateway's own upstream timeout, so its 504 is seen (60)",
    )
    add(
        "--settle",
        type=at_least(0, float),
        default=2.0,
        metavar="S",
        help="wait before reading the tracker store (2)",
    )
    add("--start-timeout", type=at_least(10, float), default=300.0, metavar="S", help="per setup start (300)")
    add(
        "--model",
        type=Path,
        default=settings.model_path,
        help="the Rasa model (default: the served champion)",
    )
    add("--index", type=Path, default=settings.index_dir, help="the knowledge index (default: the project's)")
    add(
        "--postgres-url",
        default=f"postgresql+psycopg://postgres@127.0.0.1:5432/switchboard_load_{run}",
        help="scale-out: tracker store and our stores, created and dropped (default: a new database)",
    )
    add(
        "--redis-url",
        default="redis://127.0.0.1:6379/1",
        help="scale-out: lock store and rate-limit counters",
    )
    add("--tenant", default=settings.tenant, help="the users' tenant (their tokens' claim)")
    add("--host", default=settings.host, help="interface the services listen on (loopback)")
    add("--seed", type=int, default=0, help="the traffic mix's random seed (0)")
    add("--json", type=Path, metavar="PATH", help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.users > MAX_USERS:
        parser.error(f"--users: at most {MAX_USERS} (each owns an order ORD-{FIRST_ORDER} and up)")
    args.run = f"l{run[:6]}"  # users, request ids and keys of this run start with it
    return args


def check_inputs(args: argparse.Namespace) -> str | None:
    """None when the run can start, else the one-line reason."""
    if not is_loopback_url(f"http://{args.host}/"):
        return f"refusing host {args.host}: loopback only"
    if not args.model.exists():
        return f"no trained model at {args.model}: run `dvc repro` first"
    if not (args.index / "manifest.json").exists():
        return f"no knowledge index at {args.index}: run `dvc repro` first"
    if "scale-out" in args.setups:
        return check_stores(args)
    return None


def report(rows: Iterable[dict[str, Any]], args: argparse.Namespace, started_at: str) -> dict[str, Any]:
    return {
        "started_at": started_at,
        "duration_s": args.duration,
        "baseline_duration_s": args.baseline_duration,
        "concurrency": args.concurrency,
        "setups": {
            name: {"replicas": SETUPS[name].replicas, "stores": SETUPS[name].stores} for name in args.setups
        },
        "mix": {kind: share for kind, (share, _) in MIX.items()},
        "rows": list(rows),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run every setup and print the table; returns the exit status (see the module docstring)."""
    apply_offline_env()
    args = parse_args(argv)
    problem = check_inputs(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    console = Console(width=max(Console().width, 130))  # the table's thirteen columns, also when piped
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cells: list[Cell] = []
    try:
        with tempfile.TemporaryDirectory(prefix="switchboard-load-") as tmp:
            for name in args.setups:
                cells += run_setup(SETUPS[name], args, Path(tmp), args.run, console)
    except StackError as exc:  # ends with the failing service's log tail
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if "scale-out" in args.setups:
            clean_up(args, args.run)

    rows = [cell.summary() for cell in cells]
    console.print(render_table(rows, args))
    reused = sum(row["reused_users"] for row in rows)
    if reused:
        console.print(
            f"[yellow]{reused} conversations reused a user (raise --users for fresh ones).[/yellow]"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report(rows, args, started_at), indent=2) + "\n")
        console.print(f"Figures written to {args.json}")
    failed = sum(sum(row["errors"].values()) for row in rows)
    lost = sum(row.get("lost") or 0 for row in rows)
    if failed or lost:
        console.print(
            f"[red]{failed} turn(s) failed, {lost} accepted turn(s) not in the tracker store.[/red]"
        )
    return 1 if failed or lost else 0


if __name__ == "__main__":
    sys.exit(main())
