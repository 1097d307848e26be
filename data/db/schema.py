"""Tables, as SQLAlchemy Core metadata. Migrations in ``migrations/versions`` create them.

Change a table here *and* add a migration; ``tests/data`` checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ts(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace", String(32), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("user", String(32), nullable=False),
    Column("text", Text, nullable=False),
    # received -> classified -> routed | shadowed | failed; an admin's retry: failed ->
    # requeued -> (claimed by one bot) classified. A plain string: new statuses need no migration.
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("edited_at", nullable=True),
    # The bot process routing the ticket, until when (see data/db/tickets.py: leases).
    Column("owner", String(64), nullable=True),
    _ts("lease_until", nullable=True),
    UniqueConstraint("workspace", "channel", "ts", name="uq_tickets_workspace_channel_ts"),
    Index("ix_tickets_status", "status"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(64), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("ranking", JSON, nullable=False),
    Column("model_id", String(128), nullable=False),
    Column("latency_ms", Float, nullable=False),
    _ts("created_at"),
    Index("ix_predictions_ticket_id", "ticket_id"),
)

# Every message the bot posted or reaction it added for a ticket, so nothing is posted twice
# and a correction can find what to move. kind: card | reply | tag
routings = Table(
    "routings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("label", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("ts", String(32), nullable=True),
    _ts("created_at"),
    _ts("removed_at", nullable=True),
    Index("ix_routings_ticket_id", "ticket_id"),
    Index("ix_routings_channel_ts", "channel", "ts"),
)

corrections = Table(
    "corrections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    Column("user", String(32), nullable=False),
    Column("from_label", String(64), nullable=False),
    Column("to_label", String(64), nullable=False),
    Column("via", String(16), nullable=False),  # reaction | button | command
    _ts("created_at"),
    _ts("undone_at", nullable=True),
    Index("ix_corrections_ticket_id", "ticket_id"),
)

training_examples = Table(
    "training_examples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("text", Text, nullable=False),
    Column("label", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    # One example per ticket: the latest human label replaces the previous one.
    Column(
        "ticket_id",
        Integer,
        ForeignKey("tickets.id", ondelete="CASCADE"),
        nullable=True,
        unique=True,
    ),
    Column("holdout", Boolean, nullable=False, default=False),
    _ts("created_at"),
    _ts("updated_at"),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", String(128), nullable=False),
    Column("learner", String(32), nullable=False),
    Column("artefact", LargeBinary, nullable=False),
    Column("data_hash", String(64), nullable=False),
    Column("counts", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    # candidate | active | retired | rejected
    Column("status", String(16), nullable=False),
    Column("created_by", String(32), nullable=True),
    Column("job_id", Integer, nullable=True),
    _ts("created_at"),
    _ts("activated_at", nullable=True),
    Index("ix_models_status", "status"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # retrain | finetune | generate
    # queued | running | succeeded | failed | cancelled
    Column("status", String(16), nullable=False),
    Column("stage", String(32), nullable=True),
    Column("params", JSON, nullable=False),
    Column("state", JSON, nullable=False),  # resumable progress, e.g. the OpenAI job id
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_by", String(32), nullable=True),
    Column("slack_channel", String(32), nullable=True),
    Column("slack_ts", String(32), nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    _ts("created_at"),
    _ts("updated_at"),
    # The single-running lock: a running job holds lock_key = its kind, a finished one NULL.
    # The unique constraint lets the database refuse a second running job of a kind, on every
    # replica (several NULLs are allowed by SQLite and PostgreSQL alike).
    Column("lock_key", String(32), nullable=True),
    # Which process runs the job and when it last said so; a stale heartbeat means the process
    # died and another (or the restarted one) may claim the job and resume it.
    Column("owner", String(64), nullable=True),
    _ts("heartbeat_at", nullable=True),
    Index("ix_jobs_status", "status"),
    UniqueConstraint("lock_key", name="uq_jobs_lock_key"),
)

admin_actions = Table(
    "admin_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("outcome", String(32), nullable=False),
    _ts("created_at"),
)
