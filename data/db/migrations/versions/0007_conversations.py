"""conversations: a ticket's messages, the open window per requester, follow-ups and source

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parts", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("follow_ups", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("last_follow_up", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("regroup_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("submitted_by", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_tickets_regroup_at", ["regroup_at"])
    op.create_table(
        "ticket_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("workspace", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("parent_ts", sa.String(length=32), nullable=True),
        sa.Column("user", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name="fk_ticket_messages_ticket_id_tickets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_messages"),
        sa.UniqueConstraint(
            "workspace", "channel", "ts", name="uq_ticket_messages_workspace_channel_ts"
        ),
    )
    op.create_index("ix_ticket_messages_ticket_id", "ticket_messages", ["ticket_id"])
    op.create_index(
        "ix_ticket_messages_channel_parent_ts", "ticket_messages", ["channel", "parent_ts"]
    )
    op.create_table(
        "conversation_windows",
        sa.Column("workspace", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("user", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name="fk_conversation_windows_ticket_id_tickets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace", "channel", "user", name="pk_conversation_windows"),
    )


def downgrade() -> None:
    op.drop_table("conversation_windows")
    op.drop_index("ix_ticket_messages_channel_parent_ts", table_name="ticket_messages")
    op.drop_index("ix_ticket_messages_ticket_id", table_name="ticket_messages")
    op.drop_table("ticket_messages")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_regroup_at")
        batch_op.drop_column("submitted_by")
        batch_op.drop_column("source")
        batch_op.drop_column("regroup_at")
        batch_op.drop_column("last_follow_up")
        batch_op.drop_column("follow_ups")
        batch_op.drop_column("parts")
