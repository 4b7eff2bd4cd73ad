"""The supervisor (app/supervisor.py) on real processes: a tiny HTTP server on loopback, and one that fails."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from app.supervisor import Service, StackError, Supervisor
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
