"""The launcher (`python -m app.stack`, what `make serve` runs) stops what it started on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ROOT, guarded_env


def start(tmp_path) -> subprocess.Popen:
    """Start the launcher as a shell does for `cmd &`: with SIGINT ignored, which Python then inherits."""
    env = guarded_env({"SWITCHBOARD_STATE_DIR": str(tmp_path)})
    return subprocess.Popen(
        [sys.executable, "-m", "app.stack", "--services", "crm"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
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
