"""Supervising the served bot's processes: launch, wait until healthy, keep alive, kill, restart, stop.

What to run (argv, environment, health URL, ports) is decided by :mod:`app.stack`; this module only keeps
processes alive and reports on them. Each process runs in a session (process group) of its own, so a stop
or kill reaches its children too and nothing else; its output goes to its log file.

Supervision (:meth:`Supervisor.supervise`, what ``python -m app.stack`` turns on once everything is up): a
background thread watches every process. One that exits (a crash, ``kill -9``, out of memory) or stops
answering HTTP at its health URL (``liveness_failures`` checks in a row) is restarted after a bounded
exponential backoff (:class:`RestartPolicy`: 1 s, 2 s, 4 s, 8 s, at most 15 s) while the others keep
serving, and is back in service once its health check passes again. One that crashes ``max_crashes`` times
within ``window_s`` (a broken configuration, a port taken) is given up on with one error line; the others
still serve. Every restart is one log line (``service.restart``: service, exit code, attempt, delay) and is
counted in the state file (:data:`STATE_FILE` in the state dir), which the gateway reads for its
``/health`` and exports as ``switchboard_service_restarts_total{service}`` on its ``/metrics``.

Why our own and not supervisord or circus: both run their own daemon that owns the children, so the
launcher, the end-to-end tests and the benchmarks would lose the process handles they kill and inspect
(``Stack.kill``, ``Stack.restart``, ``Stack.service(name).process``), and both decide "running" by the
process alone: neither waits for an HTTP health check before calling a service up, nor restarts one that
is alive but no longer answers. What is needed on top of ``subprocess`` is the small state machine below.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

logger = structlog.get_logger(__name__)

STATE_FILE = "supervisor.json"  # in the state dir: the services' states and restart counts

# A service's state under supervision.
STARTING, RUNNING, BACKOFF, GAVE_UP, STOPPED = "starting", "running", "backoff", "gave_up", "stopped"


class StackError(RuntimeError):
    """A service could not start; the message names it and ends with its log tail."""


@dataclass(frozen=True)
class RestartPolicy:
    """How crashed services are restarted, and when a hung one counts as crashed.

    The defaults restart a crashed service within about a second and keep a crash loop from spinning: the
    delay doubles with each crash in the window, and the 5th crash within 60 s gives up on the service.
    """

    first_delay_s: float = 1.0  # wait before the first restart
    max_delay_s: float = 15.0  # the doubling delay stops growing here
    max_crashes: int = 5  # this many crashes within window_s: give up on the service
    window_s: float = 60.0  # crashes older than this are forgotten (the attempt count starts again)
    start_timeout_s: float = 300.0  # a restarted service must pass its health check within this (Rasa: model)
    liveness_interval_s: float = 5.0  # how often a running service's health URL is checked
    liveness_timeout_s: float = 2.0  # no HTTP answer within this is a failed check
    liveness_failures: int = 3  # failed checks in a row: the process is killed and restarted
    poll_s: float = 0.25  # how often the supervising thread looks at the processes

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart ``attempt`` (1 for the first crash in the window)."""
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(attempt - 1, 0))


@dataclass
class ServiceStatus:
    """What the supervisor knows about one service (also written to the state file)."""

    state: str = STOPPED
    restarts: int = 0  # restarts done by the supervisor (not by Supervisor.restart)
    last_exit_code: int | None = None
    last_restart_at: str | None = None  # ISO time of the last supervisor restart
    crashes: list[float] = field(default_factory=list)  # monotonic times within the window
    next_at: float = 0.0  # BACKOFF: when to launch; STARTING: healthy by then; RUNNING: next liveness check
    failed_checks: int = 0
    down_since: float | None = None  # monotonic time of the crash that began the current outage

    def as_json(self, pid: int | None) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": pid,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "last_restart_at": self.last_restart_at,
        }


