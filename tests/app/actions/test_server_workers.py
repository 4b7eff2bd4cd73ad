"""Several action-server processes: ``--workers N`` behind one port (our logging and summed metrics in every
worker), and circuit breakers shared through Redis, so that one process's open breaker is open in another."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.app.actions.test_server import CALL, action_server
from tests.conftest import ROOT, guarded_env

CRM_FAIL_MAX = 5  # the order_status tool's breaker ("crm"): app/tools/builtin.py


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus exposition (None when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$", re.M)
    found = pattern.search(text)
    return float(found.group(1)) if found else None


def started_workers(log: Path, expected: int, timeout_s: float = 60.0) -> list[int]:
    """The pids of the ``actions.worker_started`` records in ``log``, once ``expected`` are there (the first
    worker answers health checks before the others have started)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = log.read_text().splitlines()
        pids = [json.loads(line)["pid"] for line in lines if '"actions.worker_started"' in line]
        if len(pids) >= expected or time.monotonic() > deadline:
            return pids
        time.sleep(0.3)


def parent_pid(pid: int) -> int:
    """The parent of a running process (Linux ``/proc/<pid>/stat``: ``pid (name) state ppid ...``)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_n_workers_share_one_port_log_json_and_add_up_their_metrics(tmp_path):
    with action_server(tmp_path, "--workers", "2") as served:
        pids = started_workers(served.log, 2)
        assert len(pids) == 2 and len(set(pids)) == 2 and served.proc.pid not in pids
        assert {parent_pid(pid) for pid in pids} == {served.proc.pid}  # both children of the one server
        calls = 4  # below the CRM breaker's fail_max: every call really tries the (absent) CRM
        for _ in range(calls):
            reply = httpx.post(f"{served.url}/webhook", json=CALL, timeout=30)
            assert reply.status_code == 200 and reply.json()["responses"]
        scrapes = [httpx.get(f"{served.url}/metrics", timeout=10) for _ in range(6)]
        port = served.url.rsplit(":", 1)[1]
        files = {p.name for p in (tmp_path / "metrics" / f"actions-{port}").iterdir()}
        output = served.stop()
    sanic = [
        json.loads(line) for line in output.splitlines() if line.startswith('{"event": "Starting worker')
    ]
    assert len(sanic) == 2  # Sanic's own lines in the workers go through our JSON logging too
    assert {f"counter_{pid}.db" for pid in pids} <= files  # each worker writes its own file...
    for scrape in scrapes:  # ... and whichever worker answers the scrape adds up both
        assert scrape.status_code == 200
        assert metric(scrape.text, "switchboard_worker_starts_total", service="actions") == 2.0
        assert metric(
            scrape.text, "switchboard_action_seconds_count", action="action_track_order", outcome="ok"
        ) == float(calls)
        assert metric(
            scrape.text, "switchboard_tool_calls_total", outcome="unavailable", tool="order_status"
        ) == float(calls)


def test_one_worker_serves_in_its_own_process_and_warms_up_before_any_turn(tmp_path):
    with action_server(tmp_path) as served:
        assert started_workers(served.log, 1) == [served.proc.pid]  # the server process serves itself
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the warm-up runs in the background after the start
            scrape = httpx.get(f"{served.url}/metrics", timeout=10).text
            if metric(scrape, "switchboard_breaker_state", breaker="crm") is not None:
                break
            time.sleep(0.5)
        assert metric(scrape, "switchboard_worker_starts_total", service="actions") == 1.0
        assert metric(scrape, "switchboard_breaker_state", breaker="crm") == 0.0  # no turn served yet
        assert "switchboard_action_seconds_count" not in scrape


def test_zero_workers_is_refused_in_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "app.actions.server", "--workers", "0"],
        cwd=ROOT,
        env=guarded_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--workers must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("shared", [True, False], ids=["breakers-in-redis", "breakers-per-process"])
def test_a_breaker_opened_by_one_action_server_is_open_in_another(tmp_path, redis_url, redis_prefix, shared):
    """Two action-server processes, neither reaching the CRM: A's calls open the ``crm`` breaker. With the
    breakers in Redis, B's first call finds it open and does not try the CRM (outcome ``breaker_open``);
    with per-process breakers (the control) B tries it (``unavailable``)."""
    env = {
        "SWITCHBOARD_BREAKER_STORAGE_URL": redis_url if shared else "",
        "SWITCHBOARD_BREAKER_KEY_PREFIX": redis_prefix,
    }
    with (
        action_server(tmp_path / "a", env=env) as a,
        action_server(tmp_path / "b", env=env) as b,
    ):
        for _ in range(CRM_FAIL_MAX):
            assert httpx.post(f"{a.url}/webhook", json=CALL, timeout=30).status_code == 200
        scrape_a = httpx.get(f"{a.url}/metrics", timeout=10).text
        assert metric(scrape_a, "switchboard_breaker_state", breaker="crm") == 2.0  # open
        assert httpx.post(f"{b.url}/webhook", json=CALL, timeout=30).status_code == 200
        scrape_b = httpx.get(f"{b.url}/metrics", timeout=10).text
    outcome = "breaker_open" if shared else "unavailable"
    assert metric(scrape_b, "switchboard_tool_calls_total", outcome=outcome, tool="order_status") == 1.0
    assert metric(scrape_b, "switchboard_breaker_state", breaker="crm") == (2.0 if shared else 0.0)
