"""Engines and migrations for our stores."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def store_url(value: str) -> str:
    """A SQLAlchemy URL for a database named the way Rasa's endpoints and our settings name it: a file path
    becomes a SQLite URL, ``postgres://``/``postgresql://`` (as written for Rasa) get our driver, psycopg 3;
    any other URL is kept."""
    if "://" not in value:
        return f"sqlite:///{Path(value).resolve()}"
    url = sa.engine.make_url(value)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def tracker_store_url(settings: Any) -> str:
    """Rasa's tracker store of ``settings``: the scale-out ``tracker_store_url`` when set, else the SQLite
    file ``tracker_db``."""
    return store_url(settings.tracker_store_url or settings.tracker_db)


@lru_cache(maxsize=8)
def get_engine(url: str) -> sa.Engine:
    """One engine per database URL and process; SQLite files get their folder created."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent); stored rows are kept."""
    get_engine(url)  # creates the SQLite folder
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
