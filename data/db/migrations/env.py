"""Alembic environment: runs on the connection handed over by ``data.db.engine.migrate``."""

from __future__ import annotations

from alembic import context

from data.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via alembic's own CLI, which we do not use
    raise RuntimeError("Run migrations through data.db.engine.migrate().")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
