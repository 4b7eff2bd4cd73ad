"""Retention and per-user erasure (app/data/retention.py, ``python -m app.data forget-user|purge``).

Every test runs on SQLite and on PostgreSQL (fresh databases per test, dropped afterwards; skipped without
the service, failing under CI=true). Rasa's tracker store is a database of its own: the ``events`` table is
created with the DDL Rasa 3.6's ``SQLTrackerStore.SQLEvent`` emits (``RASA_EVENTS_DDL``, printed by
``CreateTable(SQLTrackerStore.SQLEvent.__table__)`` in ``.venv-rasa``), and
``test_events_ddl_is_what_rasa_creates`` checks it against a table Rasa itself creates.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import yaml
from alembic import command

from app.data import retention, schema
from app.data.__main__ import main
from app.data.db import alembic_config, get_engine, upgrade
from app.data.retention import (
    FORGOTTEN,
    BadInput,
    RetentionError,
    RetentionPolicy,
    forget_user,
    purge,
    user_hash,
)
from app.data.schema import (
    action_runs,
    answer_cache,
    customers,
    jobs,
    llm_calls,
    notifications,
    orders,
    retention_audit,
    tickets,
    turn_records,
)
from app.data.seed import seed_crm
from app.data.tracker import events as tracker_events

ROOT = Path(__file__).resolve().parents[3]
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"

# Rasa 3.6, rasa/core/tracker_store.py, SQLTrackerStore.SQLEvent; SQLite and PostgreSQL DDL as SQLAlchemy
# compiles it (PostgreSQL: SERIAL for the integer primary key).
RASA_EVENTS_DDL = """
CREATE TABLE events (
    id {id_type} NOT NULL,
    sender_id VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT,
    intent_name VARCHAR(255),
    action_name VARCHAR(255),
    data TEXT,
    PRIMARY KEY (id)
)
"""
RASA_EVENTS_INDEX = "CREATE INDEX ix_events_sender_id ON events (sender_id)"

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PEOPLE = [("acme", "alice"), ("acme", "bob"), ("globex", "alice")]


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def create_rasa_events_table(engine: sa.Engine) -> None:
    id_type = "SERIAL" if engine.dialect.name == "postgresql" else "INTEGER"
    with engine.begin() as conn:
        conn.execute(sa.text(RASA_EVENTS_DDL.format(id_type=id_type)))
        conn.execute(sa.text(RASA_EVENTS_INDEX))


@dataclass
class Dbs:
    stores_url: str
    tracker_url: str

    @property
    def stores(self) -> sa.Engine:
        return get_engine(self.stores_url)

    @property
    def tracker(self) -> sa.Engine:
        return get_engine(self.tracker_url)


@pytest.fixture(params=["sqlite", "postgres"])
def dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Dbs:
    """Our stores migrated to head, and a separate tracker-store database with Rasa's ``events`` table."""
    if request.param == "sqlite":
        found = Dbs(request.getfixturevalue("sqlite_url"), f"sqlite:///{tmp_path / 'tracker.db'}")
    else:
        found = Dbs(request.getfixturevalue("postgres_url"), request.getfixturevalue("postgres_tracker_url"))
    upgrade(found.stores_url)
    create_rasa_events_table(found.tracker)
    return found


def add_events(tracker: sa.Engine, sender: str, times: list[datetime]) -> None:
    rows = []
    for i, at in enumerate(times):
        kind = ("action", "session_started", "user")[i % 3]
        data = {
            "event": kind,
            "timestamp": at.timestamp(),
            "text": f"hello from {sender}" if kind == "user" else None,
        }
        rows.append(
            {
                "sender_id": sender,
                "type_name": kind,
                "timestamp": at.timestamp(),
                "intent_name": "greet" if kind == "user" else None,
                "action_name": "action_session_start" if kind == "action" else None,
                "data": json.dumps(data),
            }
        )
    with tracker.begin() as conn:
        conn.execute(sa.insert(tracker_events), rows)


def action_run(tenant: str, user: str, conv: str, at: datetime) -> dict:
    """An ``action_runs`` row (migration 0005)."""
    return {
        "tenant_id": tenant, "user_id": user, "conversation_id": conv, "action": "action_answer_knowledge",
        "handler": "knowledge", "attempts": [[0, "ok"]], "sources": [], "tools": [], "outcome": "ok",
        "stages": {"total": 12.0}, "created_at": at,
    }  # fmt: skip


def turn_record(tenant: str, user: str, conv: str, turn: int, at: datetime) -> dict:
    """A ``turn_records`` row (migration 0005)."""
    return {
        "tenant_id": tenant, "user_id": user, "conversation_id": conv, "session_index": 1,
        "turn_index": turn, "started_at": at, "ended_at": at, "entities": [{"entity": "order_id", "value": "x"}],
        "handler": "knowledge", "actions": [], "sources": [], "tools": [], "llm_call_ids": [], "stages": {},
        "outcome": "ok", "last_event_id": turn,
    }  # fmt: skip


