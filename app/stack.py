"""Start the served bot on loopback: CRM service, action server, Rasa server (REST channel), gateway,
Streamlit app; with a canary share configured (flag ``challenger_percent`` above 0 for any tenant) and the
registry's challenger model at ``settings.challenger_model_path``, also a ``rasa-canary`` server with that
model, which the gateway sends the canary users to.

``python -m app.stack`` (what ``make run`` calls) prepares the stores, starts the processes, waits
until each answers its health check, prints the URLs, then supervises them: a service that crashes or hangs
is restarted with a bounded backoff while the others keep serving (:mod:`app.supervisor`), and the launcher
exits only on Ctrl-C or SIGTERM, stopping the processes it started (by process group) and nothing else.
The end-to-end tests use the same ``Stack`` class (:meth:`Stack.supervise` turns supervision on there).

This module composes the stack: which services, their argv, environment, health URLs, ports, replicas and
canary. Running them (launch, health wait, kill, restart, stop, log tails) is :mod:`app.supervisor`'s job.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from functools import cached_property

from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

from app.data.db import get_engine, upgrade
from app.data.seed import seed_demo_tenants
from app.observability.logging import configure_logging
from app.offline import apply_offline_env
from app.scaleout import (
    ChannelStatus,
    ScaleOutError,
    check_action_workers,
    check_channel_exposure,
    check_scale_out,
    configured_ports,
    credentials_path,
    endpoints_path,
    ensure_postgres_database,
    event_broker_endpoint,
    free_port,
    is_postgres_url,
    replica_ports,
    write_credentials,
    write_endpoints,
)
from app.settings import ROOT, Settings, get_settings
from app.supervisor import STATE_FILE, RestartPolicy, Service, StackError, Supervisor
from nlu.rasa_runner import rasa_command

__all__ = ["SERVICES", "RestartPolicy", "Service", "Stack", "StackError", "main"]

SERVICES = ("crm", "actions", "rasa", "gateway", "recorder", "streamlit")


class Stack:
    """The served bot's processes, composed from the settings, started and stopped together (by its
    :class:`~app.supervisor.Supervisor`)."""

    def __init__(
        self,
        settings: Settings | None = None,
        services: Iterable[str] = SERVICES,
        restart_policy: RestartPolicy | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        if self.settings.crm_port == 0:  # "any free port": fixed now, passed to every service
            port = free_port(self.settings.host, avoid=configured_ports(self.settings))
            self.settings = self.settings.model_copy(update={"crm_port": port})
        self.names = [s for s in SERVICES if s in set(services)]
        if "gateway" in self.names and not self.settings.jwt_secret.get_secret_value():
            # Local demo: a random token secret for this run only, handed to the gateway and the chat page
            # through their environment (never written to a file).
            self.settings = self.settings.model_copy(
                update={"jwt_secret": SecretStr(secrets.token_urlsafe(32))}
            )
        self.supervisor = Supervisor(
            cwd=ROOT, policy=restart_policy, state_file=self.settings.state_dir / STATE_FILE
        )
        self.channels: list[ChannelStatus] = []  # which channels Rasa serves, known once prepared
        # the SIGTERM handler start() replaced, put back by stop()
        self._sigterm_before: Callable[..., object] | int | None = None
        self._sigterm_trapped = False
        # Replica i listens on rasa_ports[i]; the first is settings.rasa_port, as with one replica.
        # Replicas after the first skip every other *_port setting (e.g. the gateway's, not yet bound).
        self.rasa_ports = (
            replica_ports(
                self.settings.host,
                self.settings.rasa_port,
                self.settings.rasa_replicas,
                avoid=configured_ports(self.settings, but="rasa_port"),
            )
            if "rasa" in self.names
            else []
        )

    @cached_property
    def canary(self) -> bool:
        """Whether this stack serves the challenger model to a canary share of users (see the docstring)."""
        if not {"rasa", "gateway"} <= set(self.names) or not self.settings.challenger_model_path.exists():
            return False
        from app.flags import Flags

        try:
            flags = self.settings.section("flags", Flags.from_params)
        except (OSError, ValueError):
            return False
        tenants = [None, self.settings.tenant, *flags.tenants]
        return any(flags.percent("challenger_percent", tenant) > 0 for tenant in tenants)

    @cached_property
    def event_broker(self) -> bool:
        """Whether Rasa publishes its events to the configured broker (configured, and it answered at start)."""
        return event_broker_endpoint(self.settings) is not None

    @property
    def canary_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.canary_port}"

    @property
    def services(self) -> list[Service]:
        """The services started (in start order); empty before :meth:`start`."""
        return self.supervisor.services

    @property
    def rasa_urls(self) -> list[str]:
        """Base URLs of the Rasa replicas (one per replica, in start order): what a load balancer targets."""
        return [f"http://{self.settings.host}:{port}" for port in self.rasa_ports]

    def env(self) -> dict[str, str]:
        s = self.settings
        env = apply_offline_env(dict(os.environ))
        serve = s.serve()
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
                "SWITCHBOARD_HOST": s.host,
                "SWITCHBOARD_RASA_PORT": str(s.rasa_port),
                "SWITCHBOARD_ACTION_PORT": str(s.action_port),
                "SWITCHBOARD_STREAMLIT_PORT": str(s.streamlit_port),
                "SWITCHBOARD_CRM_PORT": str(s.crm_port),
                "SWITCHBOARD_CRM_TIMEOUT_S": str(s.crm_timeout_s),
                "SWITCHBOARD_CRM_JOB_DELAY_S": str(s.crm_job_delay_s),
                "SWITCHBOARD_CRM_POLL_S": str(s.crm_poll_s),
                "SWITCHBOARD_TICKET_WEBHOOK_URL": s.ticket_webhook,
                "SWITCHBOARD_STATE_DIR": str(s.state_dir),
                "SWITCHBOARD_DATABASE_URL": s.db_url,
                "SWITCHBOARD_TENANT": s.tenant,
                "SWITCHBOARD_INDEX_DIR": str(s.index_dir),
                "SWITCHBOARD_PARAMS_FILE": str(s.params_file),
                "SWITCHBOARD_ACTION_URL": s.action_url,
                "SWITCHBOARD_TRACKER_DB": s.tracker_db,
                "SWITCHBOARD_MAX_MESSAGE_CHARS": str(serve.max_message_chars),
                "SANIC_HOST": s.host,
                "SWITCHBOARD_GATEWAY_PORT": str(s.gateway_port),
                "SWITCHBOARD_RECORDER_PORT": str(s.recorder_port),
                # the recorder consumes the event broker only when Rasa publishes to it (it answered at start)
                "SWITCHBOARD_EVENT_BROKER_URL": s.event_broker_url if self.event_broker else "",
                "SWITCHBOARD_EVENT_BROKER_QUEUE": s.event_broker_queue,
                "SWITCHBOARD_TRACKER_STORE_URL": s.tracker_store_url,
                # state every process needs to share (breakers; degradation windows over params.yaml's)
                "SWITCHBOARD_BREAKER_STORAGE_URL": s.breaker_storage_url,
                "SWITCHBOARD_BREAKER_KEY_PREFIX": s.breaker_key_prefix,
                "SWITCHBOARD_DEGRADATION_STORAGE_URL": s.degradation_storage_url,
                # the gateway balances over every Rasa replica this stack starts, unless told otherwise
                "SWITCHBOARD_GATEWAY_UPSTREAMS": s.gateway_upstreams
                or ",".join(self.rasa_urls or [s.rasa_url]),
                "SWITCHBOARD_GATEWAY_CANARY_UPSTREAMS": s.gateway_canary_upstreams
                or (self.canary_url if self.canary else ""),
            }
        )
        if s.jwt_secret.get_secret_value():
            env["SWITCHBOARD_JWT_SECRET"] = s.jwt_secret.get_secret_value()
        # the security settings as this stack's settings say (an empty one overrides the caller's env)
        env["SWITCHBOARD_JWT_AUDIENCE"] = s.jwt_audience
        env["SWITCHBOARD_JWT_ISSUER"] = s.jwt_issuer
        env["SWITCHBOARD_API_KEY_SECRET"] = s.api_key_secret.get_secret_value()
        env["SWITCHBOARD_CHANNEL_SECRET"] = s.channel_secret.get_secret_value()
        # the vendor channels' secrets, which the run's credentials file names as ${VAR} (.env values too)
        for name in ("slack_bot_token", "slack_signing_secret", "teams_app_password", "twilio_auth_token"):
            env[f"SWITCHBOARD_{name.upper()}"] = getattr(s, name).get_secret_value()
        return env

    def _define(self) -> list[Service]:
        s, logs = self.settings, self.settings.state_dir / "logs"
        defs = {
            "crm": Service(
                "crm",
                [
                    sys.executable,
                    "-m",
                    "app.integrations.services.crm_service",
                    "--port",
                    str(s.crm_port),
                    "--host",
                    s.host,
                ],
                f"{s.crm_url}/health",
                logs / "crm.log",
                '"ok"',
            ),
            "actions": Service(
                "actions",
                [
                    sys.executable,
                    "-m",
                    "app.actions.server",
                    "--port",
                    str(s.action_port),
                    "--workers",
                    str(s.action_workers),
                ],
                f"http://{s.host}:{s.action_port}/health",
                logs / "actions.log",
                '"ok"',
            ),
            "gateway": Service(
                "gateway",
                [
                    sys.executable,
                    "-m",
                    "app.gateway",
                    "serve",
                    "--port",
                    str(s.gateway_port),
                    "--host",
                    s.host,
                ],
                f"{s.gateway_url}/health",
                logs / "gateway.log",
                '"ok"',
            ),
            "recorder": Service(
                "recorder",
                [sys.executable, "-m", "app.analytics.recorder", "--port", str(s.recorder_port)],
                f"http://{s.host}:{s.recorder_port}/health",
                logs / "recorder.log",
                '"ok"',
            ),
            "streamlit": Service(
                "streamlit",
                [
                    sys.executable,
                    "-m",
                    "streamlit",
                    "run",
                    str(ROOT / "app" / "ui" / "Home.py"),
                    "--server.port",
                    str(s.streamlit_port),
                    "--server.address",
                    s.host,
                    "--server.headless",
                    "true",
                    "--browser.gatherUsageStats",
                    "false",
                ],
                f"{s.streamlit_url}/_stcore/health",
                logs / "streamlit.log",
                "ok",
            ),
        }

        # "rasa" is one service per replica: "rasa", "rasa-2", ... (logs rasa.log, rasa-2.log, ...), plus
        # "rasa-canary" (the challenger model) when this stack runs a canary.
        def expand(name: str) -> list[Service]:
            if name != "rasa":
                return [defs[name]]
            return self._rasa_replicas() + ([self._rasa_canary()] if self.canary else [])

        return [svc for name in self.names for svc in expand(name)]

    def _rasa_canary(self) -> Service:
        s = self.settings
        return Service(
            "rasa-canary",
            rasa_command(
                [
                    "run",
                    "--model",
                    str(s.challenger_model_path),
                    "--port",
                    str(s.canary_port),
                    "--interface",
                    s.host,
                    "--credentials",
                    str(credentials_path(s)),
                    "--endpoints",
                    str(endpoints_path(s)),
                ]
            ),
            f"{self.canary_url}/webhooks/rest/",
            s.state_dir / "logs" / "rasa-canary.log",
            '"ok"',
        )

    def _rasa_replicas(self) -> list[Service]:
        s, endpoints = self.settings, endpoints_path(self.settings)
        return [
            Service(
                "rasa" if i == 0 else f"rasa-{i + 1}",
                rasa_command(
                    [
                        "run",
                        "--model",
                        str(s.model_path),
                        "--port",
                        str(port),
                        "--interface",
                        s.host,
                        "--credentials",
                        str(credentials_path(s)),
                        "--endpoints",
                        str(endpoints),
                    ]
                ),
                f"http://{s.host}:{port}/webhooks/rest/",
                s.state_dir / "logs" / ("rasa.log" if i == 0 else f"rasa-{i + 1}.log"),
                '"ok"',
            )
            for i, port in enumerate(self.rasa_ports)
        ]

    def prepare(self) -> None:
        """Migrate and seed our stores; check the trained model is there."""
        if "actions" in self.names:
            check_action_workers(self.settings)  # ScaleOutError: workers that would not share breakers
        if "rasa" in self.names and not self.settings.model_path.exists():
            raise StackError(f"no trained model at {self.settings.model_path}: run `dvc repro` first")
        if "rasa" in self.names:
            check_scale_out(self.settings)  # ScaleOutError: replicas that would not share conversations
            check_channel_exposure(self.settings)
            write_endpoints(self.settings)
            try:
                self.channels = write_credentials(self.settings)
            except ValueError as exc:  # an invalid params.yaml `channels` section: one line, nothing started
                raise StackError(str(exc)) from exc
        # Missing PostgreSQL databases are created once here, before the replicas could race to do it.
        for url in (self.settings.tracker_store_url, self.settings.db_url):
            if is_postgres_url(url):
                try:
                    ensure_postgres_database(url)
                except SQLAlchemyError as exc:
                    raise StackError(
                        f"cannot prepare the PostgreSQL database of {url}: {str(exc).splitlines()[0]}"
                    ) from exc
        upgrade(self.settings.db_url)
        seed_demo_tenants(get_engine(self.settings.db_url), self.settings.tenant)

    def start(self, timeout: float = 180.0) -> None:
        """Start every service and wait until all are healthy (or raise ``StackError`` and stop them).

        From here until :meth:`stop`, SIGTERM raises ``KeyboardInterrupt`` in the main thread, as Ctrl-C does, so
        the code around a stack (a ``with`` block, the evaluation's) stops it: its services run in sessions of
        their own and would outlive a parent killed by ``kill`` or a job's timeout, holding ports and memory.
        Interrupted while waiting for the health checks, it stops what it launched."""
        self.prepare()
        if not self._sigterm_trapped and threading.current_thread() is threading.main_thread():
            self._sigterm_before = signal.signal(signal.SIGTERM, _interrupt)
            self._sigterm_trapped = True
        try:
            self.supervisor.start(self._define(), self.env(), timeout)
        except BaseException:
            self.stop()
            raise

    def supervise(self) -> None:
        """Restart crashed or hung services from now on (in a background thread), as ``make run`` does."""
        self.supervisor.supervise()

    def service(self, name: str) -> Service:
        return self.supervisor.service(name)

    def kill(self, name: str) -> None:
        """Kill one service at once (SIGKILL to its process group): a crash, not a graceful stop (under
        supervision it is restarted like any crash)."""
        self.supervisor.kill(name)

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start a stopped or killed service again (same port and stores) and wait until it is healthy (under
        supervision: wait until the supervisor's restart is healthy)."""
        self.supervisor.restart(name, self.env(), timeout)

    def stop(self, grace: float = 15.0) -> None:
        """Stop the processes this stack started (their whole process groups), newest first; SIGTERM is handled
        as before :meth:`start` again."""
        self.supervisor.stop(grace)
        if self._sigterm_trapped and threading.current_thread() is threading.main_thread():
            before = self._sigterm_before
            signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)
            self._sigterm_trapped = False

    def urls(self) -> dict[str, str]:
        s = self.settings
        return {
            "crm": f"{s.crm_url}/health (CRM, refunds, notifications, handoffs)",
            "rasa": ("\n" + " " * 13).join(
                f"{url}/webhooks/rest/webhook (REST channel)" for url in self.rasa_urls
            ),
            "actions": f"http://{s.host}:{s.action_port}/health"
            + (f" ({s.action_workers} worker processes)" if s.action_workers > 1 else ""),
            "gateway": f"{s.gateway_url}/webhooks/rest/webhook (REST channel with a Bearer token); "
            f"{s.gateway_url}/health (services, restarts, degradation level)"
            + (f"; canary: {self.canary_url} serves {s.challenger_model_path.name}" if self.canary else ""),
            "recorder": f"http://{s.host}:{s.recorder_port}/health (turn records, POST /sync)",
            "streamlit": s.streamlit_url,
        }

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.stack", description=__doc__)
    parser.add_argument("--services", nargs="+", choices=SERVICES, default=list(SERVICES))
    parser.add_argument(
        "--rasa-replicas",
        type=int,
        metavar="N",
        help="Rasa servers to start (default: SWITCHBOARD_RASA_REPLICAS, 1); more than one needs "
        "SWITCHBOARD_TRACKER_STORE_URL (PostgreSQL) and SWITCHBOARD_LOCK_STORE_URL (Redis)",
    )
    parser.add_argument(
        "--action-workers",
        type=int,
        metavar="N",
        help="action-server worker processes behind its one port (default: SWITCHBOARD_ACTION_WORKERS, 1); "
        "more than one needs SWITCHBOARD_BREAKER_STORAGE_URL and SWITCHBOARD_DEGRADATION_STORAGE_URL (Redis)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.rasa_replicas is not None:
        settings = settings.model_copy(update={"rasa_replicas": args.rasa_replicas})
    if args.action_workers is not None:
        settings = settings.model_copy(update={"action_workers": args.action_workers})
    try:
        if "actions" in args.services:
            check_action_workers(settings)
        if "rasa" in args.services:  # refused before anything starts: one line, exit 2
            check_scale_out(settings)
            check_channel_exposure(settings)
    except (ScaleOutError, StackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stack = Stack(settings, services=args.services)
    print(f"starting {', '.join(stack.names)} (logs in {stack.settings.state_dir / 'logs'}) ...", flush=True)
    if settings.event_broker_url and not stack.event_broker:
        print(
            "note: the event broker does not answer: turn records come from polling the tracker store",
            flush=True,
        )
    # Ctrl-C and SIGTERM stop what was started, also while waiting for health checks (and even when the
    # shell that started us in the background set SIGINT to be ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    # the supervisor's restart lines: console text for a person at a terminal, JSON when redirected
    configure_logging(json=not sys.stderr.isatty())
    try:
        stack.start()
        for name in stack.names:
            print(f"  {name:<10} {stack.urls()[name]}")
        public = settings.public_url.rstrip("/") or stack.settings.gateway_url
        for channel in stack.channels:  # one line each: on (the URL vendors call) or off (what it lacks)
            print(f"  channel    {channel.line(public)}")
        print("ready. Press Ctrl-C to stop.", flush=True)
        stack.supervise()  # a crashed service is restarted, the others keep serving: only a signal ends this
        while True:
            time.sleep(3600)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
