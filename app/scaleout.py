"""The Rasa files of each run: the endpoints file, the credentials file (channels), the rules for several
replicas, their ports.

Rasa reads its stores from ``endpoints.yml``, and one YAML file cannot say "SQLite here, PostgreSQL there"
(``dialect``, ``db`` and the lock store's presence differ, not just values). So the launcher writes the
endpoints file of each run into the state dir from the settings: ``nlu/endpoints.yml`` (kept valid for a
hand-started ``rasa run`` with the SQLite default) with ``action_endpoint``, ``tracker_store`` and
``lock_store`` replaced. Several replicas must share conversations (tracker store on PostgreSQL) and
serialise the turns of one conversation (lock store on Redis); anything else is refused before a process
starts, because replicas with their own stores would silently answer from different histories.

Channels the same way: Rasa refuses to start when a ``${VAR}`` of ``credentials.yml`` is unset, so the
launcher writes each run's credentials file with the channels that are configured only
(:func:`write_credentials`): ``nlu/credentials.yml`` (the REST channel) plus each vendor channel whose
credentials are in the settings and whose ids are mapped to tenants in params.yaml ``channels``. Secrets stay
``${SWITCHBOARD_...}`` references that Rasa fills from its environment (the launcher passes them), so the file
holds none; :func:`channel_status` says, one line per channel, which are on and what an off one lacks.

Main environment only (SQLAlchemy 2, psycopg 3); Rasa itself reads the generated YAML. Where the launcher
does not start Rasa (Kubernetes: deploy/k8s), ``python -m app.scaleout`` writes both files into the state dir
and exits, after the same checks (an init container runs it before ``rasa run``).
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import os
import random
import re
import socket
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.data.db import store_url
from app.identity import TENANT_PATTERN
from app.reliability.breakers import check_storage_url, is_shared_url
from app.reliability.degradation import DegradationSettings
from app.settings import ROOT, Settings, get_settings
from app.supervisor import StackError

ENDPOINTS_TEMPLATE = ROOT / "nlu" / "endpoints.yml"
CREDENTIALS_TEMPLATE = ROOT / "nlu" / "credentials.yml"
POSTGRES_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}


class ScaleOutError(ValueError):
    """The scale-out settings are refused; the message is one line saying which setting and why."""


def tracker_store_endpoint(settings: Settings) -> dict[str, Any]:
    """Rasa's ``tracker_store`` section: SQLite at ``settings.tracker_db`` unless a URL is set.

    ``tracker_store_url`` takes ``postgresql://user[:password]@host[:port]/db`` (any of our SQLAlchemy
    drivers, e.g. ``postgresql+psycopg://``, is accepted and mapped to the Rasa environment's psycopg2),
    or ``sqlite:///path``. It is split into Rasa's fields rather than passed whole, because Rasa's
    SQLAlchemy 1.4 would otherwise try to load our driver name.
    """
    if not settings.tracker_store_url:
        return {"type": "SQL", "dialect": "sqlite", "db": settings.tracker_db}
    try:
        url = make_url(settings.tracker_store_url)
    except ArgumentError as exc:
        raise ScaleOutError(f"SWITCHBOARD_TRACKER_STORE_URL is not a database URL: {exc}") from None
    if url.drivername == "sqlite":
        if not url.database:
            raise ScaleOutError(
                "SWITCHBOARD_TRACKER_STORE_URL: sqlite needs a file path (sqlite:///path/tracker.db)"
            )
        return {"type": "SQL", "dialect": "sqlite", "db": url.database}
    if url.drivername not in POSTGRES_DRIVERS:
        raise ScaleOutError(
            f"SWITCHBOARD_TRACKER_STORE_URL: unsupported database {url.drivername!r} (use postgresql:// or sqlite:///)"
        )
    if not url.host or not url.database:
        raise ScaleOutError(
            "SWITCHBOARD_TRACKER_STORE_URL needs a host and a database: postgresql://user@host:5432/db"
        )
    section: dict[str, Any] = {
        "type": "SQL",
        "dialect": "postgresql",
        "url": url.host,
        "port": url.port or 5432,
        "db": url.database,
    }
    if url.username:
        section["username"] = url.username
    if url.password is not None:
        section["password"] = str(url.password)
    if url.query:
        section["query"] = {
            key: value if isinstance(value, str) else value[-1] for key, value in url.query.items()
        }
    return section


ATOMIC_REDIS_LOCK_STORE = "app.channels.lock_store.AtomicRedisLockStore"


def lock_store_endpoint(settings: Settings) -> dict[str, Any] | None:
    """Rasa's ``lock_store`` section from ``redis://[user[:password]@]host[:port][/db]``; None: in-memory.

    ``rediss://`` turns TLS on. The key prefix (``lock_store_key_prefix``) must be alphanumeric because
    Rasa silently drops any other prefix, which would mix the locks of deployments sharing a database.
    """
    if not settings.lock_store_url:
        return None
    parts = urlsplit(settings.lock_store_url)
    if parts.scheme not in {"redis", "rediss"}:
        raise ScaleOutError(
            f"SWITCHBOARD_LOCK_STORE_URL: unsupported scheme {parts.scheme!r} (use redis://host:port/db)"
        )
    try:
        port = parts.port or 6379
    except ValueError:
        raise ScaleOutError(
            f"SWITCHBOARD_LOCK_STORE_URL has an invalid port: {settings.lock_store_url}"
        ) from None
    db_text = parts.path.strip("/") or "0"
    if not parts.hostname or not db_text.isdigit():
        raise ScaleOutError(
            "SWITCHBOARD_LOCK_STORE_URL needs a host and a numeric db: redis://127.0.0.1:6379/1"
        )
    # Rasa's own "redis" type updates its ticket locks without a transaction (two replicas can both take
    # a turn of one conversation): ours makes those updates atomic (app/channels/lock_store.py).
    section: dict[str, Any] = {
        "type": ATOMIC_REDIS_LOCK_STORE,
        "url": parts.hostname,
        "port": port,
        "db": int(db_text),
    }
    if parts.username:
        section["username"] = unquote(parts.username)
    if parts.password:
        section["password"] = unquote(parts.password)
    if parts.scheme == "rediss":
        section["use_ssl"] = True
    prefix = settings.lock_store_key_prefix
    if prefix:
        if not prefix.isalnum():
            raise ScaleOutError(
                f"SWITCHBOARD_LOCK_STORE_KEY_PREFIX must be alphanumeric (Rasa ignores others): {prefix!r}"
            )
        section["key_prefix"] = prefix
    return section


def check_scale_out(settings: Settings) -> None:
    """Refuse settings under which replicas would not share conversations (raise ``ScaleOutError``)."""
    tracker = tracker_store_endpoint(settings)
    lock = lock_store_endpoint(settings)
    if settings.rasa_replicas < 1:
        raise ScaleOutError(f"the number of Rasa replicas must be at least 1, got {settings.rasa_replicas}")
    if settings.rasa_replicas == 1:
        return
    if tracker["dialect"] != "postgresql":
        raise ScaleOutError(
            f"{settings.rasa_replicas} Rasa replicas need a shared tracker store: set SWITCHBOARD_TRACKER_STORE_URL "
            "to a postgresql:// URL (SQLite is one file per machine and one writer at a time)"
        )
    if lock is None:
        raise ScaleOutError(
            f"{settings.rasa_replicas} Rasa replicas need a shared lock store: set SWITCHBOARD_LOCK_STORE_URL "
            "to a redis:// URL (the in-memory lock store cannot serialise turns across processes)"
        )


def check_action_workers(settings: Settings) -> None:
    """Refuse several action-server workers whose knowledge of failing dependencies would stay per process
    (raise ``ScaleOutError``): circuit breakers and degradation windows must then live in Redis."""
    workers = settings.action_workers
    if workers < 1:
        raise ScaleOutError(f"the number of action-server workers must be at least 1, got {workers}")
    try:
        check_storage_url(settings.breaker_storage_url)
        degradation = DegradationSettings.from_settings(settings)
    except ValueError as exc:  # ParamsError too: one line naming the setting
        raise ScaleOutError(str(exc)) from exc
    if workers == 1:
        return
    if not is_shared_url(settings.breaker_storage_url):
        raise ScaleOutError(
            f"{workers} action-server workers need shared circuit breakers: set SWITCHBOARD_BREAKER_STORAGE_URL "
            "to a redis:// URL (each worker would otherwise keep calling a dependency another one found failing)"
        )
    if not degradation.shared:
        raise ScaleOutError(
            f"{workers} action-server workers need shared degradation windows: set "
            "SWITCHBOARD_DEGRADATION_STORAGE_URL (or params.yaml router.degradation.storage_url) to a redis:// "
            "URL (each worker would otherwise judge failure rates from its own share of the calls)"
        )


def event_broker_endpoint(settings: Settings, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """Rasa's ``pika`` event broker for ``settings.event_broker_url`` when that RabbitMQ answers; None when none
    is configured, or when it does not answer (the bot still starts: Rasa would refuse to, so the launcher
    leaves the broker out and says so, and the turn recorder polls the tracker store instead)."""
    if not settings.event_broker_url:
        return None
    url = urlsplit(settings.event_broker_url)
    if url.scheme not in ("amqp", "amqps") or not url.hostname:
        raise ScaleOutError(
            f"SWITCHBOARD_EVENT_BROKER_URL must be amqp://user:password@host:port/vhost, not {url.scheme}://..."
        )
    port = url.port or (5671 if url.scheme == "amqps" else 5672)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except OSError:
        return None
    section = {
        "type": "pika",
        "url": url.hostname,
        "port": port,
        "username": unquote(url.username or "guest"),
        "password": unquote(url.password or "guest"),
        "queues": [settings.event_broker_queue],
    }
    vhost = unquote(url.path.lstrip("/"))
    if vhost:
        section["vhost"] = vhost
    return section


def endpoints_config(settings: Settings, template: Path = ENDPOINTS_TEMPLATE) -> dict[str, Any]:
    """The template's sections, with the action endpoint, both stores and the event broker (when configured and
    answering) filled from ``settings``.

    Other sections of the template are kept as written; Rasa still expands their ``${VAR}`` references from the
    environment the launcher gives it.
    """
    config = dict(yaml.safe_load(template.read_text()) or {}) if template.exists() else {}
    config["action_endpoint"] = {"url": settings.action_url}
    config["tracker_store"] = tracker_store_endpoint(settings)
    lock = lock_store_endpoint(settings)
    if lock is None:
        config.pop("lock_store", None)
    else:
        config["lock_store"] = lock
    broker = event_broker_endpoint(settings)
    if broker is None:
        config.pop("event_broker", None)
    else:
        config["event_broker"] = broker
    return config


def endpoints_path(settings: Settings) -> Path:
    """Where the launcher writes the run's endpoints file (and each Rasa replica reads it)."""
    return settings.state_dir / "endpoints.yml"