def seed_person(dbs: Dbs, tenant: str, user: str) -> None:
    """One user's footprint in every store: 3 tracker events, a ticket, 3 jobs (done webhook, pending refund,
    pending webhook), 2 notifications, a cache entry, 2 LLM calls, an action run, a turn record."""
    conv = f"{tenant}:{user}"
    add_events(dbs.tracker, conv, [ago(1), ago(1), ago(1)])
    with dbs.stores.begin() as conn:
        conn.execute(
            sa.insert(tickets).values(
                tenant_id=tenant,
                user_id=user,
                conversation_id=conv,
                subject="help",
                status="open",
                transcript=f"user: I am {user}, my address is ...",
                created_at=ago(2),
            )
        )
        base = {
            "tenant_id": tenant,
            "user_id": user,
            "conversation_id": conv,
            "run_after": ago(2),
            "created_at": ago(2),
        }
        conn.execute(
            sa.insert(jobs),
            [
                {
                    **base,
                    "kind": "ticket_webhook",
                    "payload": {"c": conv},
                    "status": "done",
                    "finished_at": ago(2),
                },
                {
                    **base,
                    "kind": "refund",
                    "payload": {"order_id": "ORD-1"},
                    "status": "pending",
                    "finished_at": None,
                },
                {
                    **base,
                    "kind": "ticket_webhook",
                    "payload": {"c": conv},
                    "status": "pending",
                    "finished_at": None,
                },
            ],
        )
        conn.execute(
            sa.insert(notifications),
            [
                {
                    "tenant_id": tenant,
                    "user_id": user,
                    "conversation_id": conv,
                    "source_key": f"{user}:1",
                    "text": f"hi {user}",
                    "created_at": ago(2),
                    "delivered_at": ago(1),
                },
                {
                    "tenant_id": tenant,
                    "user_id": user,
                    "conversation_id": conv,
                    "source_key": f"{user}:2",
                    "text": f"refund for {user}",
                    "created_at": ago(1),
                    "delivered_at": None,
                },
            ],
        )
        conn.execute(
            sa.insert(answer_cache).values(
                tenant_id=tenant,
                user_id=user,
                kb_version="v1",
                key_hash=f"k-{user}",
                question=f"{user}'s question",
                answer="an answer",
                embedding=b"\x00" * 4,
                created_at=ago(1),
                expires_at=NOW + timedelta(days=1),
            )
        )
        conn.execute(
            sa.insert(llm_calls),
            [
                {
                    "tenant_id": tenant,
                    "user_id": user,
                    "conversation_id": conv,
                    "tier": 1,
                    "model": "small",
                    "prompt_tokens": 100,
                    "completion_tokens": 10,
                    "cost": Decimal("0.01"),
                    "outcome": "ok",
                    "error": None,
                    "created_at": ago(1),
                },
                {
                    "tenant_id": tenant,
                    "user_id": user,
                    "conversation_id": conv,
                    "tier": 2,
                    "model": "large",
                    "prompt_tokens": 200,
                    "completion_tokens": 20,
                    "cost": Decimal("0.02"),
                    "outcome": "invalid",
                    "error": f"output repeated {user}'s text",
                    "created_at": ago(1),
                },
            ],
        )
        conn.execute(sa.insert(action_runs).values(**action_run(tenant, user, conv, ago(1))))
        conn.execute(sa.insert(turn_records).values(**turn_record(tenant, user, conv, 1, ago(1))))


@pytest.fixture
def people(dbs: Dbs) -> Dbs:
    seed_crm(dbs.stores)
    for tenant, user in PEOPLE:
        seed_person(dbs, tenant, user)
    return dbs


def rows(engine: sa.Engine, table: sa.Table) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings()
        ]


OUR_TABLES = (
    tickets, jobs, notifications, answer_cache, llm_calls, action_runs, turn_records, customers, orders,
    retention_audit,
)  # fmt: skip


def snapshot(dbs: Dbs) -> dict[str, list[dict]]:
    found = {table.name: rows(dbs.stores, table) for table in OUR_TABLES}
    found["events"] = rows(dbs.tracker, tracker_events)
    return found


def others(snap: dict[str, list[dict]], tenant: str = "acme", user: str = "alice") -> dict[str, list[dict]]:
    """Every row that is not the given user's (nor anonymised), in every store."""

    def theirs(row: dict) -> bool:
        if "sender_id" in row:
            return row["sender_id"] == f"{tenant}:{user}"
        return (row.get("tenant_id"), row.get("user_id")) == (tenant, user) or row.get("user_id") == FORGOTTEN

    return {name: [r for r in found if not theirs(r)] for name, found in snap.items()}


