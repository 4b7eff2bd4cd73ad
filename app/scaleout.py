"""Scale-out mode: the Rasa endpoints file for this run, the rules for several replicas, their ports.

Rasa reads its stores from ``endpoints.yml``, and one YAML file cannot say "SQLite here, PostgreSQL there"
(``dialect``, ``db`` and the lock store's presence differ, not just values). So the launcher writes the
endpoints file of each run into the state dir from the settings: ``nlu/endpoints.yml`` (kept valid for a
hand-started ``rasa run`` with the SQLite default) with ``action_endpoint``, ``tracker_store`` and
``lock_store`` replaced. Several replicas must share conversations (tracker store on PostgreSQL) and
serialise the turns of one conversation (lock store on Redis); anything else is refused before a process
starts, because replicas with their own stores would silently answer from different histories.

Main environment only (SQLAlchemy 2, psycopg 3); Rasa itself reads the generated YAML.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.data.db import store_url
from app.settings import ROOT, Settings

ENDPOINTS_TEMPLATE = ROOT / "nlu" / "endpoints.yml"
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
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Generated by app/scaleout.py for this run from the SWITCHBOARD_* settings; do not edit.\n"
    text += yaml.safe_dump(endpoints_config(settings), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)
    return path


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
    ports = [first or _bind_free(host)]
    candidate = ports[0] + 1
    while len(ports) < count:
        if candidate > 65535:
            ports.append(_bind_free(host))
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
