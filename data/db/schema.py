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
    # requeued -> (claimed by one bot) classified; skipped (the request filter) and not_request
    # (an agent said so). A plain string: new statuses need no migration.
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("edited_at", nullable=True),
    # The bot process routing the ticket, until when (see data/db/tickets.py: leases).
    Column("owner", String(64), nullable=True),
    _ts("lease_until", nullable=True),
    # The conversation (data/db/conversations.py): top-level messages in it, the requester's
    # replies in its thread and the latest of them, and when the card is next brought up to
    # date (a debounce: NULL when nothing waits).
    Column("parts", Integer, nullable=False, default=1, server_default="1"),
    Column("follow_ups", Integer, nullable=False, default=0, server_default="0"),
    Column("last_follow_up", Text, nullable=True),
    _ts("regroup_at", nullable=True),
    # How it came in: NULL a support channel, "dm" a direct message, "shortcut" the "Send to
    # triage" message shortcut, by ``submitted_by`` (who also declared it a request).
    Column("source", String(16), nullable=True),
    Column("submitted_by", String(32), nullable=True),
    # When a message of the conversation was last edited: an edit classifies the ticket
    # again, a follow-up only when the answer it was routed on was unsure (bot/routing.py).
    _ts("text_edited_at", nullable=True),
    UniqueConstraint("workspace", "channel", "ts", name="uq_tickets_workspace_channel_ts"),
    Index("ix_tickets_status", "status"),
    Index("ix_tickets_regroup_at", "regroup_at"),
)

# Every message of a ticket's conversation (the opening message, the rest of a burst, the
# requester's thread replies), so a retried event, an edit or a thread reply finds its ticket;
# a thread reply that arrived before its parent was stored waits here with ticket_id NULL.
ticket_messages = Table(
    "ticket_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=True),
    Column("workspace", String(32), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("parent_ts", String(32), nullable=True),  # a thread reply's thread
    Column("user", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("kind", String(16), nullable=False),  # opening | burst | follow_up
    _ts("created_at"),
    UniqueConstraint("workspace", "channel", "ts", name="uq_ticket_messages_workspace_channel_ts"),
    Index("ix_ticket_messages_ticket_id", "ticket_id"),
    Index("ix_ticket_messages_channel_parent_ts", "channel", "parent_ts"),
)

# Messages acknowledged to Slack but not yet placed in their conversation (data/db/inbox.py):
# the acknowledgement waits for one insert here; the row is deleted in the transaction that
# places the message, and rows left by a process that stopped are placed on the next start.
incoming_messages = Table(
    "incoming_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace", String(32), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("thread_ts", String(32), nullable=True),  # a thread reply's thread
    Column("user", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("source", String(16), nullable=True),  # NULL a support channel, "dm"
    Column("team", String(32), nullable=True),  # the author's workspace, from the event
    Column("owner", String(64), nullable=False),  # the process that acknowledged it
    _ts("received_at"),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    UniqueConstraint(
        "workspace", "channel", "ts", name="uq_incoming_messages_workspace_channel_ts"
    ),
)

# The open conversation of each requester in each channel: a new top-level message joins
# ``ticket_id`` when it comes within TRIAGE_GROUP_SECONDS of ``last_at``. One row per key, so
# replicas receiving one burst serialise on it (data/db/conversations.py).
conversation_windows = Table(
    "conversation_windows",
    metadata,
    Column("workspace", String(32), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("user", String(32), primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=True),
    _ts("last_at"),
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

# Whether a message is a request, as people said: an agent's "not a ticket" emoji (False), a
# message sent to triage by hand (True). The request filter refits on these and the shipped
# examples (bot/request_filter.py). One row per ticket: the latest word replaces the earlier
# one with a new id, so (count, max id) changes whenever the examples do.
request_feedback = Table(
    "request_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "ticket_id",
        Integer,
        ForeignKey("tickets.id", ondelete="CASCADE"),
        nullable=True,
        unique=True,
    ),
    Column("text", Text, nullable=False),
    Column("is_request", Boolean, nullable=False),
    Column("user", String(32), nullable=False),
    Column("via", String(16), nullable=False),  # reaction | shortcut
    _ts("created_at"),
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

# The desk: where each routed ticket stands for the people who work it (data/db/desk.py).
# One row per ticket, kept current, so status, owner and the first-response and resolution
# times are one indexed read each; the history is in ticket_transitions.
ticket_states = Table(
    "ticket_states",
    metadata,
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("department", String(64), nullable=False),
    # open | in_progress | resolved (data/db/desk.py)
    Column("status", String(16), nullable=False),
    # The agent who owns it (a Slack user id); NULL while open.
    Column("assignee", String(32), nullable=True),
    # When the requester asked (the ticket's own time): what response times count from.
    _ts("opened_at"),
    # The ticket's Slack permalink, for cards redrawn and "my tickets" lists (no lookup).
    Column("permalink", String(512), nullable=True),
    _ts("taken_at", nullable=True),
    _ts("first_response_at", nullable=True),
    Column("first_responder", String(32), nullable=True),
    _ts("resolved_at", nullable=True),
    _ts("updated_at"),
    # One more on every change: a card rendered from version n is stale once n+1 exists.
    Column("version", Integer, nullable=False, default=1),
    # The version Slack shows (card, status emoji, thread lines; bot/desk.py); NULL or lower
    # than ``version``: a change whose Slack side was cut short, done again on restart.
    Column("synced_version", Integer, nullable=True),
    Index("ix_ticket_states_department_opened_at", "department", "opened_at"),
    Index("ix_ticket_states_status_department_opened_at", "status", "department", "opened_at"),
    Index("ix_ticket_states_assignee_status", "assignee", "status"),
)

# Every change of a ticket's desk state: who, when, from what, to what, and through what.
ticket_transitions = Table(
    "ticket_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    Column("from_status", String(16), nullable=True),  # NULL: the ticket entered the desk
    Column("to_status", String(16), nullable=False),
    Column("assignee", String(32), nullable=True),  # the owner after the transition
    Column("department", String(64), nullable=False),  # the department after it
    Column("actor", String(32), nullable=False),  # a Slack user id, or "bot"
    # route | button | reaction | reply | correction | command
    Column("source", String(16), nullable=False),
    # What asked for it (e.g. one button press); a request seen again changes nothing.
    Column("request_key", String(128), nullable=True),
    _ts("at"),
    Index("ix_ticket_transitions_ticket_id", "ticket_id"),
    Index("ix_ticket_transitions_at", "at"),
    UniqueConstraint("request_key", name="uq_ticket_transitions_request_key"),
)

# Named leases for background work that runs on one replica at a time (data/db/leases.py).
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    _ts("until"),
)

# First-response timers (data/db/response_timers.py): per ticket, one nudge in the card's thread
# and one escalation to the triage channel, each with its due time and what became of it.
response_timers = Table(
    "response_timers",
    metadata,
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # nudge | escalation
    Column("department", String(64), nullable=False),  # the department the due time is for
    _ts("due_at"),
    # A sweep started posting it; with no done_at the post may or may not have reached Slack.
    _ts("claimed_at", nullable=True),
    _ts("done_at", nullable=True),
    # posted | answered | resolved | late (too late when first scheduled) | nowhere (no card
    # or triage channel to post in)
    Column("outcome", String(16), nullable=True),
    Column("channel", String(32), nullable=True),
    Column("ts", String(32), nullable=True),
    Index("ix_response_timers_done_at_due_at", "done_at", "due_at"),
)
