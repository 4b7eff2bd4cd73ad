"""Turn records: what the action server did per action run, one row per user turn, and the turn of each LLM call.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.add_column(sa.Column("correlation_id", sa.String(128), nullable=False, server_default=""))
    op.create_index("ix_llm_calls_correlation", "llm_calls", ["correlation_id"])
    op.create_table(
        "action_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("handler", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False, server_default=""),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("tier_tried", sa.SmallInteger),
        sa.Column("tier_used", sa.SmallInteger),
        sa.Column("attempts", sa.JSON, nullable=False),
        sa.Column("cache", sa.String(16), nullable=False, server_default=""),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("tools", sa.JSON, nullable=False),
        sa.Column("ticket_id", sa.Integer),
        sa.Column("level", sa.String(16), nullable=False, server_default="full"),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("stages", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_action_runs_conversation", "action_runs", ["conversation_id", "correlation_id"])
    op.create_index("ix_action_runs_tenant_user", "action_runs", ["tenant_id", "user_id"])
    op.create_table(
        "turn_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("session_index", sa.Integer, nullable=False),
        sa.Column("turn_index", sa.Integer, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False, server_default=""),
        sa.Column("model_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("model_variant", sa.String(32), nullable=False, server_default=""),
        sa.Column("intent", sa.String(64), nullable=False, server_default=""),
        sa.Column("intent_confidence", sa.Float),
        sa.Column("entities", sa.JSON, nullable=False),
        sa.Column("handler", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False, server_default=""),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("tier_tried", sa.SmallInteger),
        sa.Column("tier_used", sa.SmallInteger),
        sa.Column("cache", sa.String(16), nullable=False, server_default=""),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("tools", sa.JSON, nullable=False),
        sa.Column("llm_call_ids", sa.JSON, nullable=False),
        sa.Column("ticket_id", sa.Integer),
        sa.Column("bot_messages", sa.Integer, nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Float),
        sa.Column("stages", sa.JSON, nullable=False),
        sa.Column("level", sa.String(16), nullable=False, server_default="full"),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("last_event_id", sa.Integer, nullable=False),
        sa.UniqueConstraint("conversation_id", "turn_index", name="uq_turn_records_turn"),
    )
    op.create_index("ix_turn_records_tenant_started", "turn_records", ["tenant_id", "started_at"])
    op.create_index("ix_turn_records_tenant_user", "turn_records", ["tenant_id", "user_id"])
    op.create_index("ix_turn_records_correlation", "turn_records", ["correlation_id"])


def downgrade() -> None:
    op.drop_table("turn_records")
    op.drop_table("action_runs")
    op.drop_index("ix_llm_calls_correlation", table_name="llm_calls")
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_column("correlation_id")
