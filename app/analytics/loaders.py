"""Thin loaders: one tenant's turn records of a date range, and the LLM calls they name, from our stores, for
:func:`app.analytics.kpis.compute`. Read-only: nothing is created, not even an empty SQLite file.

The records are kept up to date by the turn recorder (``python -m app.analytics.recorder``, started by
``python -m app.stack``); what it has not synced yet is not in the figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.analytics.kpis import CALL_COLUMNS, Analytics, compute, day_bounds
from app.analytics.turn_records import SYNC_MARGIN_S, load_records
from app.data.db import get_engine
from app.data.schema import llm_calls, turn_records

#: Ids per ``IN (...)`` (SQLite's oldest limit on bound parameters is 999).
CHUNK = 500


def _engine(url: str, table: sa.Table) -> sa.Engine | None:
    """The engine for ``url`` if it has ``table``; None for a SQLite file that does not exist (nothing stored
    yet, and reading must not create it) or a store not migrated that far."""
    path = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and path != ":memory:" and not Path(path).is_file():
        return None
    engine = get_engine(url)
    with engine.connect() as conn:
        return engine if sa.inspect(conn).has_table(table.name) else None


def load_turns(url: str, tenant: str, low: datetime, high: datetime) -> list[dict[str, Any]]:
    """``tenant``'s records of the conversations (Rasa sessions) whose first turn started in [``low``,
    ``high``), all their turns."""
    if _engine(url, turn_records) is None:
        return []
    return load_records(url, tenant=tenant, sessions_started=(low, high))


def load_llm_calls(url: str, ids: Iterable[int]) -> list[dict[str, Any]]:
    """The ``llm_calls`` rows with these ids (those retention has not deleted)."""
    engine, wanted = _engine(url, llm_calls), sorted({int(i) for i in ids})
    if engine is None or not wanted:
        return []
    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for at in range(0, len(wanted), CHUNK):
            query = sa.select(*(llm_calls.c[c] for c in CALL_COLUMNS if c != "tokens")).where(
                llm_calls.c.id.in_(wanted[at : at + CHUNK])
            )
            rows.extend(dict(r) for r in conn.execute(query).mappings())
    return rows


def unattributed_llm_calls(url: str, tenant: str, low: datetime, high: datetime) -> int:
    """How many of ``tenant``'s LLM calls made in [``low``, ``high``) no turn record names (no user turn of a
    conversation: or not synced yet). The records that could name one started at most
    :data:`~app.analytics.turn_records.SYNC_MARGIN_S` (longer than any turn) before it."""
    calls, records = _engine(url, llm_calls), _engine(url, turn_records)
    if calls is None:
        return 0
    with calls.connect() as conn:
        made = set(
            conn.execute(
                sa.select(llm_calls.c.id).where(
                    llm_calls.c.tenant_id == tenant,
                    llm_calls.c.created_at >= low,
                    llm_calls.c.created_at < high,
                )
            ).scalars()
        )
    if not made or records is None:
        return len(made)
    with records.connect() as conn:
        named = conn.execute(
            sa.select(turn_records.c.llm_call_ids).where(
                turn_records.c.tenant_id == tenant,
                turn_records.c.started_at >= low - timedelta(seconds=SYNC_MARGIN_S),
                turn_records.c.started_at < high,
            )
        ).scalars()
        return len(made - {int(i) for ids in named for i in ids or []})


def list_tenants(url: str, default_tenant: str) -> list[str]:
    """Tenants with turn records, the default tenant first (listed even without any)."""
    found: set[str] = set()
    engine = _engine(url, turn_records)
    if engine is not None:
        with engine.connect() as conn:
            found.update(conn.execute(sa.select(turn_records.c.tenant_id).distinct()).scalars())
    found.discard(default_tenant)
    return [default_tenant, *sorted(found)]


def load_analytics(url: str, tenant: str, start: date, end: date) -> Analytics:
    """Load ``tenant``'s records of the conversations that started on UTC days ``start``..``end`` and the LLM
    calls they name from our stores at ``url``, and compute every figure."""
    low, high = day_bounds(start, end)
    records = load_turns(url, tenant, low, high)
    calls = load_llm_calls(url, (i for r in records for i in r.get("llm_call_ids") or []))
    return compute(
        records,
        calls,
        tenant=tenant,
        start=start,
        end=end,
        unattributed_calls=unattributed_llm_calls(url, tenant, low, high),
    )