def write_endpoints(settings: Settings, path: Path | None = None) -> Path:
    """Write this run's endpoints file (default ``endpoints_path``), readable by its owner only (it may
    hold database passwords); return its path."""
    path = path or endpoints_path(settings)
    text = "# Generated by app/scaleout.py for this run from the SWITCHBOARD_* settings; do not edit.\n"
    text += yaml.safe_dump(endpoints_config(settings), sort_keys=False)
    _write_private(path, text)
    return path


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


def ensure_postgres_database(url: str) -> bool:
    """Create the PostgreSQL database named in ``url`` if it does not exist (True if created).

    Done once by the launcher, before the replicas start, so they do not race to create it. Connects to
    the server's ``postgres`` maintenance database; needs the CREATEDB privilege only when it is missing.
    """
    target = make_url(store_url(url))  # our environment's driver (psycopg 3) for a Rasa-style URL
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).first()
            if exists:
                return False
            quoted = conn.dialect.identifier_preparer.quote(target.database)
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        admin.dispose()


def is_postgres_url(url: str) -> bool:
    """True for a SQLAlchemy URL whose backend is PostgreSQL (any driver)."""
    try:
        return make_url(url).get_backend_name() in {"postgresql", "postgres"}
    except ArgumentError:
        return False


def replica_ports(host: str, first: int, count: int, avoid: Collection[int] = ()) -> list[int]:
    """``count`` ports for the Rasa replicas: ``first``, then the next consecutive ports that are free and
    not in ``avoid`` (the other services' configured ports, which may not be bound yet), skipping taken
    ones (with ``first`` 0: any free ports). ``first`` itself is not probed, as for a single replica: a
    taken port makes that replica fail its start with a clear log."""
    if count < 1:
        return []
    ports = [first or free_port(host)]
    candidate = ports[0] + 1
    while len(ports) < count:
        if candidate > 65535:
            ports.append(free_port(host))
            continue
        if candidate not in ports and candidate not in avoid and _is_free(host, candidate):
            ports.append(candidate)
        candidate += 1
    return ports


