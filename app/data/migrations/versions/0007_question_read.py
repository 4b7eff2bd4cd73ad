"""The question retrieval read, per action run and per turn record: the message, or for a follow-up the
conversation's topic and the message (app/actions/knowledge.py). The bot-level evaluation's gap report replays it,
so it describes the lookup that ran, not one of the message alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("action_runs", "turn_records")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:  # batch: SQLite cannot alter a table in place
            batch.add_column(sa.Column("question", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("question")
