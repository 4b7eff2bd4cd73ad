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
    # True while a human agent has the conversation (the bot stays silent); cleared by the hand-back.
    sa.Column("handoff_active", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_tickets_tenant_user", "tenant_id", "user_id"),
)

# LLM calls: token usage, cost and outcome of every call to a model tier (app/llm/usage.py).
llm_calls = sa.Table(
    "llm_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("conversation_id", sa.String(200), nullable=False, server_default=""),
    sa.Column("tier", sa.SmallInteger, nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost", sa.Numeric(14, 8), nullable=False, server_default="0"),
    sa.Column("latency_ms", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempts", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("error", sa.String(500)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_llm_calls_tenant_created", "tenant_id", "created_at"),
    sa.Index("ix_llm_calls_tenant_user", "tenant_id", "user_id"),
)

# Generated answers cache (app/cache/): scoped by tenant and knowledge-base version, with an expiry time.
# Personal answers (built from a user's CRM data) are never stored; user_id records who caused the entry.
answer_cache = sa.Table(
    "answer_cache",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("kb_version", sa.String(64), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Column("tier", sa.SmallInteger),
    sa.Column("model", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("tenant_id", "kb_version", "key_hash", name="uq_answer_cache_scope_key"),
    sa.Index("ix_answer_cache_scope_expiry", "tenant_id", "kb_version", "expires_at"),
)

# Background jobs of the CRM service (app/integrations/services): refunds and outgoing webhooks. A job is a
# row until it is done, so a restarted service resumes what was pending (at-least-once, idempotent steps).
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("conversation_id", sa.String(200), nullable=False, server_default=""),
    sa.Column("kind", sa.String(32), nullable=False),  # refund | ticket_webhook
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),  # pending | done
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.String(500)),
    sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Index("ix_jobs_status_run_after", "status", "run_after"),
    sa.Index("ix_jobs_tenant_user", "tenant_id", "user_id"),
)

# Proactive messages for a user's chat (refund done, ticket status, agent replies). The chat page fetches
# them; ``delivered_at`` is set on the first fetch. ``source_key`` makes producers idempotent.
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("conversation_id", sa.String(200), nullable=False, server_default=""),
    sa.Column("source_key", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("tenant_id", "source_key", name="uq_notifications_source"),
    sa.Index("ix_notifications_tenant_user", "tenant_id", "user_id", "id"),
)

# Audit trail of data retention (app/data/retention.py): one row per forget-user or purge run (dry runs
# write none). ``user_id`` is ``sha256:<hex>`` of the forgotten user id (never the id in clear: the row must
# not re-store what was erased) and ``*`` for a purge, which spans every tenant (``tenant_id`` ``*`` too).
retention_audit = sa.Table(
    "retention_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),  # forget_user | purge
    sa.Column("counts", sa.JSON, nullable=False),  # {store: rows deleted or anonymised}
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_retention_audit_tenant_created", "tenant_id", "created_at"),
)
