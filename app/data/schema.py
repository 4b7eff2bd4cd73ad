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
    # the user turn of the call (migration 0005): joins it to its turn record
    sa.Column("correlation_id", sa.String(128), nullable=False, server_default=""),
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
    sa.Index("ix_llm_calls_correlation", "correlation_id"),
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

# What the action server did in one action run (app/actions/records.py): the handler and rule it chose, the
# tiers it tried, cache, sources, tools, ticket, degradation level, latency by stage. The turn records join
# these by conversation and correlation id.
action_runs = sa.Table(
    "action_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("conversation_id", sa.String(200), nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False, server_default=""),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("handler", sa.String(32), nullable=False),  # app/orchestration/handlers.py
    sa.Column("rule", sa.String(64), nullable=False, server_default=""),
    sa.Column("reason", sa.String(500), nullable=False, server_default=""),
    sa.Column("tier_tried", sa.SmallInteger),  # the tier the policy chose first (knowledge turns)
    sa.Column("tier_used", sa.SmallInteger),  # the tier whose answer the user got
    sa.Column("attempts", sa.JSON, nullable=False),  # [[tier, outcome], ...] in the order tried
    sa.Column("cache", sa.String(16), nullable=False, server_default=""),  # "", exact, semantic
    sa.Column("sources", sa.JSON, nullable=False),  # doc ids the reply cites
    # the question retrieval read (knowledge turns): the message, or the topic and the message for a follow-up
    sa.Column("question", sa.Text, nullable=False, server_default=""),  # migration 0007, personal data masked
    sa.Column("tools", sa.JSON, nullable=False),  # tools whose results the reply used
    sa.Column("ticket_id", sa.Integer),
    sa.Column("level", sa.String(16), nullable=False, server_default="full"),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("stages", sa.JSON, nullable=False),  # {stage: milliseconds}
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_action_runs_conversation", "conversation_id", "correlation_id"),
    sa.Index("ix_action_runs_tenant_user", "tenant_id", "user_id"),
)

# One row per user turn (app/analytics/turn_records.py), built from Rasa's tracker store and the action runs
# of the turn: what the user said was understood as, which handler answered and why, what it cost (the turn's
# LLM calls by id: their anonymisation keeps working), how long it took. The Analytics page and the bot-level
# evaluation read these.
turn_records = sa.Table(
    "turn_records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("conversation_id", sa.String(200), nullable=False),  # Rasa's sender id, <tenant>:<user>
    sa.Column("session_index", sa.Integer, nullable=False),  # Rasa session of the sender, from 1
    sa.Column("turn_index", sa.Integer, nullable=False),  # user turn of the sender, from 1
    sa.Column("correlation_id", sa.String(128), nullable=False, server_default=""),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),  # the user event
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),  # the turn's last event
    sa.Column("channel", sa.String(32), nullable=False, server_default=""),
    sa.Column("model_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("model_variant", sa.String(32), nullable=False, server_default=""),
    sa.Column("intent", sa.String(64), nullable=False, server_default=""),
    sa.Column("intent_confidence", sa.Float),
    sa.Column("entities", sa.JSON, nullable=False),  # [{entity, value}, ...]
    sa.Column("handler", sa.String(32), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False, server_default=""),
    sa.Column("actions", sa.JSON, nullable=False),  # what ran, in order (responses included)
    sa.Column("tier_tried", sa.SmallInteger),
    sa.Column("tier_used", sa.SmallInteger),
    sa.Column("cache", sa.String(16), nullable=False, server_default=""),
    sa.Column("sources", sa.JSON, nullable=False),
    sa.Column("question", sa.Text, nullable=False, server_default=""),  # as in action_runs (migration 0007)
    sa.Column("tools", sa.JSON, nullable=False),
    sa.Column("llm_call_ids", sa.JSON, nullable=False),
    sa.Column("ticket_id", sa.Integer),
    sa.Column("bot_messages", sa.Integer, nullable=False, server_default="0"),
    sa.Column("latency_ms", sa.Float),  # user event to first bot message (None: no bot message)
    sa.Column("stages", sa.JSON, nullable=False),
    sa.Column("level", sa.String(16), nullable=False, server_default="full"),
    sa.Column("outcome", sa.String(32), nullable=False),  # ok | degraded | silent | error
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.UniqueConstraint("conversation_id", "turn_index", name="uq_turn_records_turn"),
    sa.Index("ix_turn_records_tenant_started", "tenant_id", "started_at"),
    sa.Index("ix_turn_records_tenant_user", "tenant_id", "user_id"),
    sa.Index("ix_turn_records_correlation", "correlation_id"),
)

# API keys of server-to-server clients (app/gateway/keys.py, migration 0006). ``user_id`` is the client's id
# (the end user is named per turn, in the body's ``sender``). Only a keyed hash of each key is stored:
# ``key_hash`` is HMAC-SHA256 of the whole key under ``SWITCHBOARD_API_KEY_SECRET``; ``key_id`` is the key's
# public part, to list and revoke it. A revoked key keeps its row (``revoked_at`` set) for the audit.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("plan", sa.String(64), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("key_id", name="uq_api_keys_key_id"),
    sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    sa.Index("ix_api_keys_tenant_user", "tenant_id", "user_id"),
)