def cost_by_tenant(engine: sa.Engine) -> dict[str, tuple[int, Decimal]]:
    query = sa.select(llm_calls.c.tenant_id, sa.func.count(), sa.func.sum(llm_calls.c.cost)).group_by(
        llm_calls.c.tenant_id
    )
    with engine.connect() as conn:
        return {t: (n, Decimal(str(c)).quantize(Decimal("0.00000001"))) for t, n, c in conn.execute(query)}


EXPECTED_FORGET = {
    "tracker_events": 3,
    "tickets": 1,
    "jobs": 2,
    "notifications": 2,
    "answer_cache": 1,
    "llm_calls_anonymised": 2,
    "action_runs": 1,
    "turn_records": 1,
}


# --- forget_user ------------------------------------------------------------------------------------------


def test_forget_user_removes_only_that_users_data(people: Dbs) -> None:
    before = snapshot(people)
    costs = cost_by_tenant(people.stores)

    report = forget_user("acme", "alice", stores=people.stores, tracker=people.tracker, now=NOW)

    assert report.counts == EXPECTED_FORGET
    after = snapshot(people)
    # the other users' and tenants' rows (globex's alice included) are exactly as they were
    assert others(after) == {**others(before), "retention_audit": others(after)["retention_audit"]}
    assert not [e for e in after["events"] if e["sender_id"] == "acme:alice"]
    for name in ("tickets", "notifications", "answer_cache"):
        assert not [r for r in after[name] if (r["tenant_id"], r["user_id"]) == ("acme", "alice")], name
    # the pending refund (money owed to the user) is kept and reported
    assert [
        (r["kind"], r["status"])
        for r in after["jobs"]
        if r["user_id"] == "alice" and r["tenant_id"] == "acme"
    ] == [("refund", "pending")]
    assert "1 pending refund" in report.notes[0]
    # LLM usage: anonymised, so the tenant's cost and call counts are unchanged
    assert cost_by_tenant(people.stores) == costs
    anonymised = [r for r in after["llm_calls"] if r["user_id"] == FORGOTTEN]
    assert len(anonymised) == 2
    assert {(r["tenant_id"], r["conversation_id"], r["error"]) for r in anonymised} == {("acme", "", None)}
    assert not any("alice" in json.dumps(r, default=str) for r in anonymised)
    # the CRM stand-in is the company's, not ours to erase
    assert after["crm_customers"] == before["crm_customers"] and after["crm_orders"] == before["crm_orders"]


def test_dry_run_changes_nothing_and_counts_what_a_run_does(people: Dbs) -> None:
    before = snapshot(people)
    dry = forget_user("acme", "alice", stores=people.stores, tracker=people.tracker, dry_run=True, now=NOW)
    assert snapshot(people) == before  # no audit row either
    assert dry.dry_run and dry.counts == EXPECTED_FORGET

    real = forget_user("acme", "alice", stores=people.stores, tracker=people.tracker, now=NOW)
    assert real.counts == dry.counts


def test_forget_is_idempotent_and_pending_jobs_go_when_asked(people: Dbs) -> None:
    forget_user("acme", "alice", stores=people.stores, tracker=people.tracker, now=NOW)
    again = forget_user("acme", "alice", stores=people.stores, tracker=people.tracker, now=NOW)
    assert again.counts == dict.fromkeys(EXPECTED_FORGET, 0)

    last = forget_user(
        "acme", "alice", stores=people.stores, tracker=people.tracker, include_pending_jobs=True
    )
    assert last.counts["jobs"] == 1 and not last.notes
    assert not [r for r in rows(people.stores, jobs) if (r["tenant_id"], r["user_id"]) == ("acme", "alice")]


def test_default_tenant_also_forgets_a_conversation_without_tenant_prefix(people: Dbs) -> None:
    """A sender without ``<tenant>:`` (a channel without tenancy) belongs to the default tenant
    (app/actions/context.py), so it goes with that tenant's user, and only then."""
    add_events(people.tracker, "alice", [ago(1), ago(1)])
    other = forget_user(
        "globex", "alice", stores=people.stores, tracker=people.tracker, default_tenant="acme"
    )
    assert other.counts["tracker_events"] == 3
    report = forget_user("acme", "alice", stores=people.stores, tracker=people.tracker, default_tenant="acme")
    assert report.counts["tracker_events"] == 5
    assert {e["sender_id"] for e in rows(people.tracker, tracker_events)} == {"acme:bob"}


def test_a_bare_sender_with_a_colon_is_never_the_default_tenants_user(people: Dbs) -> None:
    """The bare id ``globex:alice`` is globex's alice (app/identity.py): forgetting the default tenant's user
    ``globex:alice`` must not touch it."""
    before = snapshot(people)
    report = forget_user(
        "acme", "globex:alice", stores=people.stores, tracker=people.tracker, default_tenant="acme"
    )
    assert report.counts["tracker_events"] == 0
    assert {k: v for k, v in snapshot(people).items() if k != "retention_audit"} == {
        k: v for k, v in before.items() if k != "retention_audit"
    }


