"""Our stores (SQLite by default, PostgreSQL when configured), their schema and migrations (Alembic)."""
