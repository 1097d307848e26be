"""A ticket is a conversation: the messages in it, and the window a requester's burst joins.

- ``open_or_join``: a requester's new top-level message either opens a ticket or, within the
  window of their previous one in the same channel, joins that ticket (its text grows, its
  ``parts`` count up). One row per (workspace, channel, user) in ``conversation_windows`` is
  written first and then read back locked, so two replicas receiving one burst take turns on
  it (SQLite: the write lock; PostgreSQL: the row lock) and never open two tickets.
- ``add_follow_up``: the requester's reply in a ticket's thread joins it (``follow_ups``).
  A reply whose thread is no ticket (yet) is kept with ``ticket_id`` NULL; the ticket opened
  for that message later adopts it, so a reply delivered before its parent loses nothing.
- ``edit_message``: an edit of any message of the conversation rebuilds its text.
- ``claim_due``: every message pushes the ticket's ``regroup_at`` to ``now + window``; once it
  has passed, one compare-and-set hands the ticket to exactly one replica, which classifies
  the whole conversation and routes it (or brings its card up to date); ``first_runs`` says
  which of them were never routed, so that run needs no reads of its own.

Every function here awaits only ``conn.execute`` (they run inside ``bot.group_commit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from data.clock import as_utc
from data.db import tickets as tickets_repo
from data.db.database import utcnow
from data.db.schema import (
    conversation_windows,
    corrections,
    predictions,
    request_feedback,
    routings,
    ticket_messages,
    tickets,
)
from data.db.tickets import NewTicket, Ticket

#: Kinds of message in a conversation.
OPENING = "opening"
BURST = "burst"
FOLLOW_UP = "follow_up"

_NEVER = datetime(1970, 1, 1, tzinfo=UTC)
#: Statuses a closing conversation is routed again from (``failed`` and ``requeued`` wait for
#: an admin; ``shadowed`` tickets are classified again like routed ones).
_REOPENABLE = (
    tickets_repo.RECEIVED,
    tickets_repo.CLASSIFIED,
    tickets_repo.ROUTED,
    tickets_repo.SHADOWED,
    tickets_repo.SKIPPED,
)


class Joined(StrEnum):
    """What ``open_or_join`` and ``add_follow_up`` did with a message."""

    OPENED = "opened"  # a new ticket
    JOINED = "joined"  # a later message of an open conversation
    FOLLOW_UP = "follow-up"  # the requester's reply in the ticket's thread
    DUPLICATE = "duplicate"  # delivered before (a Slack retry)
    KEPT = "kept"  # a thread reply whose thread is no ticket (yet): kept for later
    NOT_REQUESTER = "not the requester"  # someone else's reply in a ticket's thread


@dataclass(frozen=True)
class Message:
    """One message of a conversation, as read from Slack."""

    workspace: str
    channel: str
    ts: str
    user: str
    text: str


@dataclass(frozen=True)
class Placed:
    """Where a message went: the outcome and the ticket (None when no ticket has it)."""

    outcome: Joined
    ticket: Ticket | None


def joined_text(text: str, more: str, cap: int) -> str:
    """The conversation's text with one more message, cut to ``cap`` characters."""
    if len(text) >= cap:
        return text[:cap]
    return f"{text}\n{more}"[:cap] if text else more[:cap]


# The statements of every message are built once, with their values bound at execution: a
# statement built per call costs more in SQLAlchemy than SQLite takes to run it.
_WINDOW_KEY = and_(
    conversation_windows.c.workspace == bindparam("b_workspace"),
    conversation_windows.c.channel == bindparam("b_channel"),
    conversation_windows.c.user == bindparam("b_user"),
)
_LOCK_WINDOW = (
    select(conversation_windows.c.ticket_id, conversation_windows.c.last_at)
    .where(_WINDOW_KEY)
    .with_for_update()
)
_MOVE_WINDOW = (
    update(conversation_windows)
    .where(_WINDOW_KEY)
    .values(ticket_id=bindparam("b_ticket_id"), last_at=bindparam("b_last_at"))
)
_FIND_MESSAGE = select(ticket_messages.c.ticket_id).where(
    ticket_messages.c.workspace == bindparam("b_workspace"),
    ticket_messages.c.channel == bindparam("b_channel"),
    ticket_messages.c.ts == bindparam("b_ts"),
)
_GET_TICKET = select(tickets).where(tickets.c.id == bindparam("b_id"))
_ADD_MESSAGE = insert(ticket_messages)
_KEPT_REPLIES = (
    select(ticket_messages.c.id, ticket_messages.c.text)
    .where(
        ticket_messages.c.workspace == bindparam("b_workspace"),
        ticket_messages.c.channel == bindparam("b_channel"),
        ticket_messages.c.parent_ts == bindparam("b_parent_ts"),
        ticket_messages.c.ticket_id.is_(None),
        ticket_messages.c.user == bindparam("b_user"),
    )
    .order_by(ticket_messages.c.id)
)


