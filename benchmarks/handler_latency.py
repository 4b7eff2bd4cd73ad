"""Per-turn latency by router handler (p50/p95), with the plain Rasa turn as the baseline in the same run.

    python benchmarks/handler_latency.py [--turns 40] [--json PATH] [--url http://127.0.0.1:5005]

Without ``--url`` the script starts what it measures with the launcher's own ``Stack`` (CRM service, action
server, Rasa) on the built model and index (``dvc repro`` first), with LLM tiers 1 and 2 on the local
OpenAI-compatible test server (``tests/llm_server``: it answers in about a millisecond, so the LLM rows show
our own overhead per tier, not a real model's generation time). With ``--url`` it measures a running bot.

Handlers (one client, a new conversation per turn unless noted):

- ``plain_rasa``: a greeting answered by a rule and a response: NLU + policies, no action server (baseline);
- ``skill``: an order status: the ``order_status`` tool -> the CRM service over HTTP; asked by the demo
  order's owner (``alice``: customers see only their own orders), so these turns share her conversation;
- ``knowledge_t0``: a plain question answered extractively (retrieval + answerability, no LLM);
- ``knowledge_t1``: a question with close candidates -> tier 1 (a different case number each turn, so the
  answer cache cannot serve it);
- ``cache_hit``: the same tier-1 question again: served from the answer cache;
- ``fallback``: a vague message -> the two-stage fallback's "did you mean ...?";
- ``handoff``: "talk to a human" -> a ticket is opened and the bot goes quiet.

Each reply is checked against the handler's signature; a reply from another handler counts as ``misrouted``
(not in the latencies). Exit status: 0, 1 when turns failed or were misrouted, 2 when the bot cannot start.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.offline import apply_offline_env  # noqa: E402
from benchmarks.rest_latency import WEBHOOK_PATH, at_least, is_loopback_url, percentile  # noqa: E402

HARD = "My kettle stopped working after 14 months, is it still covered and who pays for shipping?"


@dataclass(frozen=True)
class Handler:
    name: str
    message: Callable[[int], str]
    expect: Callable[[str], bool]
    note: str
    sender: str | None = None  # one user's conversation; None: a new conversation per turn


HANDLERS = (
    Handler("plain_rasa", lambda i: "hello", lambda t: bool(t) and "Source" not in t, "rule + response"),
    Handler(
        "skill",
        lambda i: "Where is my order ORD-10042?",
        lambda t: "ORD-10042 has shipped" in t,
        "order_status tool -> CRM HTTP",
        sender="alice",  # the demo order's owner: customers see only their own orders
    ),
    Handler(
        "knowledge_t0",
        lambda i: "How long do I have to return an item?",
        lambda t: "Source:" in t,
        "extractive",
    ),
    Handler(
        "knowledge_t1",
        lambda i: f"{HARD} (case {1000 + i})",
        lambda t: "Sources:" in t,
        "LLM tier 1 (test server)",
    ),
    Handler("cache_hit", lambda i: HARD, lambda t: "Sources:" in t, "answer cache"),
    Handler(
        "fallback",
        # a vague message the served model reads as an intent it is unsure of, with nothing in the articles
        # (gibberish like "blorp zibble" is confidently out of scope for today's model: a plain reply, no buttons)
        lambda i: "hmm so about the money thing",
        lambda t: "Did you mean" in t or "rephrase" in t,
        "two-stage fallback",
    ),
    Handler(
        "handoff", lambda i: "I want to talk to a human agent", lambda t: "ticket #" in t, "ticket + silence"
    ),
)


@dataclass
class Row:
    handler: Handler
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    misrouted: int = 0
    example: str = ""

    def summary(self) -> dict:
        lat = self.latencies_ms
        return {
            "handler": self.handler.name,
            "what": self.handler.note,
            "n": len(lat),
            "p50_ms": round(percentile(lat, 50), 1) if lat else None,
            "p95_ms": round(percentile(lat, 95), 1) if lat else None,
            "errors": self.errors,
            "misrouted": self.misrouted,
            "example": self.example[:120],
        }


def say(http: httpx.Client, sender: str, text: str) -> tuple[float, str | None]:
    started = time.perf_counter()
    try:
        response = http.post(WEBHOOK_PATH, json={"sender": sender, "message": text})
    except httpx.HTTPError:
        return 0.0, None
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return elapsed, None
    return elapsed, "\n".join(m.get("text") or "" for m in response.json())


def client(
    url: str, transport: httpx.BaseTransport | None = None, headers: dict[str, str] | None = None
) -> httpx.Client:
    """A client of the REST channel at ``url``; ``headers``: the channel secret, when one is set."""
    return httpx.Client(
        base_url=url, timeout=30.0, headers={"X-Tenant-Id": "acme", **(headers or {})}, transport=transport
    )


def measure(http: httpx.Client, turns: int, warmup: int, console: Console) -> list[Row]:
    """Every handler's turns through ``http``; replies checked against the handler's signature."""
    rows = [Row(h) for h in HANDLERS]
    with http:
        say(http, f"bench-{uuid.uuid4().hex[:8]}", HARD)  # primes the cache for cache_hit
        for row in rows:
            with console.status(f"{row.handler.name}…"):
                for i in range(warmup + turns):
                    sender = row.handler.sender or f"bench-{uuid.uuid4().hex[:12]}"
                    elapsed, text = say(http, sender, row.handler.message(i))
                    if i < warmup:
                        continue
                    if text is None:
                        row.errors += 1
                    elif not row.handler.expect(text):
                        row.misrouted += 1
                        row.example = text
                    else:
                        row.latencies_ms.append(elapsed)
                        row.example = row.example or text
    return rows


def render(rows: list[Row], title: str) -> Table:
    table = Table(title=title)
    for column in ("handler", "what", "n", "p50 ms", "p95 ms", "x baseline p50", "errors", "misrouted"):
        table.add_column(column, justify="left" if column in {"handler", "what"} else "right")
    base = rows[0].summary()["p50_ms"]
    for row in rows:
        s = row.summary()
        ratio = f"{s['p50_ms'] / base:.1f}" if s["p50_ms"] and base else "-"
        table.add_row(
            s["handler"],
            s["what"],
            str(s["n"]),
            str(s["p50_ms"] or "-"),
            str(s["p95_ms"] or "-"),
            ratio,
            str(s["errors"]),
            str(s["misrouted"]),
        )
    return table


def bench_params(base_url: str, dest: Path) -> Path:
    """params.yaml with LLM tiers on the test server and the cache on (as the bot's tests run it)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    tier = {"base_url": base_url, "timeout_s": 5, "price_in_per_1k": 0.5, "price_out_per_1k": 1.5}
    params["tiers"]["endpoints"] = {1: {**tier, "model": "small"}, 2: {**tier, "model": "large"}}
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_own_stack(args: argparse.Namespace, console: Console) -> list[Row]:
    from app.settings import Settings
    from app.stack import Stack, StackError
    from tests.llm_server import LLMTestServer

    model, index = ROOT / "nlu" / "serving" / "model.tar.gz", ROOT / "knowledge" / "index"
    if not model.exists() or not (index / "manifest.json").exists():
        raise StackError("no built model or index: run `dvc repro` first")
    with LLMTestServer() as llm, tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        llm.add_rule(quote=1)  # a grounded, cited answer: passes the grounding check as a good model's would
        state = Path(tmp)
        settings = Settings(
            state_dir=state,
            rasa_port=free_port(),
            action_port=free_port(),
            model_path=model,
            index_dir=index,
            params_file=bench_params(llm.base_url, state / "params.yaml"),
        )
        stack = Stack(settings, services=("crm", "actions", "rasa"))
        with console.status("Starting the CRM service, action server and Rasa…"):
            stack.start(timeout=300)
        try:
            rasa = client(stack.settings.rasa_url, headers=stack.settings.channel_headers)
            return measure(rasa, args.turns, args.warmup, console)
        finally:
            stack.stop()


def main(argv: Sequence[str] | None = None) -> int:
    apply_offline_env()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="measure a running bot instead (loopback only)")
    parser.add_argument("--turns", type=at_least(1), default=40, help="counted turns per handler")
    parser.add_argument("--warmup", type=at_least(0), default=3, help="uncounted turns per handler first")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 110))
    try:
        if args.url:
            if not is_loopback_url(args.url):
                print(f"error: refusing {args.url}: loopback URLs only", file=sys.stderr)
                return 2
            rows = measure(client(args.url.rstrip("/")), args.turns, args.warmup, console)
        else:
            rows = run_own_stack(args, console)
    except Exception as exc:  # a stack that cannot start is one line, not a traceback
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    console.print(render(rows, "Per-turn latency by router handler (REST, 1 client)"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.summary() for r in rows], indent=2) + "\n")
        console.print(f"Figures written to {args.json}")
    bad = sum(r.errors + r.misrouted for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
