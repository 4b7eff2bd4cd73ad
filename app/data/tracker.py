"""Rasa's SQL tracker store as our code reads it: the ``events`` table, and which rows are whose.

The tracker store is Rasa's database (SQLite at ``Settings.tracker_db``, or PostgreSQL in scale-out), not
ours: the table is declared here column for column as Rasa 3.6 creates it (``rasa/core/tracker_store.py``,
``SQLTrackerStore.SQLEvent``), in a metadata of its own, so it never reaches our migrations or autogenerate.
The turn recorder (app/analytics/turn_records.py) reads it; retention (app/data/retention.py) deletes
from it.

Each row's ``sender_id`` is the conversation id ``<tenant>:<user>`` (app/identity.py).
"""

from __future__ import annotations

import sqlalchemy as sa

from app.identity import conversation_ids_of

TRACKER_METADATA = sa.MetaData()
events = sa.Table(
    "events",
    TRACKER_METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("type_name", sa.String(255), nullable=False),
    sa.Column("timestamp", sa.Float),  # seconds since the epoch, as Rasa's events carry it
    sa.Column("intent_name", sa.String(255)),
    sa.Column("action_name", sa.String(255)),
    sa.Column("data", sa.Text),
)


def user_senders(tenant: str, user: str, default_tenant: str | None) -> sa.ColumnElement[bool]:
    """Sender ids of one user of ``tenant`` (:func:`app.identity.conversation_ids_of`)."""
    return events.c.sender_id.in_(conversation_ids_of(tenant, user, default_tenant))
