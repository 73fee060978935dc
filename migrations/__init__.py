"""Alembic migrations of the server database (SQLite and PostgreSQL)."""
