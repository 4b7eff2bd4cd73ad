"""Supervising the served bot's processes: launch, wait until healthy, kill, restart, stop, log tails.

What to run (argv, environment, health URL, ports) is decided by :mod:`app.stack`; this module only keeps
processes alive and reports on them. Each process runs in a session (process group) of its own, so a stop
or kill reaches its children too and nothing else; its output goes to its log file. Restart-with-backoff
belongs here, around :meth:`Supervisor.watch` and :meth:`Supervisor.restart`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class StackError(RuntimeError):
    """A service could not start; the message names it and ends with its log tail."""


@dataclass
class Service:
    """One process to supervise: how to start it, where it answers its health check, where it logs."""

    name: str
    argv: list[str]
    health_url: str
    log_path: Path
    expect: str = ""  # text the health response must contain
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Supervisor:
    """The processes of one stack, started in order and stopped newest first."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.services: list[Service] = []

    def start(self, services: Iterable[Service], env: dict[str, str], timeout: float) -> None:
        """Launch every service, then wait until each is healthy (or raise ``StackError`` and stop them)."""
        self.services = list(services)
        for service in self.services:
            self.launch(service, env)
        try:
            for service in self.services:
                self.wait_healthy(service, deadline=time.monotonic() + timeout)
        except StackError:
            self.stop()
            raise

    def launch(self, service: Service, env: dict[str, str], mode: str = "w") -> None:
        """Start ``service``'s process in a session of its own, its output to its log (``mode`` "a" appends)."""
        service.log_path.parent.mkdir(parents=True, exist_ok=True)
        with service.log_path.open(mode) as log:
            service.process = subprocess.Popen(
                service.argv,
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_healthy(self, service: Service, deadline: float) -> None:
        """Return once ``service`` answers its health check; ``StackError`` if it exits or the deadline passes."""
        while time.monotonic() < deadline:
            assert service.process is not None
            if service.process.poll() is not None:
                raise StackError(
                    f"{service.name} exited with code {service.process.returncode}:\n{service.log_tail()}"
                )
            try:
                reply = httpx.get(service.health_url, timeout=2.0)
                if reply.status_code == 200 and service.expect in reply.text:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise StackError(f"{service.name} not healthy at {service.health_url} in time:\n{service.log_tail()}")

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def kill(self, name: str) -> None:
        """Kill one service at once (SIGKILL to its process group): a crash, not a graceful stop."""
        proc = self.service(name).process
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def restart(self, name: str, env: dict[str, str], timeout: float) -> None:
        """Start a stopped or killed service again (same argv, log appended) and wait until it is healthy."""
        service = self.service(name)
        if service.running:
            raise StackError(f"{name} is still running")
        self.launch(service, env, mode="a")
        self.wait_healthy(service, deadline=time.monotonic() + timeout)

    def watch(self, poll_s: float = 1.0) -> list[Service]:
        """Block while every service runs; return those that stopped (none were restarted)."""
        while all(s.running for s in self.services):
            time.sleep(poll_s)
        return [s for s in self.services if s.process is not None and not s.running]

    def stop(self, grace: float = 15.0) -> None:
        """Stop the processes started here (their whole process groups), newest first: SIGTERM, then
        SIGKILL after ``grace`` seconds."""
        for service in reversed(self.services):
            proc = service.process
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=grace)
            except ProcessLookupError:
                pass
