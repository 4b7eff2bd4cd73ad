"""Migration 0002 (llm_calls, answer_cache): it keeps existing rows, and its tables carry tenant and user ids."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from app.data import db as stores
from app.data.schema import answer_cache, llm_calls, metadata
from app.data.seed import seed_crm

NEW_TABLES = {"llm_calls", "answer_cache"}


def test_upgrade_from_0001_keeps_rows_and_adds_the_tables(db_url: str) -> None:
    stores.upgrade(db_url, "0001")
    engine = stores.get_engine(db_url)
    assert seed_crm(engine) > 0
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM crm_orders")).scalar()

    stores.upgrade(db_url)
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) >= NEW_TABLES
    for name in NEW_TABLES:
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert {"tenant_id", "user_id"} <= columns, name
        assert name in metadata.tables
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM crm_orders")).scalar() == before


def test_downgrade_to_0001_removes_only_the_new_tables(sqlite_url: str) -> None:
    stores.upgrade(sqlite_url)
    engine = stores.get_engine(sqlite_url)
    seed_crm(engine)
    command.downgrade(stores.alembic_config(sqlite_url), "0001")
    names = set(sa.inspect(engine).get_table_names())
    assert not names & NEW_TABLES
    assert {"crm_orders", "crm_customers", "tickets"} <= names
    assert stores.current_revision(sqlite_url) == "0001"


def test_cache_scope_key_is_unique(sqlite_url: str) -> None:
    stores.upgrade(sqlite_url)
    engine = stores.get_engine(sqlite_url)
    row = {
        "tenant_id": "acme", "user_id": "alice", "kb_version": "v1", "key_hash": "k", "question": "q",
        "answer": "a", "embedding": b"\x00" * 4, "created_at": sa.func.now(), "expires_at": sa.func.now(),
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(answer_cache).values(**row))
        conn.execute(sa.insert(answer_cache).values(**{**row, "kb_version": "v2"}))
        conn.execute(sa.insert(answer_cache).values(**{**row, "tenant_id": "globex"}))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(answer_cache).values(**row))  # same tenant, kb_version and key
    with engine.begin() as conn:
        conn.execute(sa.insert(llm_calls).values(tenant_id="acme", user_id="alice", tier=1, model="small",
                                                 outcome="ok", created_at=sa.func.now()))  # fmt: skip
        call = conn.execute(sa.select(llm_calls)).mappings().one()
    assert (call["prompt_tokens"], call["cost"], call["conversation_id"]) == (0, 0, "")