@cache
def _upsert_window(dialect: str) -> Any:
    keys = ["workspace", "channel", "user"]
    if dialect == "postgresql":
        return postgresql.insert(conversation_windows).on_conflict_do_nothing(index_elements=keys)
    return sqlite.insert(conversation_windows).on_conflict_do_nothing(index_elements=keys)


def _window_key(message: Message) -> dict[str, str]:
    return {"b_workspace": message.workspace, "b_channel": message.channel, "b_user": message.user}


async def _known(conn: AsyncConnection, message: Message) -> Ticket | bool | None:
    """The ticket already holding ``message`` (a retried event); True when it is kept without
    a ticket; False when it is new."""
    row = (
        await conn.execute(
            _FIND_MESSAGE,
            {"b_workspace": message.workspace, "b_channel": message.channel, "b_ts": message.ts},
        )
    ).first()
    if row is None:
        return False
    if row.ticket_id is None:
        return True
    return await _get(conn, int(row.ticket_id))


async def _get(conn: AsyncConnection, ticket_id: int) -> Ticket | None:
    row = (await conn.execute(_GET_TICKET, {"b_id": ticket_id})).first()
    return None if row is None else tickets_repo.ticket_from_row(row)


async def _add_message(
    conn: AsyncConnection,
    message: Message,
    ticket_id: int | None,
    kind: str,
    parent_ts: str | None = None,
) -> None:
    await conn.execute(
        _ADD_MESSAGE,
        {
            "ticket_id": ticket_id,
            "workspace": message.workspace,
            "channel": message.channel,
            "ts": message.ts,
            "parent_ts": parent_ts,
            "user": message.user,
            "text": message.text,
            "kind": kind,
            "created_at": utcnow(),
        },
    )


def _regroup_values(regroup_at: datetime | None) -> dict[str, Any]:
    """Values that schedule a ticket's next run: at ``regroup_at``, or now when None."""
    if regroup_at is not None:
        return {"regroup_at": regroup_at}
    now = utcnow()
    return {"regroup_at": None, "edited_at": now, "updated_at": now, "attempts": 0}


async def open_or_join(
    conn: AsyncConnection,
    message: Message,
    *,
    now: datetime,
    window: float,
    cap: int,
    new: NewTicket,
    owner: str | None = None,
    lease_until: datetime | None = None,
) -> Placed:
    """Open a ticket for ``message`` (stored as ``new``) or join the requester's open one.

    ``now``: the time on the bot's clock; ``window``: TRIAGE_GROUP_SECONDS (0: never join).
    The ticket is routed once ``window`` seconds pass without another message (``regroup_at``),
    or at once when ``window`` is 0. See the module docstring.
    """
    known = await _known(conn, message)
    if known is not False:
        return Placed(Joined.DUPLICATE, known if isinstance(known, Ticket) else None)
    regroup_at = now + timedelta(seconds=window) if window > 0 else None
    key = {"workspace": message.workspace, "channel": message.channel, "user": message.user}
    if window > 0:
        await conn.execute(
            _upsert_window(conn.dialect.name), {**key, "ticket_id": None, "last_at": _NEVER}
        )
        row = (await conn.execute(_LOCK_WINDOW, _window_key(message))).first()
        assert row is not None  # written just above
        open_ticket = None
        if row.ticket_id is not None and now - as_utc(row.last_at) < timedelta(seconds=window):
            open_ticket = await _get(conn, int(row.ticket_id))
        if open_ticket is not None:
            await _add_message(conn, message, open_ticket.id, BURST)
            await conn.execute(
                _MOVE_WINDOW,
                {**_window_key(message), "b_ticket_id": open_ticket.id, "b_last_at": now},
            )
            grown = await _grow(conn, open_ticket, message.text, cap, regroup_at, parts=1)
            return Placed(Joined.JOINED, grown)
    ticket, created = await tickets_repo.store_ticket(
        conn, new, owner=owner, lease_until=lease_until, regroup_at=regroup_at
    )
    if not created:  # stored before this table existed, or by a retried event
        return Placed(Joined.DUPLICATE, ticket)
    await _add_message(conn, message, ticket.id, OPENING)
    if window > 0:
        await conn.execute(
            _MOVE_WINDOW, {**_window_key(message), "b_ticket_id": ticket.id, "b_last_at": now}
        )
    adopted = await _adopt_replies(conn, ticket, message.ts, cap)
    return Placed(Joined.OPENED, adopted or ticket)


