"""Table definitions of our stores. Every table carries ``tenant_id`` and ``user_id``.

The schema changes only through Alembic migrations (``app/data/migrations``); these definitions are what
the code queries against and what ``alembic revision --autogenerate`` compares with.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# CRM stand-in (the "backend" the bot looks orders up in; a later issue puts it behind an HTTP service).
customers = sa.Table(
    "crm_customers",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
)

orders = sa.Table(
    "crm_orders",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("order_id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(128), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("carrier", sa.String(64)),
    sa.Column("tracking_number", sa.String(64)),
    sa.Column("estimated_delivery", sa.Date),
    sa.Column("total_eur", sa.Numeric(10, 2), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Ticketing: handoffs to a human agent.
tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("conversation_id", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("transcript", sa.Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False, server_default="open"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_tickets_tenant_user", "tenant_id", "user_id"),
)
