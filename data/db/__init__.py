"""The database layer: one schema over SQLAlchemy Core (async), for SQLite and PostgreSQL."""
