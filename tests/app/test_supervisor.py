"""The supervisor (app/supervisor.py) on real processes: a tiny HTTP server on loopback, and one that fails."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from app.supervisor import RestartPolicy, Service, StackError, Supervisor, read_state
from tests.conftest import free_port, guarded_env


def http_server(tmp_path: Path, name: str = "web") -> Service:
    port = free_port()
    return Service(
        name,
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        f"http://127.0.0.1:{port}/",
        tmp_path / "logs" / f"{name}.log",
        "Directory listing",
    )


@pytest.fixture
def supervisor(tmp_path: Path):
    sup = Supervisor(cwd=tmp_path)
    yield sup
    sup.stop(grace=5)


def test_start_kill_watch_restart_stop(supervisor: Supervisor, tmp_path: Path) -> None:
    web = http_server(tmp_path)
    supervisor.start([web], guarded_env(), timeout=30)
    assert web.running and httpx.get(web.health_url, timeout=5).status_code == 200
    with pytest.raises(StackError, match="still running"):
        supervisor.restart("web", guarded_env(), timeout=30)

    supervisor.kill("web")
    assert not web.running
    assert supervisor.watch(poll_s=0.05) == [web]  # returns at once: a service has stopped

    first_pid = web.process.pid
    supervisor.restart("web", guarded_env(), timeout=30)
    assert web.running and web.process.pid != first_pid
    assert httpx.get(web.health_url, timeout=5).status_code == 200

    supervisor.stop(grace=5)
    assert not web.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(web.health_url, timeout=2)


def test_a_service_that_exits_fails_the_start_with_its_log_and_stops_the_others(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    web = http_server(tmp_path)
    broken = Service(
        "broken",
        [sys.executable, "-c", "import sys; print('cannot start: no config'); sys.exit(3)"],
        "http://127.0.0.1:9/health",
        tmp_path / "logs" / "broken.log",
    )
    # its exit is reported with its log (not waited out as "not healthy in time")
    with pytest.raises(StackError, match=r"broken exited with code 3:\ncannot start: no config"):
        supervisor.start([web, broken], guarded_env(), timeout=30)
    assert not web.running  # the healthy one was stopped too


# --- supervision: restart with backoff, give up, restart a hung process -----------------------------------

FAST = RestartPolicy(
    first_delay_s=0.2,
    max_delay_s=1.0,
    max_crashes=3,
    window_s=30.0,
    start_timeout_s=30.0,
    liveness_interval_s=0.3,
    liveness_timeout_s=0.5,
    liveness_failures=2,
    poll_s=0.05,
)

# A health endpoint that answers until the file HANG exists, then never answers again (a hung process).
HANGING_SERVER = """
import http.server, pathlib, sys, time
hang = pathlib.Path(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        while hang.exists():
            time.sleep(1)
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def supervised(tmp_path: Path):
    sup = Supervisor(cwd=tmp_path, policy=FAST, state_file=tmp_path / "supervisor.json")
    yield sup
    sup.stop(grace=5)


def test_a_crashed_service_is_restarted_and_the_others_keep_serving(supervised, tmp_path):
    web, other = http_server(tmp_path, "web"), http_server(tmp_path, "other")
    supervised.start([web, other], guarded_env(), timeout=30)
    supervised.supervise()
    other_pid, first_pid = other.process.pid, web.process.pid

    supervised.kill("web")
    assert wait_for(lambda: web.status.state == "running" and web.running and web.process.pid != first_pid)
    assert httpx.get(web.health_url, timeout=5).status_code == 200
    assert (web.status.restarts, web.status.last_exit_code) == (1, -9)
    assert other.process.pid == other_pid and other.status.restarts == 0  # untouched
    assert "restarted by the supervisor: attempt 1, last exit code -9" in web.log_tail()

    state = read_state(tmp_path / "supervisor.json")
    assert state["web"] == {
        "state": "running",
        "pid": web.process.pid,
        "restarts": 1,
        "last_exit_code": -9,
        "last_restart_at": web.status.last_restart_at,
    }
    assert state["other"]["restarts"] == 0 and state["other"]["pid"] == other_pid


def test_the_delay_doubles_up_to_its_bound():
    policy = RestartPolicy(first_delay_s=1.0, max_delay_s=15.0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0]


def test_a_crash_loop_is_given_up_on_while_the_others_keep_serving(supervised, tmp_path):
    web, flaky = http_server(tmp_path, "web"), http_server(tmp_path, "flaky")
    supervised.start([web, flaky], guarded_env(), timeout=30)
    supervised.supervise()
    # from now on every start of "flaky" fails at once, as with a broken configuration
    flaky.argv = [sys.executable, "-c", "import sys; sys.exit(7)"]
    supervised.kill("flaky")

    assert wait_for(lambda: flaky.status.state == "gave_up")
    assert flaky.status.restarts == FAST.max_crashes - 1  # crash 1 and 2 restarted, crash 3 given up
    assert flaky.status.last_exit_code == 7 and not flaky.running
    assert web.running and httpx.get(web.health_url, timeout=5).status_code == 200
    time.sleep(FAST.max_delay_s + 0.5)
    assert flaky.status.state == "gave_up" and not flaky.running  # no further attempt
    assert read_state(tmp_path / "supervisor.json")["flaky"]["state"] == "gave_up"


def test_a_program_that_cannot_even_start_counts_as_a_crash(supervised, tmp_path):
    web = http_server(tmp_path)
    supervised.start([web], guarded_env(), timeout=30)
    supervised.supervise()
    web.argv = [str(tmp_path / "no-such-program")]  # deleted after the start, say
    supervised.kill("web")
    assert wait_for(lambda: web.status.state == "gave_up")
    assert web.status.restarts == 0 and not web.running


def test_a_hung_service_is_killed_and_restarted(supervised, tmp_path):
    port, hang = free_port(), tmp_path / "hang"
    script = tmp_path / "hanging.py"
    script.write_text(HANGING_SERVER)
    hung = Service(
        "hung",
        [sys.executable, str(script), str(port), str(hang)],
        f"http://127.0.0.1:{port}/",
        tmp_path / "logs" / "hung.log",
        "ok",
    )
    supervised.start([hung], guarded_env(), timeout=30)
    supervised.supervise()
    first_pid = hung.process.pid

    hang.touch()  # alive, but its health URL no longer answers
    assert wait_for(lambda: hung.status.restarts == 1)
    hang.unlink()  # the new process answers
    assert wait_for(lambda: hung.status.state == "running" and hung.process.pid != first_pid)
    assert hung.status.last_exit_code is None  # killed by the supervisor, not exited by itself


def test_restart_under_supervision_waits_for_the_supervisors_restart(supervised, tmp_path):
    web = http_server(tmp_path)
    supervised.start([web], guarded_env(), timeout=30)
    supervised.supervise()
    supervised.kill("web")
    assert wait_for(lambda: web.status.state == "running" and web.running)
    supervised.restart("web", guarded_env(), timeout=30)  # already back: no error, nothing started twice
    assert web.status.restarts == 1 and web.running


def test_read_state_is_empty_without_a_readable_file(tmp_path):
    assert read_state(tmp_path / "missing.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert read_state(tmp_path / "bad.json") == {}
