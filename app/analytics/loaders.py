"""Thin loaders: one tenant's rows from Rasa's tracker store and our stores, as DataFrames for
:func:`app.analytics.kpis.compute`. Read-only: nothing is created, not even an empty SQLite file.

The tracker store is SQLite by default (``Settings.tracker_db``, a path) and PostgreSQL in scale-out (a
URL), so the ``events`` table is read through SQLAlchemy with the schema Rasa 3.6 creates, declared once in
:mod:`app.data.tracker` (a metadata of its own that no migration ever sees).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from app.analytics.frames import EVENT_COLUMNS, LLM_CALL_COLUMNS, TICKET_COLUMNS, empty_frame
from app.analytics.kpis import Analytics, compute, day_bounds
from app.data.db import get_engine
from app.data.schema import llm_calls, tickets
from app.data.tracker import events, tenant_senders
from app.identity import parse_conversation_id

DAY_S = 86_400.0
# A conversation that starts in the range may run past its end (and its tickets and LLM calls with it):
# rows up to this long after the range are read too.
SPILL_S = 2 * DAY_S


def _engine(url: str) -> sa.Engine | None:
    """The engine for ``url``, or None for a SQLite file that does not exist (nothing stored yet)."""
    path = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and path != ":memory:" and not Path(path).is_file():
        return None
    return get_engine(url)


def _has_table(engine: sa.Engine, name: str) -> bool:
    with engine.connect() as conn:
        return sa.inspect(conn).has_table(name)


def load_events(url: str, tenant: str, low: float, high: float, default_tenant: str) -> pd.DataFrame:
    """All events of ``tenant``'s senders that have an event in [``low``, ``high``) (epoch s), up to
    ``high`` + :data:`SPILL_S`: their whole history before, so sessions are numbered as Rasa numbers them."""
    engine = _engine(url)
    if engine is None or not _has_table(engine, "events"):
        return empty_frame(EVENT_COLUMNS)
    senders = (
        sa.select(events.c.sender_id)
        .where(tenant_senders(tenant, default_tenant), events.c.timestamp >= low, events.c.timestamp < high)
        .distinct()
    )
    query = (
        sa.select(*[events.c[c] for c in EVENT_COLUMNS])
        .where(events.c.sender_id.in_(senders), events.c.timestamp < high + SPILL_S)
        .order_by(events.c.id)
    )
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=list(EVENT_COLUMNS))


def _since(low: float) -> datetime:
    return datetime.fromtimestamp(low - SPILL_S, tz=UTC)


def _until(high: float) -> datetime:
    return datetime.fromtimestamp(high + SPILL_S, tz=UTC)


def _load_window(
    url: str, table: sa.Table, columns: Sequence[str], tenant: str, low: float, high: float
) -> pd.DataFrame:
    """``tenant``'s rows of ``table`` created around [``low``, ``high``); empty when the store lacks the table."""
    engine = _engine(url)
    names = ["tenant_id", *columns]
    if engine is None or not _has_table(engine, table.name):
        return empty_frame(tuple(names))
    query = sa.select(*[table.c[c] for c in names]).where(
        table.c.tenant_id == tenant,
        table.c.created_at >= _since(low),
        table.c.created_at < _until(high),
    )
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=names)


def load_tickets(url: str, tenant: str, low: float, high: float) -> pd.DataFrame:
    """``tenant``'s tickets created around [``low``, ``high``); empty when the store has no tickets table."""
    return _load_window(url, tickets, TICKET_COLUMNS, tenant, low, high)


def load_llm_calls(url: str, tenant: str, low: float, high: float) -> pd.DataFrame:
    """``tenant``'s LLM calls made around [``low``, ``high``); empty when the store has no such table."""
    return _load_window(url, llm_calls, LLM_CALL_COLUMNS, tenant, low, high)


def list_tenants(tracker: str, store: str, default_tenant: str) -> list[str]:
    """Tenants seen in the tracker (sender id prefixes) and in our stores, the default tenant first."""
    found: set[str] = set()
    engine = _engine(tracker)
    if engine is not None and _has_table(engine, "events"):
        with engine.connect() as conn:
            for sender in conn.execute(sa.select(events.c.sender_id).distinct()).scalars():
                found.add(parse_conversation_id(sender, default_tenant)[0])
    engine = _engine(store)
    if engine is not None:
        for table in (tickets, llm_calls):
            if _has_table(engine, table.name):
                with engine.connect() as conn:
                    found.update(conn.execute(sa.select(table.c.tenant_id).distinct()).scalars())
    found.discard(default_tenant)
    return [default_tenant, *sorted(found)]


def load_analytics(
    tracker: str, store: str, tenant: str, start: date, end: date, default_tenant: str
) -> Analytics:
    """Load ``tenant``'s rows for UTC days ``start``..``end`` and compute every metric.

    ``tracker`` is the tracker store's URL (see :func:`app.data.db.store_url`), ``store`` our stores' URL.
    """
    low, high = day_bounds(start, end)
    return compute(
        load_events(tracker, tenant, low, high, default_tenant),
        load_tickets(store, tenant, low, high),
        load_llm_calls(store, tenant, low, high),
        tenant=tenant,
        start=start,
        end=end,
        default_tenant=default_tenant,
    )
