"""Database fixtures: a fresh SQLite file, and a fresh PostgreSQL database when the service is there."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

POSTGRES_SERVER = os.environ.get(
    "SWITCHBOARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'stores.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards. Skips without the service (fails under CI)."""
    admin = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI but not reachable at {POSTGRES_SERVER}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_SERVER}")
    name = f"switchboard_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    from app.data.db import get_engine

    get_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request) -> str:
    """Each store test runs on both backends."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def postgres_tracker_url(postgres_url: str) -> Iterator[str]:
    """A second new PostgreSQL database (for Rasa's tracker store, which is a database of its own), dropped
    afterwards. Depends on ``postgres_url``, so it skips (or fails under CI) the same way."""
    admin = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    name = f"switchboard_test_tracker_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    from app.data.db import get_engine

    get_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
