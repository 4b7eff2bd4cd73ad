"""benchmarks/load.py: turn accounting (sent = accepted + 429 + errors), lost turns from the tracker store,
and one short real run at 2 clients on SQLite.

The script is not a package module, so it is loaded from its path. The turn loop runs against
``httpx.MockTransport``, the tracker reading against a SQLite ``events`` table written here; the real run
needs the built model and index (``pipeline_run``).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import sqlalchemy as sa

from tests.benchmarks import script_module
from tests.conftest import GUARD_DIR, PipelineRun


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The benchmark script as a module."""
    yield from script_module("load")


def fake_gateway(seen: list[dict]) -> httpx.MockTransport:
    """Answers like the gateway: every 5th turn 429, every 7th 500, the 9th times out, the rest 200."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append({**body, "request_id": request.headers["X-Request-Id"]})
        n = len(seen)
        if n == 9:
            raise httpx.ReadTimeout("slow", request=request)
        if n % 5 == 0:
            return httpx.Response(429, json={"error": "rate_limited"})
        if n % 7 == 0:
            return httpx.Response(500, json={"error": "internal_error"})
        return httpx.Response(200, json=[{"recipient_id": body["sender"], "text": "ok"}])

    return httpx.MockTransport(handle)


def run(bench: ModuleType, seen: list[dict], duration_s: float, users: int = 1000) -> object:
    async def go() -> object:
        async with httpx.AsyncClient(base_url="http://127.0.0.1:5006", transport=fake_gateway(seen)) as http:
            cell = bench.Cell("sqlite", "mixed", 3, "lq2-")
            return await bench.run_cell(http, cell, bench.Users("u-", users), bench.MIX, duration_s, seed=1)

    return asyncio.run(go())


def test_every_turn_sent_is_accepted_refused_or_an_error(bench: ModuleType) -> None:
    seen: list[dict] = []
    summary = run(bench, seen, duration_s=0.3).summary()

    assert summary["sent"] == len(seen) > 20
    assert summary["sent"] == summary["accepted"] + summary["rate_limited"] + sum(summary["errors"].values())
    assert summary["rate_limited"] == sum(1 for n in range(1, len(seen) + 1) if n % 5 == 0 and n != 9)
    assert summary["errors"]["timeout"] == 1 and summary["errors"]["500"] >= 1
    assert "429" not in summary["errors"]  # configured refusals, not errors
    assert summary["p50_ms"] is not None and summary["req_per_s"] > 0
    assert "stored" not in summary and "lost" not in summary  # the tracker was not read


def test_turns_have_their_own_ids_and_conversations_their_own_users(bench: ModuleType) -> None:
    seen: list[dict] = []
    run(bench, seen, duration_s=0.2)

    ids = [turn["request_id"] for turn in seen]
    assert len(set(ids)) == len(ids) and all(i.startswith("lq2-") for i in ids)
    by_user: dict[str, list[str]] = {}
    for turn in seen:
        by_user.setdefault(turn["sender"], []).append(turn["message"])
    # a conversation is at most two turns, and a refund's second turn is the user's own order
    assert all(len(messages) <= 2 for messages in by_user.values())
    refunds = [m for m in by_user.values() if m[0] == "I want a refund" and len(m) == 2]
    assert refunds and all(m[1].startswith("ORD-5") for m in refunds)


def test_users_wrap_around_and_are_counted_when_used_up(bench: ModuleType) -> None:
    seen: list[dict] = []
    cell = run(bench, seen, duration_s=0.2, users=3)
    assert len({turn["sender"] for turn in seen}) == 3
    assert cell.reused_users > 0 and cell.summary()["reused_users"] == cell.reused_users


def test_no_turn_starts_after_the_duration(bench: ModuleType) -> None:
    seen: list[dict] = []
    summary = run(bench, seen, duration_s=0).summary()
    assert seen == [] and summary["sent"] == 0 and summary["p50_ms"] is None


def test_lost_turns_are_accepted_turns_with_no_user_event(bench: ModuleType) -> None:
    cell = bench.Cell("sqlite", "mixed", 2, "lq2-")
    cell.turns = [
        bench.Turn("greeting", "lq2-1", "200", 10.0),
        bench.Turn("greeting", "lq2-2", "200", 20.0),  # accepted, never stored: lost
        bench.Turn("refund", "lq2-3", "504", 30.0),  # refused, but the bot stored it
        bench.Turn("order", "lq2-4", "200", 40.0),  # stored twice
    ]
    cell.stored = Counter({"lq2-1": 1, "lq2-3": 1, "lq2-4": 2, "lq8-9": 1})  # lq8-: another cell's
    summary = cell.summary()
    assert (summary["accepted"], summary["stored"], summary["lost"]) == (3, 2, 1)
    assert summary["stored_not_accepted"] == 1 and summary["stored_twice"] == 1
    assert summary["errors"] == {"504": 1}


def test_stored_turns_reads_the_runs_user_events_from_the_tracker_store(
    bench: ModuleType, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    engine = sa.create_engine(url)
    bench.events.metadata.create_all(engine)

    def event(sender: str, kind: str, correlation_id: str) -> dict:
        data = {"event": kind, "metadata": {"correlation_id": correlation_id}}
        return {"sender_id": sender, "type_name": kind, "timestamp": 1.0, "data": json.dumps(data)}

    with engine.begin() as conn:
        conn.execute(
            sa.insert(bench.events),
            [
                event("acme:l1_00001", "user", "r1"),
                event("acme:l1_00001", "bot", "r1"),  # not a user turn
                event("acme:l1_00002", "user", "r2"),
                event("acme:l1_00002", "user", "r2"),  # stored twice
                event("globex:l1_00003", "user", "r3"),  # another tenant
                event("acme:l1x00004", "user", "r4"),  # "_" is not a wildcard: another run's sender
            ],
        )
    engine.dispose()

    assert bench.stored_turns(url, "acme", "l1_") == Counter({"r1": 1, "r2": 2})


def test_a_missing_index_is_refused_with_one_line(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"")
    assert bench.main(["--setups", "sqlite", "--model", str(model), "--index", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no knowledge index" in err


@pytest.mark.e2e
@pytest.mark.slow
def test_a_short_run_at_two_clients_on_sqlite_accounts_for_every_turn(
    bench: ModuleType, pipeline_run: PipelineRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(GUARD_DIR))  # the services refuse non-loopback connections too
    out = tmp_path / "load.json"
    status = bench.main(
        [
            "--setups", "sqlite", "--concurrency", "2", "--duration", "4", "--baseline-duration", "2",
            "--warmup", "1", "--users", "40",
            "--model", str(pipeline_run.root / "nlu" / "serving" / "model.tar.gz"),
            "--index", str(pipeline_run.root / "knowledge" / "index"),
            "--json", str(out),
        ]
    )  # fmt: skip

    rows = json.loads(out.read_text())["rows"]
    assert [(row["traffic"], row["concurrency"]) for row in rows] == [("baseline", 8), ("mixed", 2)]
    for row in rows:
        assert row["sent"] > 0
        assert row["sent"] == row["accepted"] + row["rate_limited"] + sum(row["errors"].values())
        assert row["stored"] + row["lost"] == row["accepted"]  # read from the tracker store
    mixed = rows[1]
    assert {"greeting", "knowledge"} <= set(mixed["by_kind"])
    assert (mixed["lost"], mixed["errors"], mixed["rate_limited"]) == (0, {}, 0)
    assert status == 0