async def _grow(
    conn: AsyncConnection,
    ticket: Ticket,
    text: str,
    cap: int,
    regroup_at: datetime | None,
    *,
    parts: int = 0,
    follow_up: bool = False,
) -> Ticket:
    """Add ``text`` to the ticket's conversation and schedule its next run."""
    values: dict[str, Any] = {
        "text": joined_text(ticket.text, text, cap),
        "parts": tickets.c.parts + parts,
        **_regroup_values(regroup_at),
    }
    if follow_up:
        values["follow_ups"] = tickets.c.follow_ups + 1
        values["last_follow_up"] = text
    if regroup_at is None and ticket.status in _REOPENABLE:
        values["status"] = tickets_repo.RECEIVED
    await conn.execute(update(tickets).where(tickets.c.id == ticket.id).values(values))
    grown = await _get(conn, ticket.id)
    assert grown is not None
    return grown


async def _adopt_replies(
    conn: AsyncConnection, ticket: Ticket, parent_ts: str, cap: int
) -> Ticket | None:
    """Attach the requester's replies kept for ``parent_ts`` to ``ticket``; the ticket after,
    or None when there were none."""
    rows = (
        await conn.execute(
            _KEPT_REPLIES,
            {
                "b_workspace": ticket.workspace,
                "b_channel": ticket.channel,
                "b_parent_ts": parent_ts,
                "b_user": ticket.user,
            },
        )
    ).all()
    if not rows:
        return None
    await conn.execute(
        update(ticket_messages)
        .where(ticket_messages.c.id.in_([row.id for row in rows]))
        .values(ticket_id=ticket.id)
    )
    text = ticket.text
    for row in rows:
        text = joined_text(text, row.text, cap)
    await conn.execute(
        update(tickets)
        .where(tickets.c.id == ticket.id)
        .values(
            text=text,
            follow_ups=tickets.c.follow_ups + len(rows),
            last_follow_up=rows[-1].text,
        )
    )
    return await _get(conn, ticket.id)


async def add_follow_up(
    conn: AsyncConnection,
    message: Message,
    parent_ts: str,
    *,
    now: datetime,
    window: float,
    cap: int,
) -> Placed:
    """The requester's reply in the thread of ``parent_ts``: joins the ticket that message
    belongs to; kept for later when no ticket has it yet; ignored from anyone else."""
    known = await _known(conn, message)
    if known is not False:
        return Placed(Joined.DUPLICATE, known if isinstance(known, Ticket) else None)
    row = (
        await conn.execute(
            select(ticket_messages.c.ticket_id).where(
                ticket_messages.c.workspace == message.workspace,
                ticket_messages.c.channel == message.channel,
                ticket_messages.c.ts == parent_ts,
                ticket_messages.c.ticket_id.is_not(None),
            )
        )
    ).first()
    ticket = await _get(conn, int(row.ticket_id)) if row is not None else None
    if ticket is None:
        ticket = await tickets_repo.find_ticket(conn, message.workspace, message.channel, parent_ts)
    if ticket is None:
        await _add_message(conn, message, None, FOLLOW_UP, parent_ts)
        return Placed(Joined.KEPT, None)
    if ticket.user != message.user:
        return Placed(Joined.NOT_REQUESTER, ticket)
    await _add_message(conn, message, ticket.id, FOLLOW_UP, parent_ts)
    regroup_at = now + timedelta(seconds=window) if window > 0 else None
    grown = await _grow(conn, ticket, message.text, cap, regroup_at, follow_up=True)
    return Placed(Joined.FOLLOW_UP, grown)