def _is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _bind_free(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# Below the OS's ephemeral range: the port the OS picks for bind(0) is one of those it hands to outgoing
# connections, so between choosing it and a slow server binding it (Rasa loads its model for ~10 s) a
# connection to PostgreSQL or Redis could take it ("address already in use" in a CI pipeline run).
# The lower bound keeps clear of the well-known service ports (5432, 6379, 8080...).
_PORT_FLOOR = 20000
_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_start() -> int:
    """First port of the OS's ephemeral range (Linux reads it; elsewhere the lower of Linux's and the IANA
    defaults, 32768 and 49152)."""
    try:
        return int(_EPHEMERAL_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str, attempts: int = 200, avoid: Collection[int] = ()) -> int:
    """A port nothing listens on now, outside the OS's ephemeral range (see ``_PORT_FLOOR``) and not in
    ``avoid`` (ports already handed to services that have not bound them yet: picked one by one, two
    services of one stack could otherwise be given the same port); the OS's own choice if that range is too
    narrow here or every try is taken."""
    top = _ephemeral_start()
    if top - _PORT_FLOOR >= 1000:
        rng = random.SystemRandom()
        for _ in range(attempts):
            port = rng.randrange(_PORT_FLOOR, top)
            if port not in avoid and _is_free(host, port):
                return port
    while (port := _bind_free(host)) in avoid:
        pass
    return port


def configured_ports(settings: BaseModel, but: str | None = None) -> set[int]:
    """The ports ``settings`` gives its services (every ``*_port`` field), ``but`` the one named: what a port
    picked now for another service (the CRM's "any free port", a Rasa replica) must stay clear of."""
    return {v for k, v in settings.model_dump().items() if k.endswith("_port") and k != but}


def free_ports(host: str, names: Iterable[str]) -> dict[str, int]:
    """One free port per name (see :func:`free_port`), no two the same."""
    ports: dict[str, int] = {}
    for name in names:
        ports[name] = free_port(host, avoid=set(ports.values()))
    return ports


# --- channels: the run's credentials file ------------------------------------------------------------------

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _tenants(mapping: dict[str, str]) -> dict[str, str]:
    for key, tenant in mapping.items():
        if not TENANT_PATTERN.match(tenant):
            raise ValueError(f"{key!r} maps to an invalid tenant id {tenant!r}")
    return mapping


def _numbers(mapping: dict[str, str]) -> dict[str, str]:
    for number in mapping:
        if not E164.match(number):
            raise ValueError(f'{number!r} is not an E.164 phone number (quote it: "+15550100001")')
    return _tenants(mapping)


class SlackParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workspaces: dict[str, str] = Field(default_factory=dict, description="Slack team id -> tenant")
    _check = field_validator("workspaces")(_tenants)


class TeamsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: dict[str, str] = Field(default_factory=dict, description="Microsoft Entra tenant id -> tenant")
    service_urls: list[str] = Field(default_factory=lambda: ["https://smba.trafficmanager.net/"])
    _check = field_validator("tenants")(_tenants)


class SmsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    numbers: dict[str, str] = Field(default_factory=dict, description="our number (E.164) -> tenant")
    _check = field_validator("numbers")(_numbers)


class VoiceParams(BaseModel):
    """``channels.voice``: numbers, and how calls sound (Rasa's ``TwilioVoiceInput`` checks the voice and
    speech model names when it starts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    numbers: dict[str, str] = Field(default_factory=dict, description="our number (E.164) -> tenant")
    voice: str = "Polly.Joanna"
    language: str = "en-US"
    speech_model: str = "phone_call"
    speech_timeout: str = "2"
    silence_timeout_s: int = Field(5, ge=1, le=60)
    max_reprompts: int = Field(2, ge=0, le=10)
    max_spoken_chars: int = Field(320, ge=40)
    _check = field_validator("numbers")(_numbers)


class ChannelParams(BaseModel):
    """``channels`` in params.yaml: per channel, which vendor ids belong to which tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_links: dict[str, str] = Field(default_factory=dict, description="tenant -> link template")
    slack: SlackParams = Field(default_factory=SlackParams)
    teams: TeamsParams = Field(default_factory=TeamsParams)
    sms: SmsParams = Field(default_factory=SmsParams)
    voice: VoiceParams = Field(default_factory=VoiceParams)

    @field_validator("source_links")
    @classmethod
    def _templates(cls, links: dict[str, str]) -> dict[str, str]:
        for tenant, template in links.items():
            if not TENANT_PATTERN.match(tenant):
                raise ValueError(f"{tenant!r} is not a tenant id")
            if not template.startswith(("https://", "http://")):
                raise ValueError(f"the source link of {tenant} is not an http(s) URL: {template!r}")
        return links


@dataclass(frozen=True)
class ChannelStatus:
    """Whether a channel is served this run: its Rasa name, URL path, and what an off channel lacks."""

    name: str
    label: str
    on: bool
    missing: str = ""

    @property
    def path(self) -> str:
        return f"/webhooks/{self.name}/webhook"

    def line(self, base_url: str) -> str:
        """One start-up line: ``slack (Slack) on: <url>`` or ``... off: <what is missing>``."""
        state = f"on: {base_url}{self.path}" if self.on else f"off: {self.missing}"
        return f"{self.name:<13} {self.label:<16} {state}"


SLACK, TEAMS, SMS, VOICE = "slack", "botframework", "twilio", "twilio_voice"
CHANNEL_CLASSES = {
    SLACK: "app.channels.slack.SlackChannel",
    TEAMS: "app.channels.teams.TeamsChannel",
    SMS: "app.channels.sms.SmsChannel",
    VOICE: "app.channels.voice.VoiceChannel",
}
LABELS = {
    "rest": "REST",
    SLACK: "Slack",
    TEAMS: "Microsoft Teams",
    SMS: "SMS (Twilio)",
    VOICE: "voice (Twilio)",
}


def channel_params(settings: Settings) -> ChannelParams:
    """params.yaml ``channels``, validated (``ParamsError`` names a bad entry)."""
    return settings.section("channels", ChannelParams)


def _ref(variable: str) -> str:
    """A secret as Rasa's credentials file refers to it: filled from Rasa's environment when it starts."""
    return "${" + variable + "}"


def _missing(settings: Settings, required: dict[str, Any]) -> list[str]:
    """The ``SWITCHBOARD_*`` variables among ``required`` (field name -> value) that are not set."""
    names = []
    for field, value in required.items():
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value or "")
        if not text.strip():
            names.append(f"SWITCHBOARD_{field.upper()}")
    return names


