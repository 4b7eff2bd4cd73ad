"""The launcher (`python -m app.stack`, what `make serve` runs): a crashed service is restarted while the
launcher keeps running, and Ctrl-C (or SIGTERM) stops what it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ROOT, guarded_env


def start(tmp_path, stderr: int = subprocess.STDOUT) -> subprocess.Popen:
    """Start the launcher as a shell does for `cmd &`: with SIGINT ignored, which Python then inherits."""
    env = guarded_env({"SWITCHBOARD_STATE_DIR": str(tmp_path)})
    return subprocess.Popen(
        [sys.executable, "-m", "app.stack", "--services", "crm"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_services_it_started(tmp_path, sig):
    proc = start(tmp_path)
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any("ready" in line for line in lines):
        lines.append(proc.stdout.readline())
    health = re.search(r"crm\s+(http://127\.0\.0\.1:\d+/health)", "".join(lines))
    assert health, "".join(lines)
    assert httpx.get(health.group(1), timeout=5).status_code == 200

    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0 and "stopping" in out
    with pytest.raises(httpx.ConnectError):  # the CRM service it started is gone too
        httpx.get(health.group(1), timeout=5)


def crm_state(tmp_path) -> dict:
    return json.loads((tmp_path / "supervisor.json").read_text())["services"]["crm"]


def test_a_killed_service_is_restarted_logged_and_counted_and_the_launcher_keeps_running(tmp_path):
    errors = (tmp_path / "launcher.err").open("w+")
    proc = start(tmp_path, stderr=errors)
    try:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any("ready" in line for line in lines):
            lines.append(proc.stdout.readline())
        health = re.search(r"crm\s+(http://127\.0\.0\.1:\d+/health)", "".join(lines)).group(1)
        first = crm_state(tmp_path)
        assert first["state"] == "running" and first["restarts"] == 0

        os.killpg(first["pid"], signal.SIGKILL)  # a crash, as an out-of-memory kill would be
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            crm_state(tmp_path)["restarts"] == 0 or crm_state(tmp_path)["state"] != "running"
        ):
            time.sleep(0.2)
        again = crm_state(tmp_path)
        assert again["state"] == "running" and again["restarts"] == 1 and again["last_exit_code"] == -9
        assert again["pid"] != first["pid"]
        assert httpx.get(health, timeout=5).status_code == 200
        assert proc.poll() is None  # the launcher did not exit
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    errors.seek(0)
    logged = [json.loads(line) for line in errors.read().splitlines() if line.startswith("{")]
    restarts = [line for line in logged if line["event"] == "service.restart"]
    assert len(restarts) == 1, logged  # one JSON line (stderr is not a terminal) per restart
    assert {k: restarts[0][k] for k in ("service", "exit_code", "attempt", "delay_s")} == {
        "service": "crm",
        "exit_code": -9,
        "attempt": 1,
        "delay_s": 1.0,
    }
    assert any(line["event"] == "service.recovered" and line["service"] == "crm" for line in logged)


HOLDS_A_STACK = """
import time
from app.stack import Stack
with Stack(services=["crm"]) as stack:
    print("up", stack.settings.crm_url, flush=True)
    time.sleep(300)
"""


def test_sigterm_to_a_process_holding_a_stack_stops_the_services_it_started(tmp_path):
    """Not only the launcher: any process with a started stack (the bot-level evaluation, a benchmark) stops its
    services when killed with SIGTERM; they run in sessions of their own and would be left behind."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDS_A_STACK],
        cwd=ROOT,
        env=guarded_env({"SWITCHBOARD_STATE_DIR": str(tmp_path)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (lines and lines[-1].startswith("up ")):
            lines.append(proc.stdout.readline())
        assert lines and lines[-1].startswith("up "), "".join(lines)
        health = lines[-1].split()[1] + "/health"
        assert httpx.get(health, timeout=5).status_code == 200
        pid = crm_state(tmp_path)["pid"]

        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        with pytest.raises(httpx.ConnectError):  # the CRM service it started is gone too
            httpx.get(health, timeout=5)
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