def test_every_table_of_ours_is_erased_by_a_handler_or_deliberately_left_alone() -> None:
    """A new table with user data must join ``USER_DATA_TABLES`` (and get a handler) or be named here."""
    # the audit trail; the CRM stand-in; API keys of server-to-server clients (no end-user data: revoked)
    left_alone = {"retention_audit", "crm_customers", "crm_orders", "api_keys"}
    assert set(schema.metadata.tables) == set(retention.USER_DATA_TABLES) | left_alone


def test_a_store_without_its_retention_handler_is_refused(
    people: Dbs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every user-data table has a registered handler, or nothing runs (an erasure never skips a store)."""
    assert [s.table for s in retention.registered_stores()] == list(retention.USER_DATA_TABLES)
    before = snapshot(people)
    monkeypatch.delitem(retention._STORES, "answer_cache")
    with pytest.raises(RetentionError, match="no retention handler registered for answer_cache"):
        forget_user("acme", "alice", stores=people.stores, tracker=people.tracker)
    with pytest.raises(RetentionError, match="answer_cache"):
        purge(RetentionPolicy(), stores=people.stores, tracker=people.tracker)
    assert snapshot(people) == before


def test_a_failure_changes_no_database(people: Dbs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both transactions roll back when anything fails before the end (here: writing the audit row)."""
    before = snapshot(people)

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(retention, "_audit", broken)
    with pytest.raises(RuntimeError):
        forget_user("acme", "alice", stores=people.stores, tracker=people.tracker)
    assert snapshot(people) == before


def test_unusable_stores_are_refused_before_anything_changes(people: Dbs, tmp_path: Path) -> None:
    before = snapshot(people)
    not_a_tracker = get_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(RetentionError, match="has no table events"):
        forget_user("acme", "alice", stores=people.stores, tracker=not_a_tracker)
    with pytest.raises(RetentionError, match="python -m app.data migrate"):
        forget_user("acme", "alice", stores=people.tracker, tracker=None)
    for tenant, user in [
        ("ACME", "alice"),
        ("acme:x", "alice"),
        ("", "alice"),
        ("acme", ""),
        ("acme", " "),
        ("acme", "a\nb"),
        ("acme", "x" * 129),
        ("acme", FORGOTTEN),
    ]:
        with pytest.raises(BadInput):
            forget_user(tenant, user, stores=people.stores, tracker=people.tracker)
    assert snapshot(people) == before


def test_tracker_and_stores_in_one_database(sqlite_url: str) -> None:
    """Same URL for both: one connection, one transaction (two would lock a SQLite file against each other)."""
    upgrade(sqlite_url)
    engine = get_engine(sqlite_url)
    create_rasa_events_table(engine)
    dbs = Dbs(sqlite_url, sqlite_url)
    for tenant, user in PEOPLE:
        seed_person(dbs, tenant, user)
    report = forget_user("acme", "alice", stores=engine, tracker=engine, now=NOW)
    assert report.counts == EXPECTED_FORGET
    assert {e["sender_id"] for e in rows(engine, tracker_events)} == {"acme:bob", "globex:alice"}


# --- the audit trail --------------------------------------------------------------------------------------


def test_audit_rows_record_runs_with_a_hashed_user_id(people: Dbs) -> None:
    forget_user("acme", "alice", stores=people.stores, tracker=people.tracker, dry_run=True, now=NOW)
    assert rows(people.stores, retention_audit) == []  # dry runs are not recorded

    report = forget_user("acme", "alice", stores=people.stores, tracker=people.tracker, now=NOW)
    purged = purge(RetentionPolicy(), stores=people.stores, tracker=people.tracker, now=NOW)

    first, second = rows(people.stores, retention_audit)
    assert (first["tenant_id"], first["user_id"], first["action"]) == (
        "acme",
        user_hash("alice"),
        "forget_user",
    )
    assert first["user_id"] == "sha256:" + hashlib.sha256(b"alice").hexdigest()
    assert first["counts"] == report.counts
    created = first["created_at"]
    assert (created if created.tzinfo else created.replace(tzinfo=UTC)) == NOW
    assert "alice" not in json.dumps(first, default=str).replace(user_hash("alice"), "")
    assert (second["tenant_id"], second["user_id"], second["action"], second["counts"]) == (
        "*",
        "*",
        "purge",
        purged.counts,
    )


def test_migration_0004_adds_and_removes_only_the_audit_table(sqlite_url: str) -> None:
    upgrade(sqlite_url, "0003")
    engine = get_engine(sqlite_url)
    seed_crm(engine)
    before = set(sa.inspect(engine).get_table_names())
    upgrade(sqlite_url, "0004")  # not head: later migrations add tables of their own
    assert set(sa.inspect(engine).get_table_names()) == before | {"retention_audit"}
    command.downgrade(alembic_config(sqlite_url), "0003")
    assert set(sa.inspect(engine).get_table_names()) == before
    assert rows(engine, customers)  # kept


# --- purge ------------------------------------------------------------------------------------------------


def seed_ages(dbs: Dbs) -> None:
    """Rows on either side of each default limit (params.yaml `retention`), relative to ``NOW``."""
    add_events(dbs.tracker, "acme:idle", [ago(100), ago(99), ago(95)])  # idle > 90 days: goes
    add_events(
        dbs.tracker, "acme:active", [ago(200), ago(150), ago(1)]
    )  # old start, recent turn: stays whole
    add_events(dbs.tracker, "globex:edge", [ago(89), ago(89), ago(89)])  # inside the limit: stays
    ticket = {"user_id": "u", "conversation_id": "c", "subject": "s", "transcript": "t"}
    job = {"user_id": "u", "kind": "refund", "payload": {}, "run_after": ago(500), "created_at": ago(500)}
    note = {"user_id": "u", "text": "n"}
    cache = {
        "user_id": "u",
        "kb_version": "v1",
        "question": "q",
        "answer": "a",
        "embedding": b"\x00",
        "created_at": ago(2),
    }
    call = {
        "user_id": "u",
        "conversation_id": "acme:u",
        "tier": 1,
        "model": "m",
        "cost": Decimal("0.5"),
        "outcome": "ok",
    }
    with dbs.stores.begin() as conn:
        conn.execute(
            sa.insert(tickets),
            [
                {**ticket, "tenant_id": "acme", "status": "closed", "created_at": ago(400)},  # goes
                {**ticket, "tenant_id": "globex", "status": "resolved", "created_at": ago(366)},  # goes
                {**ticket, "tenant_id": "acme", "status": "open", "created_at": ago(400)},  # open: stays
                {**ticket, "tenant_id": "acme", "status": "closed", "created_at": ago(300)},  # young: stays
            ],
        )
        conn.execute(
            sa.insert(jobs),
            [
                {**job, "tenant_id": "acme", "status": "done", "finished_at": ago(31)},  # goes
                {**job, "tenant_id": "acme", "status": "done", "finished_at": ago(29)},  # stays
                {**job, "tenant_id": "acme", "status": "pending", "finished_at": None},  # pending: stays
            ],
        )
        conn.execute(
            sa.insert(notifications),
            [
                {
                    **note,
                    "tenant_id": "acme",
                    "source_key": "1",
                    "created_at": ago(60),
                    "delivered_at": ago(31),
                },  # goes
                {
                    **note,
                    "tenant_id": "acme",
                    "source_key": "2",
                    "created_at": ago(60),
                    "delivered_at": ago(29),
                },  # stays
                {
                    **note,
                    "tenant_id": "acme",
                    "source_key": "3",
                    "created_at": ago(181),
                    "delivered_at": None,
                },  # goes
                {
                    **note,
                    "tenant_id": "acme",
                    "source_key": "4",
                    "created_at": ago(179),
                    "delivered_at": None,
                },  # stays
            ],
        )
        conn.execute(
            sa.insert(answer_cache),
            [
                {
                    **cache,
                    "tenant_id": "acme",
                    "key_hash": "1",
                    "expires_at": NOW - timedelta(seconds=1),
                },  # goes
                {**cache, "tenant_id": "acme", "key_hash": "2", "expires_at": NOW},  # goes
                {
                    **cache,
                    "tenant_id": "globex",
                    "key_hash": "3",
                    "expires_at": NOW + timedelta(hours=1),
                },  # stays
            ],
        )
        conn.execute(
            sa.insert(llm_calls),
            [
                {**call, "tenant_id": "acme", "created_at": ago(400)},  # deleted
                {**call, "tenant_id": "acme", "created_at": ago(100)},  # anonymised
                {
                    **call,
                    "tenant_id": "acme",
                    "created_at": ago(100),
                    "user_id": FORGOTTEN,
                },  # already: not counted
                {**call, "tenant_id": "acme", "created_at": ago(10)},  # untouched
            ],
        )
        conn.execute(
            sa.insert(action_runs),
            [action_run("acme", "u", "acme:idle", ago(95)), action_run("acme", "u", "acme:active", ago(1))],
        )  # the first goes (older than conversation_days)
        conn.execute(
            sa.insert(turn_records),
            [
                turn_record("acme", "u", "acme:idle", 1, ago(95)),  # goes
                turn_record("acme", "u", "acme:active", 1, ago(89)),  # stays
            ],
        )


EXPECTED_PURGE = {
    "tracker_events": 3,
    "tickets": 2,
    "jobs": 1,
    "notifications": 2,
    "answer_cache": 2,
    "llm_calls_deleted": 1,
    "llm_calls_anonymised": 1,
    "action_runs": 1,
    "turn_records": 1,
}


def test_purge_by_age_with_a_fixed_now(dbs: Dbs) -> None:
    seed_ages(dbs)
    before = snapshot(dbs)
    dry = purge(RetentionPolicy(), stores=dbs.stores, tracker=dbs.tracker, now=NOW, dry_run=True)
    assert dry.counts == EXPECTED_PURGE
    assert snapshot(dbs) == before

    report = purge(RetentionPolicy(), stores=dbs.stores, tracker=dbs.tracker, now=NOW)
    assert report.counts == EXPECTED_PURGE
    after = snapshot(dbs)
    assert sorted({e["sender_id"] for e in after["events"]}) == ["acme:active", "globex:edge"]
    assert len([e for e in after["events"] if e["sender_id"] == "acme:active"]) == 3
    assert sorted((t["status"], t["tenant_id"]) for t in after["tickets"]) == [
        ("closed", "acme"),
        ("open", "acme"),
    ]
    assert sorted(j["status"] for j in after["jobs"]) == ["done", "pending"]
    assert sorted(n["source_key"] for n in after["notifications"]) == ["2", "4"]
    assert [c["key_hash"] for c in after["answer_cache"]] == ["3"]
    assert sorted(c["user_id"] for c in after["llm_calls"]) == [FORGOTTEN, FORGOTTEN, "u"]

    again = purge(RetentionPolicy(), stores=dbs.stores, tracker=dbs.tracker, now=NOW)
    assert again.total == 0


def test_zero_days_keeps_a_store_forever(dbs: Dbs) -> None:
    seed_ages(dbs)
    policy = RetentionPolicy(
        conversation_days=0,
        ticket_days=0,
        notification_days=0,
        undelivered_notification_days=0,
        job_days=0,
        llm_call_anonymise_days=0,
        llm_call_days=0,
        expired_cache=False,
    )
    before = snapshot(dbs)
    report = purge(policy, stores=dbs.stores, tracker=dbs.tracker, now=NOW)
    assert report.counts == {}
    after = snapshot(dbs)
    assert [a["counts"] for a in after.pop("retention_audit")] == [{}]
    before.pop("retention_audit")
    assert after == before


def test_params_yaml_retention_section_is_the_documented_defaults() -> None:
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["retention"]
    assert set(section) == set(RetentionPolicy.model_fields)
    assert RetentionPolicy.from_params(section) == RetentionPolicy()
    with pytest.raises(BadInput, match="retention.ticket_days"):
        RetentionPolicy.from_params({"ticket_days": -1})
    with pytest.raises(BadInput, match="retention.keep_forever"):
        RetentionPolicy.from_params({"keep_forever": True})


# --- Rasa's schema ----------------------------------------------------------------------------------------


def test_events_ddl_is_what_rasa_creates(dbs: Dbs, tmp_path: Path) -> None:
    """The tracker table the tests use (and app.data.tracker.events, which retention and analytics query) is
    the one Rasa 3.6 creates."""
    if not RASA_PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Rasa environment is required under CI: {RASA_PYTHON}")
        pytest.skip(f"no Rasa environment at {RASA_PYTHON}")
    url = sa.engine.make_url(dbs.tracker_url)
    rasa_db = url.set(database=f"{url.database}_rasa") if url.get_backend_name() == "postgresql" else None
    if rasa_db is None:
        kwargs = {"dialect": "sqlite", "db": str(tmp_path / "rasa.db")}
        rasa_url = f"sqlite:///{tmp_path / 'rasa.db'}"
    else:
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{rasa_db.database}"'))
        kwargs = {
            "dialect": "postgresql",
            "host": url.host,
            "port": url.port or 5432,
            "username": url.username,
            "db": rasa_db.database,
        }
        rasa_url = rasa_db.render_as_string(hide_password=False)
    try:
        script = (
            "import sys, json; from rasa.core.tracker_store import SQLTrackerStore; "
            "SQLTrackerStore(**json.loads(sys.argv[1])).engine.dispose()"
        )
        done = subprocess.run(
            [str(RASA_PYTHON), "-c", script, json.dumps(kwargs)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1"},
        )
        assert done.returncode == 0, done.stderr[-2000:]

        def described(engine: sa.Engine) -> tuple:
            inspector = sa.inspect(engine)
            columns = [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("events")]
            indexes = sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes("events"))
            return columns, indexes, inspector.get_pk_constraint("events")["constrained_columns"]

        rasa_engine = sa.create_engine(rasa_url)
        try:
            assert described(rasa_engine) == described(dbs.tracker)
        finally:
            rasa_engine.dispose()
        # and what app.data.tracker.events declares: same names, Python types and nullability
        reflected = sa.inspect(dbs.tracker).get_columns("events")
        assert [(c["name"], c["type"].python_type, c["nullable"]) for c in reflected] == [
            (c.name, c.type.python_type, c.nullable) for c in tracker_events.columns
        ]
    finally:
        if rasa_db is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{rasa_db.database}" WITH (FORCE)'))
            admin.dispose()


# --- Redis answer cache -----------------------------------------------------------------------------------


def redis_entries(redis_url: str, prefix: str) -> tuple[object, object]:
    import redis

    from app.cache.backends import CacheEntry, RedisCacheBackend

    backend = RedisCacheBackend(redis.Redis.from_url(redis_url), prefix)
    expires = datetime.now(UTC).timestamp() + 600
    for tenant, user, key in [
        ("acme", "alice", "k1"),
        ("acme", "alice", "k2"),
        ("acme", "bob", "k3"),
        ("globex", "alice", "k1"),
    ]:
        for kb in ("v1", "v2"):
            backend.put(
                CacheEntry(
                    tenant,
                    kb,
                    key,
                    f"q {key}",
                    "a",
                    np.ones(4, dtype=np.float32),
                    user,
                    created_at=expires - 600,
                    expires_at=expires,
                )
            )
    return backend, CacheEntry


def test_forget_user_deletes_their_redis_cache_entries(dbs: Dbs, redis_url: str, redis_prefix: str) -> None:
    backend, _ = redis_entries(redis_url, redis_prefix)
    now = datetime.now(UTC).timestamp()
    dry = forget_user(
        "acme", "alice", stores=dbs.stores, tracker=dbs.tracker, redis_cache=backend, dry_run=True
    )
    assert dry.counts["redis_cache"] == 4
    assert len(backend.entries("acme", "v1", now, 10)) == 3

    report = forget_user("acme", "alice", stores=dbs.stores, tracker=dbs.tracker, redis_cache=backend)
    assert report.counts["redis_cache"] == 4
    for kb in ("v1", "v2"):
        assert [(e.key, e.user_id) for e in backend.entries("acme", kb, now, 10)] == [("k3", "bob")]
        assert backend.redis.zrange(f"{redis_prefix}:acme:{kb}:idx", 0, -1) == [b"k3"]  # index follows
        assert [e.user_id for e in backend.entries("globex", kb, now, 10)] == ["alice"]
    assert rows(dbs.stores, retention_audit)[0]["counts"]["redis_cache"] == 4


def test_purge_trims_expired_members_from_the_redis_indexes(
    dbs: Dbs, redis_url: str, redis_prefix: str
) -> None:
    backend, _ = redis_entries(redis_url, redis_prefix)
    later = datetime.now(UTC) + timedelta(seconds=601)  # every entry has expired by then
    dry = purge(
        RetentionPolicy(),
        stores=dbs.stores,
        tracker=dbs.tracker,
        redis_cache=backend,
        now=later,
        dry_run=True,
    )
    assert dry.counts["redis_cache_index"] == 8
    assert backend.redis.zcard(f"{redis_prefix}:acme:v1:idx") == 3
    report = purge(RetentionPolicy(), stores=dbs.stores, tracker=dbs.tracker, redis_cache=backend, now=later)
    assert report.counts["redis_cache_index"] == 8
    assert backend.redis.zcard(f"{redis_prefix}:acme:v1:idx") == 0


# --- the command line -------------------------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def table_counts(out: str) -> dict[str, int]:
    """The printed table's rows: store -> count."""
    cells = [line.split("│")[1:3] for line in out.splitlines() if line.count("│") == 3]
    return {store.strip(): int(count) for store, count in cells}


def tracker_arg(dbs: Dbs) -> str:
    """SQLite tracker stores as a file path (how settings.tracker_db and endpoints.yml name them)."""
    url = sa.engine.make_url(dbs.tracker_url)
    return url.database if url.get_backend_name() == "sqlite" else dbs.tracker_url


def test_cli_forget_user_prints_counts_per_store(people: Dbs, capsys: pytest.CaptureFixture[str]) -> None:
    base = [
        "forget-user",
        "--tenant",
        "acme",
        "--user",
        "alice",
        "--url",
        people.stores_url,
        "--tracker-url",
        tracker_arg(people),
        "--params",
        str(ROOT / "params.yaml"),
    ]
    before = snapshot(people)
    code, out, err = cli(capsys, *base, "--dry-run")
    assert (code, err) == (0, "")
    assert "dry run: nothing changed" in out and "audit row" not in out
    assert snapshot(people) == before

    code, out, err = cli(capsys, *base)
    assert (code, err) == (0, "")
    assert table_counts(out) == {**EXPECTED_FORGET, "total": sum(EXPECTED_FORGET.values())}
    assert "pending refund job(s) kept" in out and "audit row written" in out
    assert not [e for e in rows(people.tracker, tracker_events) if e["sender_id"] == "acme:alice"]


def test_cli_purge_reads_the_policy_from_params(
    dbs: Dbs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_events(dbs.tracker, "acme:old", [datetime.now(UTC) - timedelta(days=12)] * 3)
    add_events(dbs.tracker, "acme:new", [datetime.now(UTC) - timedelta(days=8)] * 3)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"cache": {"backend": "sql"}, "retention": {"conversation_days": 10}}))
    code, out, err = cli(
        capsys, "purge", "--params", str(params), "--url", dbs.stores_url, "--tracker-url", tracker_arg(dbs)
    )
    assert (code, err) == (0, "")
    assert table_counts(out) == {
        "tracker_events": 3,
        "tickets": 0,
        "jobs": 0,
        "notifications": 0,
        "answer_cache": 0,
        "llm_calls_deleted": 0,
        "llm_calls_anonymised": 0,
        "action_runs": 0,
        "turn_records": 0,
        "total": 3,
    }
    assert {e["sender_id"] for e in rows(dbs.tracker, tracker_events)} == {"acme:new"}