def vendor_channels(settings: Settings) -> tuple[dict[str, dict[str, Any]], list[ChannelStatus]]:
    """The credentials sections of the vendor channels that are on (by class path), and every channel's
    status. Secrets are ``${VAR}`` references; the rest (tenant maps, URLs, voice settings) is written out."""
    params = channel_params(settings)
    s = settings
    common = {
        "source_links": dict(params.source_links),
        "max_body_bytes": s.section("gateway", dict).get("max_body_bytes") or None,
    }
    common = {k: v for k, v in common.items() if v}
    twilio = {
        "account_sid": s.twilio_account_sid,
        "auth_token": _ref("SWITCHBOARD_TWILIO_AUTH_TOKEN"),
        "public_url": s.public_url.rstrip("/"),
        **({"api_url": s.twilio_api_url} if s.twilio_api_url else {}),
    }
    twilio_needs = {
        "twilio_account_sid": s.twilio_account_sid,
        "twilio_auth_token": s.twilio_auth_token,
        "public_url": s.public_url,
    }
    candidates: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
        (
            SLACK,
            {"slack_bot_token": s.slack_bot_token, "slack_signing_secret": s.slack_signing_secret},
            {
                "slack_token": _ref("SWITCHBOARD_SLACK_BOT_TOKEN"),
                "slack_signing_secret": _ref("SWITCHBOARD_SLACK_SIGNING_SECRET"),
                "workspaces": dict(params.slack.workspaces),
                **({"api_url": s.slack_api_url} if s.slack_api_url else {}),
            },
            "" if params.slack.workspaces else "no workspace in params.yaml channels.slack.workspaces",
        ),
        (
            TEAMS,
            {"teams_app_id": s.teams_app_id, "teams_app_password": s.teams_app_password},
            {
                "app_id": s.teams_app_id,
                "app_password": _ref("SWITCHBOARD_TEAMS_APP_PASSWORD"),
                "tenants": dict(params.teams.tenants),
                "service_urls": list(params.teams.service_urls),
                **{
                    key: value
                    for key, value in {
                        "openid_url": s.teams_openid_url,
                        "jwks_url": s.teams_jwks_url,
                        "token_url": s.teams_token_url,
                    }.items()
                    if value
                },
            },
            "" if params.teams.tenants else "no Microsoft tenant in params.yaml channels.teams.tenants",
        ),
        (
            SMS,
            twilio_needs,
            {**twilio, "numbers": dict(params.sms.numbers)},
            "" if params.sms.numbers else "no number in params.yaml channels.sms.numbers",
        ),
        (
            VOICE,
            {**twilio_needs, "voice_transfer_number": s.voice_transfer_number},
            {
                **{k: v for k, v in twilio.items() if k != "api_url"},
                "numbers": dict(params.voice.numbers),
                "transfer_number": s.voice_transfer_number,
                "assistant_voice": params.voice.voice,
                "language": params.voice.language,
                "speech_model": params.voice.speech_model,
                "speech_timeout": params.voice.speech_timeout,
                "silence_timeout_s": params.voice.silence_timeout_s,
                "max_reprompts": params.voice.max_reprompts,
                "max_spoken_chars": params.voice.max_spoken_chars,
            },
            "" if params.voice.numbers else "no number in params.yaml channels.voice.numbers",
        ),
    ]
    sections: dict[str, dict[str, Any]] = {}
    statuses = [ChannelStatus("rest", LABELS["rest"], True)]
    for name, required, section, unmapped in candidates:
        missing = _missing(settings, required)
        if name == VOICE and s.voice_transfer_number and not E164.match(s.voice_transfer_number):
            missing.append("SWITCHBOARD_VOICE_TRANSFER_NUMBER as E.164 (+15550100)")
        reason = f"set {', '.join(missing)}" if missing else unmapped
        statuses.append(ChannelStatus(name, LABELS[name], not reason, reason))
        if not reason:  # a copy each: no YAML anchors shared between sections
            sections[CHANNEL_CLASSES[name]] = copy.deepcopy({**common, **section})
    return sections, statuses