async def edit_message(
    conn: AsyncConnection, workspace: str, channel: str, ts: str, text: str, cap: int
) -> tuple[Ticket, str] | None:
    """Record an edit of a conversation's message; (its ticket, the conversation's new text),
    or None when no ticket has the message. The ticket itself is not changed here."""
    row = (
        await conn.execute(
            select(ticket_messages.c.id, ticket_messages.c.ticket_id).where(
                ticket_messages.c.workspace == workspace,
                ticket_messages.c.channel == channel,
                ticket_messages.c.ts == ts,
            )
        )
    ).first()
    if row is None:  # a ticket stored before conversations were: its one message
        ticket = await tickets_repo.find_ticket(conn, workspace, channel, ts)
        return None if ticket is None else (ticket, text[:cap])
    await conn.execute(
        update(ticket_messages).where(ticket_messages.c.id == row.id).values(text=text)
    )
    if row.ticket_id is None:
        return None
    ticket = await _get(conn, int(row.ticket_id))
    if ticket is None:
        return None
    parts = (
        await conn.execute(
            select(ticket_messages.c.text)
            .where(ticket_messages.c.ticket_id == ticket.id)
            .order_by(ticket_messages.c.id)
        )
    ).all()
    whole = ""
    for part in parts:
        whole = joined_text(whole, part.text, cap)
    return ticket, whole


async def set_text(conn: AsyncConnection, ticket_id: int, text: str) -> None:
    """Replace the text of a ticket whose conversation is still open (routed when it closes,
    and classified again then: it was edited)."""
    await conn.execute(
        update(tickets).where(tickets.c.id == ticket_id).values(text=text, text_edited_at=utcnow())
    )


async def declare_request(conn: AsyncConnection, ticket_id: int, user: str) -> bool:
    """``user`` says the ticket is a request ("Send to triage"): one the request filter
    skipped, or one whose conversation is still open, is routed now; True if so."""
    now = utcnow()
    result = await conn.execute(
        update(tickets)
        .where(
            tickets.c.id == ticket_id,
            or_(
                tickets.c.status == tickets_repo.SKIPPED,
                and_(
                    tickets.c.regroup_at.is_not(None),
                    tickets.c.status.in_(_REOPENABLE),
                ),
            ),
        )
        .values(
            submitted_by=user,
            status=tickets_repo.RECEIVED,
            regroup_at=None,
            edited_at=now,
            updated_at=now,
            attempts=0,
        )
    )
    return bool(result.rowcount)


async def claim_due(
    conn: AsyncConnection, now: datetime, owner: str, lease_until: datetime, limit: int = 500
) -> list[int]:
    """Take the tickets whose conversation closed (``regroup_at`` passed) for ``owner``:
    each is handed to exactly one caller, ready to be classified and routed again."""
    due = (
        select(tickets.c.id)
        .where(tickets.c.regroup_at.is_not(None), tickets.c.regroup_at <= now)
        .order_by(tickets.c.regroup_at)
        .limit(limit)
    )
    stamp = utcnow()
    # A ticket that failed or waits for an admin is not routed by its conversation closing.
    await conn.execute(
        update(tickets)
        .where(
            tickets.c.regroup_at.is_not(None),
            tickets.c.regroup_at <= now,
            tickets.c.status.not_in(_REOPENABLE),
        )
        .values(regroup_at=None)
    )
    result = await conn.execute(
        update(tickets)
        .where(
            tickets.c.id.in_(due),
            tickets.c.regroup_at.is_not(None),
            tickets.c.regroup_at <= now,
            tickets.c.status.in_(_REOPENABLE),
            or_(
                tickets.c.lease_until.is_(None),
                tickets.c.lease_until < now,
                tickets.c.owner == owner,
            ),
        )
        .values(
            regroup_at=None,
            status=tickets_repo.RECEIVED,
            edited_at=stamp,
            updated_at=stamp,
            attempts=0,
            owner=owner,
            lease_until=lease_until,
        )
        .returning(tickets.c.id)
    )
    return sorted(int(row.id) for row in result)


async def first_runs(conn: AsyncConnection, ticket_ids: list[int]) -> list[Ticket]:
    """Of these tickets, those never classified, posted, corrected or judged by a person (one
    statement): their first run needs nothing more from the database (``TicketRouter.expect``)."""
    if not ticket_ids:
        return []
    untouched = [
        ~exists().where(table.c.ticket_id == tickets.c.id)
        for table in (predictions, routings, corrections, request_feedback)
    ]
    rows = await conn.execute(select(tickets).where(tickets.c.id.in_(ticket_ids), *untouched))
    return [tickets_repo.ticket_from_row(row) for row in rows]


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the next open conversation closes, or None."""
    result = await conn.execute(select(func.min(tickets.c.regroup_at)))
    moment = result.scalar_one_or_none()
    return None if moment is None else as_utc(moment)
