"""The long schema-fuzzing run: schemathesis against every HTTP service, seeded, counting per service the
requests, server errors (5xx), hangs (no answer within ``--timeout``), other failures (an undeclared status, a
body not of the declared schema, invalid input accepted) and the time.

    python benchmarks/fuzz.py [--examples 1000] [--seed 20261205] [--timeout 10]
                              [--services crm actions gateway recorder rest]
                              [--baseline 67ba922:crm 1625c53:crm 1625c53:gateway] [--model PATH]
                              [--index PATH] [--json PATH]

No running bot needed: the script starts the services with the launcher's own ``Stack`` on free loopback
ports, in a state directory of its own (tests/schema_fuzz.py: the harness, the settings, the gateway's
tokens). The gateway runs in front of a stand-in for Rasa's REST channel (its own handling is what is
fuzzed); Rasa's REST channel itself (``rest``) is fuzzed when a trained model is at ``--model`` (default
``nlu/serving/model.tar.gz``, what ``dvc repro`` builds), else skipped with the reason printed.

Each operation gets the description's examples, the coverage cases, edge integers and ``--examples``
generated cases (positive and negative), all from ``--seed``: the same command sends the same requests.

Baseline, in the same run: ``--baseline REF:SERVICE`` also fuzzes SERVICE as it was at git commit REF (its
files exported with ``git archive`` into a temporary directory, run on a store of its own), with the same
seed and examples. The defaults: the CRM service before its ids and texts were checked at the edge
(67ba922, issue 12's 500s), and the CRM service and the gateway before the fixes this fuzzing found (1625c53:
the CRM's ticket webhook took ``true`` as ticket 1, the gateway relayed non-object metadata).

Exit status: 0 no 5xx and no hang in the current services, 1 some, 2 a service did not start (a baseline
that cannot be exported or started, e.g. a shallow clone without its commit, is skipped with the reason).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

# `python benchmarks/fuzz.py` puts this folder first on sys.path, where benchmarks/nlu.py would shadow the
# nlu package the launcher imports: the repository goes first.
BENCHMARKS = Path(__file__).resolve().parent
sys.path[:] = [str(BENCHMARKS.parent)] + [p for p in sys.path if Path(p or ".").resolve() != BENCHMARKS]

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from app.offline import apply_offline_env  # noqa: E402
from app.scaleout import free_port  # noqa: E402
from app.settings import ROOT, Settings  # noqa: E402
from app.stack import Stack, StackError  # noqa: E402
from tests.schema_fuzz import (  # noqa: E402 - one harness for the test slice and this run
    SEED,
    SERVICES,
    FuzzReport,
    description_url,
    fuzz,
    fuzz_settings,
    gateway_headers,
    rest_channel_stand_in,
    service_url,
    serving,
)

DEFAULT_BASELINES = ["67ba922:crm", "1625c53:crm", "1625c53:gateway"]
#: How a service is started from an exported tree (the launcher's argv for it; ``{port}``, ``{host}``).
ARGV = {
    "crm": ["-m", "app.integrations.services.crm_service", "--port", "{port}", "--host", "{host}"],
    "gateway": ["-m", "app.gateway", "serve", "--port", "{port}", "--host", "{host}"],
}
PORT_SETTING = {"crm": "crm_port", "gateway": "gateway_port"}
PREPARE = (
    "import os; from app.data.db import get_engine, upgrade; from app.data.seed import seed_crm; "
    "url = os.environ['SWITCHBOARD_DATABASE_URL']; upgrade(url); seed_crm(get_engine(url))"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="generated cases per operation")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request before it is a hang")
    parser.add_argument("--rest-timeout", type=float, default=60.0, help="the same for Rasa's REST channel")
    parser.add_argument("--services", nargs="+", default=[*SERVICES, "rest"], choices=[*SERVICES, "rest"])
    parser.add_argument(
        "--baseline", nargs="*", default=DEFAULT_BASELINES, metavar="REF:SERVICE", help="also fuzz these"
    )
    parser.add_argument("--model", type=Path, default=ROOT / "nlu" / "serving" / "model.tar.gz")
    parser.add_argument(
        "--index", type=Path, default=ROOT / "knowledge" / "index", help="for the REST channel's bot"
    )
    parser.add_argument("--json", type=Path, help="also write the counts as JSON")
    args = parser.parse_args(argv)
    for item in args.baseline:
        ref, _, service = item.partition(":")
        if not ref or service not in ARGV:
            parser.error(f"--baseline {item!r}: use REF:SERVICE with SERVICE one of {sorted(ARGV)}")
    return args


def row(report: FuzzReport, label: str) -> dict[str, Any]:
    return {
        "service": label,
        "requests": report.requests,
        "server_errors": report.server_errors,
        "hangs": report.hangs,
        "other_failures": report.other_failures,
        "seconds": round(report.seconds, 1),
        "statuses": {str(k): v for k, v in sorted(report.statuses.items())},
        "failures": {f"{kind} {op}": n for (kind, op), n in sorted(report.by_operation.items())},
    }


@contextmanager
def exported_service(ref: str, service: str, settings: Settings, work: Path) -> Iterator[Settings]:
    """``service`` as it was at commit ``ref``: its files exported into ``work``, its store migrated and
    seeded by that code, the process started (its own port); yields the settings to reach it."""
    tree = work / f"{service}-{ref}"
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", ref, "app", "params.yaml"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    settings = settings.model_copy(
        update={
            PORT_SETTING[service]: free_port("127.0.0.1"),
            "database_url": f"sqlite:///{tree / 'stores.db'}",
        }
    )
    env = Stack(settings, services=(service,)).env() | {"PYTHONPATH": str(tree)}
    env = apply_offline_env(env)
    subprocess.run([sys.executable, "-c", PREPARE], cwd=tree, env=env, check=True, capture_output=True)
    port = getattr(settings, PORT_SETTING[service])
    argv = [a.format(port=port, host=settings.host) for a in ARGV[service]]
    log = (work / f"{service}-{ref}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=tree,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        health = service_url(settings, service) + "/health"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"{service} at {ref} did not start (log: {log.name})")
            time.sleep(0.2)
        yield settings
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    rows: list[dict[str, Any]] = []
    reports: list[tuple[str, FuzzReport]] = []
    skipped: list[str] = []
    wanted = [s for s in args.services if s != "rest"]
    if "rest" in args.services and not args.model.exists():
        skipped.append(f"rest (Rasa's REST channel): no trained model at {args.model}; run `dvc repro` first")
    with ExitStack() as stack_of, tempfile.TemporaryDirectory(prefix="switchboard-fuzz-") as tmp:
        work = Path(tmp)
        upstream = stack_of.enter_context(serving(rest_channel_stand_in()))
        settings = fuzz_settings(work / "state", upstream, model_path=args.model, index_dir=args.index)
        names = list(wanted)
        if "rest" in args.services and args.model.exists():  # the bot: Rasa with its action server and CRM
            names += [n for n in ("crm", "actions", "rasa") if n not in names]
        stack = Stack(settings, services=names)
        try:
            stack.start(timeout=300)
        except StackError as exc:
            console.print(f"[red]error:[/red] the services did not start: {exc}")
            return 2
        stack_of.callback(stack.stop)
        targets: list[tuple[str, Settings]] = [(s, settings) for s in wanted]
        if "rasa" in names:
            targets.append(("rest", settings))
        for item in args.baseline:
            ref, _, service = item.partition(":")
            try:
                base = stack_of.enter_context(exported_service(ref, service, settings, work))
            except (
                StackError,
                subprocess.CalledProcessError,
            ) as exc:  # e.g. a shallow clone lacks the commit
                stderr = getattr(exc, "stderr", b"") or b""
                skipped.append(f"baseline {item}: {exc} {stderr.decode(errors='replace').strip()[:200]}")
                continue
            targets.append((f"{service} @ {ref}", base))
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            for label, target in targets:
                service = label.split(" @ ")[0]
                task = progress.add_task(f"{label:<22}", total=None)
                report = fuzz(
                    label,
                    description_url(target, service),
                    service_url(target, service),
                    seed=args.seed,
                    max_examples=args.examples,
                    timeout_s=args.rest_timeout if service == "rest" else args.timeout,
                    headers=target.channel_headers if service == "rest" else None,
                    headers_for=gateway_headers(target) if service == "gateway" else None,
                    on_request=lambda task=task: progress.advance(task),
                )
                progress.update(task, total=report.requests, completed=report.requests)
                reports.append((label, report))
                rows.append(row(report, label))
    table = Table(title=f"Schema fuzzing, seed {args.seed}, {args.examples} generated cases per operation")
    for column in ("service", "requests", "5xx", "hangs", "other failures", "time (s)"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for r in rows:
        table.add_row(
            r["service"],
            str(r["requests"]),
            str(r["server_errors"]),
            str(r["hangs"]),
            str(r["other_failures"]),
            f"{r['seconds']:.1f}",
        )
    current = [r for r in rows if " @ " not in r["service"]]
    table.add_row(
        "all current services",
        str(sum(r["requests"] for r in current)),
        str(sum(r["server_errors"] for r in current)),
        str(sum(r["hangs"] for r in current)),
        str(sum(r["other_failures"] for r in current)),
        f"{sum(r['seconds'] for r in current):.1f}",
        style="bold",
    )
    console.print(table)
    for _label, report in reports:
        if report.counts:
            console.print(report.summary(), markup=False, highlight=False, soft_wrap=True)
    for reason in skipped:
        console.print(f"skipped: {reason}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"seed": args.seed, "examples": args.examples, "rows": rows, "skipped": skipped}, indent=2
            )
        )
    return 1 if any(r["server_errors"] or r["hangs"] for r in current) else 0


if __name__ == "__main__":
    sys.exit(main())