def credentials_config(
    settings: Settings, template: Path = CREDENTIALS_TEMPLATE
) -> tuple[dict[str, Any], list[ChannelStatus]]:
    """The template's channels (the REST channel) and the vendor channels that are on; every status."""
    config = dict(yaml.safe_load(template.read_text()) or {}) if template.exists() else {}
    for path in CHANNEL_CLASSES.values():
        config.pop(path, None)
    sections, statuses = vendor_channels(settings)
    config.update(sections)
    return config, statuses


def credentials_path(settings: Settings) -> Path:
    """Where the launcher writes the run's credentials file (and each Rasa replica reads it)."""
    return settings.state_dir / "credentials.yml"


def write_credentials(settings: Settings, path: Path | None = None) -> list[ChannelStatus]:
    """Write this run's credentials file (default ``credentials_path``, owner-only like the endpoints file)
    and return every channel's status."""
    path = path or credentials_path(settings)
    config, statuses = credentials_config(settings)
    text = "# Generated by app/scaleout.py for this run from the settings and params.yaml `channels`.\n"
    text += "# Secrets are ${VAR} references Rasa fills from its environment. Do not edit.\n"
    text += yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    _write_private(path, text)
    return statuses


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def check_channel_exposure(settings: Settings) -> None:
    """Rasa's REST channel trusts ``X-Tenant-Id``: beyond loopback it must require the gateway's secret
    (``SWITCHBOARD_CHANNEL_SECRET``); ``StackError`` when Rasa would listen elsewhere without one."""
    if not is_loopback(settings.host) and not settings.channel_secret.get_secret_value():
        raise StackError(
            f"Rasa would listen on {settings.host}, beyond loopback, where anyone could claim any tenant: "
            "set SWITCHBOARD_CHANNEL_SECRET (the gateway sends it, the channel requires it)"
        )


def main(argv: list[str] | None = None) -> int:
    """Write Rasa's endpoints and credentials files for the settings into the state dir; exit 2 with one line
    when the settings are refused (the checks ``python -m app.stack`` makes before starting Rasa)."""
    argparse.ArgumentParser(prog="python -m app.scaleout", description=main.__doc__).parse_args(argv)
    settings = get_settings()
    try:
        check_scale_out(settings)
        check_channel_exposure(settings)
        endpoints = write_endpoints(settings)
        channels = write_credentials(settings)
    except (ScaleOutError, StackError, ValueError) as exc:  # ValueError: an invalid `channels` section
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {endpoints} and {credentials_path(settings)} (action endpoint {settings.action_url})")
    public = settings.public_url.rstrip("/") or settings.gateway_url
    for channel in channels:
        print(f"  channel    {channel.line(public)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