def test_cli_forgets_redis_cache_entries_when_params_configure_redis(
    dbs: Dbs, redis_url: str, redis_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend, _ = redis_entries(redis_url, redis_prefix)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"cache": {"backend": "redis", "redis_url": redis_url, "key_prefix": redis_prefix}})
    )
    code, out, err = cli(
        capsys,
        "forget-user",
        "--tenant",
        "acme",
        "--user",
        "alice",
        "--params",
        str(params),
        "--url",
        dbs.stores_url,
        "--tracker-url",
        tracker_arg(dbs),
    )
    assert (code, err) == (0, "")
    assert table_counts(out)["redis_cache"] == 4
    assert [e.user_id for e in backend.entries("acme", "v1", datetime.now(UTC).timestamp(), 10)] == ["bob"]


def test_cli_tracker_urls() -> None:
    from app.data.db import store_url as _tracker_url

    assert _tracker_url("/var/lib/tracker.db") == "sqlite:////var/lib/tracker.db"
    assert _tracker_url("postgresql://bot@db:5432/tracker") == "postgresql+psycopg://bot@db:5432/tracker"
    assert _tracker_url("postgres://bot@db/tracker") == "postgresql+psycopg://bot@db/tracker"
    assert _tracker_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["forget-user", "--tenant", "Acme Corp", "--user", "alice"], 2, "invalid tenant id"),
        (["forget-user", "--tenant", "acme", "--user", ""], 2, "invalid user id"),
        (["forget-user", "--tenant", "acme"], 2, "required: --user"),
        (["purge", "--dry-run", "--bogus"], 2, "unrecognized arguments"),
        (["purge", "--params", "{bad_params}"], 2, "retention.job_days"),
        (["purge", "--params", "{not_yaml}"], 2, "not valid YAML"),
        (["purge", "--params", "{missing}"], 1, "no params file"),
        (["purge", "--url", "{missing_url}"], 1, "no stores database at"),
        (["purge", "--url", "nonsense://"], 2, "URL"),
        (
            ["purge", "--url", "postgresql+psycopg://postgres@127.0.0.1:1/none"],
            1,
            "cannot reach the stores database",
        ),
        (["purge", "--url", "{unmigrated}"], 1, "no table"),
        (["purge", "--tracker-url", "{unmigrated}"], 1, "has no table events"),
        (["purge", "--tracker-url", "{missing}"], 1, "no Rasa tracker store at"),
        (["purge", "--params", "{redis_down}"], 1, "cannot reach the Redis cache"),
    ],
)
def test_cli_bad_input_exits_nonzero_with_one_line(
    dbs: Dbs, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    (tmp_path / "bad.yaml").write_text("retention: {job_days: soon}\n")
    (tmp_path / "broken.yaml").write_text("retention: [unclosed\n")
    (tmp_path / "redis.yaml").write_text("cache: {backend: redis, redis_url: 'redis://127.0.0.1:1/0'}\n")
    unmigrated = tmp_path / "unmigrated.db"
    sa.create_engine(f"sqlite:///{unmigrated}").connect().close()
    fill = {
        "{bad_params}": str(tmp_path / "bad.yaml"),
        "{not_yaml}": str(tmp_path / "broken.yaml"),
        "{missing}": str(tmp_path / "missing.db"),
        "{missing_url}": f"sqlite:///{tmp_path / 'missing.db'}",
        "{redis_down}": str(tmp_path / "redis.yaml"),
        "{unmigrated}": f"sqlite:///{unmigrated}",
    }
    argv = [fill.get(a, a) for a in args]
    defaults = {
        "--url": dbs.stores_url,
        "--tracker-url": tracker_arg(dbs),
        "--params": str(ROOT / "params.yaml"),
    }
    argv += [x for flag, value in defaults.items() if flag not in argv for x in (flag, value)]
    before = snapshot(dbs)

    got, out, err = cli(capsys, *argv)

    assert got == code, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and out == ""
    assert snapshot(dbs) == before


def test_cli_init_and_migrate_still_work(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "migrate", "--url", sqlite_url)[0] == 0
    code, out, _ = cli(capsys, "init", "--url", sqlite_url)
    assert code == 0 and "demo rows added" in out
    assert "retention_audit" in sa.inspect(get_engine(sqlite_url)).get_table_names()
