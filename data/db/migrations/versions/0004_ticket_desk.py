"""ticket desk: each routed ticket's status, owner, response times, and its transitions

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_states",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assignee", sa.String(length=32), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("permalink", sa.String(length=512), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_responder", sa.String(length=32), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_states_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_states")),
    )
    with op.batch_alter_table("ticket_states", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_states_department_opened_at", ["department", "opened_at"], unique=False
        )
        batch_op.create_index(
            "ix_ticket_states_status_department_opened_at",
            ["status", "department", "opened_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_ticket_states_assignee_status", ["assignee", "status"], unique=False
        )

    op.create_table(
        "ticket_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("assignee", sa.String(length=32), nullable=True),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("request_key", sa.String(length=128), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_transitions_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_transitions")),
        sa.UniqueConstraint("request_key", name="uq_ticket_transitions_request_key"),
    )
    with op.batch_alter_table("ticket_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_transitions_ticket_id", ["ticket_id"], unique=False)
        batch_op.create_index("ix_ticket_transitions_at", ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_transitions_at")
        batch_op.drop_index("ix_ticket_transitions_ticket_id")
    op.drop_table("ticket_transitions")
    with op.batch_alter_table("ticket_states", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_states_assignee_status")
        batch_op.drop_index("ix_ticket_states_status_department_opened_at")
        batch_op.drop_index("ix_ticket_states_department_opened_at")
    op.drop_table("ticket_states")
