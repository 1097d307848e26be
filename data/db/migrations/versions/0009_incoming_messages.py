"""incoming_messages: what an event's acknowledgement stores, placed in its conversation after;
tickets.text_edited_at: an edit classifies again, a follow-up only an unsure ticket

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_edited_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "incoming_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workspace", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("thread_ts", sa.String(length=32), nullable=True),
        sa.Column("user", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("team", sa.String(length=32), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_incoming_messages"),
        sa.UniqueConstraint(
            "workspace", "channel", "ts", name="uq_incoming_messages_workspace_channel_ts"
        ),
    )


def downgrade() -> None:
    op.drop_table("incoming_messages")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("text_edited_at")
