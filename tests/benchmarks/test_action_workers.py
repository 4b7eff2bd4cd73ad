"""benchmarks/action_workers.py: both setups side by side on one row, refusals in one line, and one short real
run (which needs the built model and index, ``pipeline_run``, and Redis) that really starts two workers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.app.conftest import redis_url  # noqa: F401 - the Redis fixture (skips without it; fails under CI)
from tests.benchmarks import script_module
from tests.conftest import GUARD_DIR, PipelineRun


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    yield from script_module("action_workers")


def cell(bench: ModuleType, kind: str, clients: int, latencies: list[float], wall_s: float):
    result = bench.CellResult(kind, clients, planned=len(latencies), latencies_ms=latencies)
    result.wall_s = wall_s
    return result


def test_each_row_holds_both_setups_and_the_throughput_ratio(bench: ModuleType) -> None:
    args = bench.parse_args(["--concurrency", "8", "--turns", "4"])
    cells = {
        (workers, kind, 8): cell(bench, kind, 8, [10.0, 20.0, 30.0, 40.0], 2.0 / workers)
        for workers in (1, 2)
        for kind in ("knowledge", "order")
    }
    rows = bench.rows_of(cells, args)
    assert [(r["kind"], r["clients"]) for r in rows] == [("knowledge", 8), ("order", 8)]
    assert rows[0]["1w"]["req_per_s"] == 2.0 and rows[0]["2w"]["req_per_s"] == 4.0
    assert rows[0]["throughput_ratio"] == 2.0
    table = bench.render_table(rows, args, (1.0, 2.0))
    assert [c.header for c in table.columns][2:8] == [
        "1w p50 ms", "1w p95 ms", "1w req/s", "2w p50 ms", "2w p95 ms", "2w req/s",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--redis-url", "redis://10.0.0.5:6379/3"], "only uses services on loopback"),
        (["--host", "0.0.0.0"], "loopback only"),
        (["--model", "/nonexistent/model.tar.gz"], "no trained model"),
    ],
)
def test_bad_options_are_refused_with_one_line(
    bench: ModuleType, capsys: pytest.CaptureFixture[str], extra: list[str], says: str
) -> None:
    assert bench.main(extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err


@pytest.mark.e2e
@pytest.mark.slow
def test_a_short_run_starts_one_and_two_workers_and_answers_every_turn(
    bench: ModuleType,
    pipeline_run: PipelineRun,
    redis_url: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(GUARD_DIR))  # the services refuse non-loopback connections too
    out = tmp_path / "workers.json"
    status = bench.main(
        [
            "--turns", "4", "--concurrency", "2", "--rounds", "1", "--warmup", "2", "--redis-url", redis_url,
            "--model", str(pipeline_run.root / "nlu" / "serving" / "model.tar.gz"),
            "--index", str(pipeline_run.root / "knowledge" / "index"),
            "--json", str(out),
        ]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["workers_started"] == {"1": 1.0, "2": 2.0}
    assert [(row["kind"], row["clients"]) for row in report["rows"]] == [("knowledge", 2), ("order", 2)]
    for row in report["rows"]:
        for setup in ("1w", "2w"):
            assert row[setup]["n"] == 4 and row[setup]["errors"] == 0
    assert status == 0
