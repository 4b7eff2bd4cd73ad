"""Migrations: the schema comes from Alembic, carries tenant and user ids, and never loses rows."""

from __future__ import annotations

import sqlalchemy as sa

from app.data import db as stores
from app.data.schema import metadata
from app.data.seed import seed_crm


def head_revision(url: str) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(stores.alembic_config(url)).get_current_head()


def tables(url: str) -> dict[str, set[str]]:
    inspector = sa.inspect(stores.get_engine(url))
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


def test_upgrade_creates_every_table_with_tenant_and_user_ids(db_url):
    stores.upgrade(db_url)
    found = tables(db_url)
    ours = set(found) - {"alembic_version"}
    assert ours == set(metadata.tables)
    for name in ours:
        assert {"tenant_id", "user_id"} <= found[name], name
    assert stores.current_revision(db_url) == head_revision(db_url)


def test_migrations_match_the_schema_module(db_url):
    """What the code queries (schema.py) is what the migrations built: no autogenerate diff."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    stores.upgrade(db_url)
    with stores.get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_again_keeps_stored_rows(db_url):
    stores.upgrade(db_url)
    engine = stores.get_engine(db_url)
    assert seed_crm(engine) > 0
    stores.upgrade(db_url)
    assert seed_crm(engine) == 0  # idempotent: everything is still there
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM crm_orders")).scalar() == 5


def test_downgrade_and_upgrade_round_trip(sqlite_url):
    from alembic import command

    stores.upgrade(sqlite_url)
    command.downgrade(stores.alembic_config(sqlite_url), "base")
    assert set(tables(sqlite_url)) == {"alembic_version"}
    stores.upgrade(sqlite_url)
    assert stores.current_revision(sqlite_url) == head_revision(sqlite_url)


def test_cli_init_prepares_and_seeds(sqlite_url, capsys):
    from app.data.__main__ import main

    assert main(["init", "--url", sqlite_url]) == 0
    assert "(8 demo rows added)" in capsys.readouterr().out
    assert main(["init", "--url", sqlite_url]) == 0
    assert "(0 demo rows added)" in capsys.readouterr().out


def test_cli_reports_an_unusable_database_in_one_line(tmp_path, capsys):
    from app.data.__main__ import main

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["init", "--url", f"sqlite:///{blocker}/x/stores.db"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot prepare the stores") and "\n" not in err


def test_the_migrations_have_one_head():
    """A new migration is rebased onto the latest one: two heads would make `upgrade head` ambiguous."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(stores.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, f"several migration heads: {script.get_heads()}"