@dataclass
class Service:
    """One process to supervise: how to start it, where it answers its health check, where it logs."""

    name: str
    argv: list[str]
    health_url: str
    log_path: Path
    expect: str = ""  # text the health response must contain
    process: subprocess.Popen | None = field(default=None, repr=False)
    status: ServiceStatus = field(default_factory=ServiceStatus, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def log_tail(self, lines: int = 25) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def healthy(self, timeout: float) -> bool:
        """Whether the health URL answers 200 with the expected text now (ready to serve)."""
        try:
            reply = httpx.get(self.health_url, timeout=timeout)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200 and self.expect in reply.text

    def alive(self, timeout: float) -> bool:
        """Whether the process answers HTTP at its health URL at all (any status: a gateway with no Rasa
        behind it answers 503 but is not hung)."""
        try:
            httpx.get(self.health_url, timeout=timeout)
        except httpx.HTTPError:
            return False
        return True


class Supervisor:
    """The processes of one stack, started in order, kept alive (once :meth:`supervise` is called) and
    stopped newest first."""

    def __init__(
        self, cwd: Path, policy: RestartPolicy | None = None, state_file: Path | None = None
    ) -> None:
        self.cwd = cwd
        self.policy = policy or RestartPolicy()
        self.state_file = state_file
        self.services: list[Service] = []
        self._env: dict[str, str] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def supervising(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, services: Iterable[Service], env: dict[str, str], timeout: float) -> None:
        """Launch every service, then wait until each is healthy (or raise ``StackError`` and stop them)."""
        self.services = list(services)
        self._env = dict(env)
        for service in self.services:
            self.launch(service, env)
            service.status.state = STARTING
        try:
            for service in self.services:
                self.wait_healthy(service, deadline=time.monotonic() + timeout)
                service.status.state = RUNNING
        except StackError:
            self.stop()
            raise
        self.write_state()

    def launch(self, service: Service, env: dict[str, str], mode: str = "w", note: str = "") -> None:
        """Start ``service``'s process in a session of its own, its output to its log (``mode`` "a" appends,
        after ``note`` when one is given)."""
        service.log_path.parent.mkdir(parents=True, exist_ok=True)
        with service.log_path.open(mode) as log:
            if note:
                log.write(f"\n--- {note} ---\n")
                log.flush()
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
            if service.healthy(timeout=2.0):
                return
            time.sleep(0.5)
        raise StackError(f"{service.name} not healthy at {service.health_url} in time:\n{service.log_tail()}")

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def kill(self, name: str) -> None:
        """Kill one service at once (SIGKILL to its process group): a crash, not a graceful stop. Under
        supervision it is restarted like any crashed service."""
        proc = self.service(name).process
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def restart(self, name: str, env: dict[str, str], timeout: float) -> None:
        """Start a stopped or killed service again (same argv, log appended) and wait until it is healthy.

        Without supervision a service that still runs is an error; under supervision the supervisor may
        have started it again already, and this waits until it is healthy.
        """
        with self._lock:
            service = self.service(name)
            if service.running and not self.supervising:
                raise StackError(f"{name} is still running")
            if not service.running:
                self.launch(service, env, mode="a", note="started again by Supervisor.restart")
                service.status.state = STARTING
                service.status.next_at = time.monotonic() + timeout
        self.wait_healthy(service, deadline=time.monotonic() + timeout)
        with self._lock:
            if service.status.state == STARTING:
                self._recovered(service, time.monotonic())

    def watch(self, poll_s: float = 1.0) -> list[Service]:
        """Block while every service runs; return those that stopped (none were restarted)."""
        while all(s.running for s in self.services):
            time.sleep(poll_s)
        return [s for s in self.services if s.process is not None and not s.running]

    # --- supervision ----------------------------------------------------------------------------------

    def supervise(self) -> None:
        """Keep the started services alive from now on, in a background thread (see the module docstring)."""
        if self.supervising:
            return
        self._stopping.clear()
        now = time.monotonic()
        with self._lock:
            for service in self.services:
                service.status.next_at = now + self.policy.liveness_interval_s
        self._thread = threading.Thread(target=self._supervise_loop, name="supervisor", daemon=True)
        self._thread.start()

    def _supervise_loop(self) -> None:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="health") as checks:
            while not self._stopping.wait(self.policy.poll_s):
                try:
                    self._tick(checks)
                except Exception:  # the supervisor must outlive any surprise; say what happened
                    logger.exception("supervisor.error")

    def _tick(self, checks: ThreadPoolExecutor) -> None:
        """One look at every service: crashes, due launches, due health checks (run concurrently)."""
        now, due = time.monotonic(), []
        with self._lock:
            for service in self.services:
                due.extend(self._step(service, now))
        if not due:
            return
        results = list(checks.map(self._check, due))
        changed = False
        with self._lock:
            if self._stopping.is_set():
                return
            now = time.monotonic()
            for (service, pid, kind), ok in zip(due, results, strict=True):
                if service.pid == pid and service.running:
                    changed |= self._apply_check(service, kind, ok, now)
        if changed:
            self.write_state()

    def _step(self, service: Service, now: float) -> list[tuple[Service, int | None, str]]:
        """Advance one service's state; the health checks now due (service, pid, "ready" or "alive")."""
        status = service.status
        if status.state in (RUNNING, STARTING) and not service.running:
            code = service.process.returncode if service.process is not None else None
            self._crashed(service, code, now, "exited")
            return []
        if status.state == BACKOFF and now >= status.next_at:
            attempt = len(status.crashes)
            try:
                self.launch(
                    service,
                    self._env,
                    mode="a",
                    note=f"restarted by the supervisor: attempt {attempt}, last exit code {status.last_exit_code}",
                )
            except OSError as exc:  # the program or its log cannot be opened: a failed start, like a crash
                self._crashed(service, None, now, f"cannot start: {exc}")
                return []
            status.state, status.next_at = STARTING, now + self.policy.start_timeout_s
            status.restarts += 1
            status.last_restart_at = datetime.now(UTC).isoformat(timespec="seconds")
            self.write_state()
            return []
        if status.state == STARTING:
            if now > status.next_at:
                self._kill_group(service)
                self._crashed(service, None, now, f"not healthy within {self.policy.start_timeout_s:g} s")
                return []
            return [(service, service.pid, "ready")]
        if status.state == RUNNING and now >= status.next_at:
            status.next_at = now + self.policy.liveness_interval_s
            return [(service, service.pid, "alive")]
        return []

    def _check(self, item: tuple[Service, int | None, str]) -> bool:
        service, _, kind = item
        if kind == "ready":
            return service.healthy(timeout=self.policy.liveness_timeout_s)
        return service.alive(timeout=self.policy.liveness_timeout_s)

    def _apply_check(self, service: Service, kind: str, ok: bool, now: float) -> bool:
        """Act on one health check's result; whether the state changed."""
        status = service.status
        if kind == "ready":
            if ok and status.state == STARTING:
                self._recovered(service, now)
                return True
            return False
        if ok:
            status.failed_checks = 0
            return False
        status.failed_checks += 1
        if status.failed_checks < self.policy.liveness_failures:
            return False
        self._kill_group(service)
        self._crashed(
            service, None, now, f"no answer at {service.health_url} {status.failed_checks} times in a row"
        )
        return True

    def _recovered(self, service: Service, now: float) -> None:
        status = service.status
        status.state, status.failed_checks = RUNNING, 0
        status.next_at = now + self.policy.liveness_interval_s
        if status.down_since is not None:
            logger.info(
                "service.recovered",
                service=service.name,
                down_s=round(now - status.down_since, 1),
                restarts=status.restarts,
            )
            status.down_since = None
        self.write_state()

    def _crashed(self, service: Service, exit_code: int | None, now: float, reason: str) -> None:
        """A crash: back off and restart, or give up after too many in the window."""
        status, policy = service.status, self.policy
        status.last_exit_code = exit_code
        status.crashes = [t for t in status.crashes if now - t < policy.window_s] + [now]
        status.down_since = status.down_since if status.down_since is not None else now
        attempt = len(status.crashes)
        if attempt >= policy.max_crashes:
            status.state = GAVE_UP
            logger.error(
                "service.gave_up",
                service=service.name,
                exit_code=exit_code,
                reason=reason,
                crashes=attempt,
                window_s=policy.window_s,
                message=f"{service.name} crashed {attempt} times within {policy.window_s:g} s: not "
                f"restarting it; the other services keep serving. Its log: {service.log_path}",
            )
        else:
            delay = policy.delay(attempt)
            status.state, status.next_at = BACKOFF, now + delay
            logger.warning(
                "service.restart",
                service=service.name,
                exit_code=exit_code,
                reason=reason,
                attempt=attempt,
                delay_s=delay,
            )
        self.write_state()

    @staticmethod
    def _kill_group(service: Service) -> None:
        proc = service.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass

    def write_state(self) -> None:
        """Write every service's state and restart count to the state file (atomically), if there is one."""
        if self.state_file is None:
            return
        with self._lock:
            payload = {
                "launcher_pid": os.getpid(),
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "services": {s.name: s.status.as_json(s.pid if s.running else None) for s in self.services},
            }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, self.state_file)

    def stop(self, grace: float = 15.0) -> None:
        """Stop supervising, then stop the processes started here (their whole process groups), newest
        first: SIGTERM, then SIGKILL after ``grace`` seconds."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            for service in reversed(self.services):
                proc = service.process
                service.status.state = STOPPED
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
        if self.services:
            self.write_state()


def read_state(path: Path) -> dict[str, dict[str, Any]]:
    """The services in a supervisor state file (``{name: {state, pid, restarts, ...}}``); empty when there
    is no file or it cannot be read (no launcher supervises this stack)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    services = data.get("services") if isinstance(data, dict) else None
    return services if isinstance(services, dict) else {}
