"""Messages received but not yet placed in their conversation: what Slack's ack waits for.

A message event's acknowledgement waits for one INSERT here (``receive``; unique on workspace +
channel + ts, so a retried event that finds its row is a no-op) and for nothing else. Placing
the message in its conversation (``data.db.conversations``: open a ticket, join a burst, add a
follow-up; about eight statements) happens after the acknowledgement, in a transaction that
also deletes the row (``take``), so a message is placed exactly once even when two replicas
try: the second ``take`` finds nothing. A process that stops between the two leaves its rows
here; the next start places them, and so does any live replica once they are ``stale``.

Rows keep the time the bot received the message (``received_at``, on the bot's clock), so a
message placed late joins the conversation it would have joined on time.

Every function here awaits only ``conn.execute`` (they run inside ``bot.group_commit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from data.clock import as_utc
from data.db.schema import incoming_messages

#: Failed placements of one message before it is left for a person (logged as an error).
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Incoming:
    """A message as received, before it is placed in a conversation."""

    workspace: str
    channel: str
    ts: str
    user: str
    text: str
    #: When the bot received it (its clock): the time its conversation counts from.
    received_at: datetime
    #: The process that acknowledged it (it places its own rows first).
    owner: str
    #: A thread reply: the ts of its thread's parent message.
    thread_ts: str | None = None
    #: How it came in: None a support channel, "dm" a direct message.
    source: str | None = None
    #: The author's workspace as the event gave it (tells external people apart).
    team: str | None = None
    #: Its row id (None before it is stored).
    id: int | None = None


@cache
def _insert_ignoring_duplicates(dialect: str) -> Executable:
    keys = ["workspace", "channel", "ts"]
    if dialect == "postgresql":
        statement: Any = postgresql.insert(incoming_messages).on_conflict_do_nothing(
            index_elements=keys
        )
    elif dialect == "sqlite":
        statement = sqlite.insert(incoming_messages).on_conflict_do_nothing(index_elements=keys)
    else:  # pragma: no cover - only SQLite and PostgreSQL run
        statement = insert(incoming_messages)
    return statement.returning(incoming_messages.c.id)  # type: ignore[no-any-return]


_TAKE = (
    delete(incoming_messages)
    .where(incoming_messages.c.id == bindparam("b_id"))
    .returning(*incoming_messages.c)
)


async def receive(conn: AsyncConnection, message: Incoming) -> int | None:
    """Store ``message`` to be placed; its row id, or None when it is already waiting (a
    retried event)."""
    result = await conn.execute(
        _insert_ignoring_duplicates(conn.dialect.name),
        {
            "workspace": message.workspace,
            "channel": message.channel,
            "ts": message.ts,
            "user": message.user,
            "text": message.text,
            "thread_ts": message.thread_ts,
            "source": message.source,
            "team": message.team,
            "owner": message.owner,
            "received_at": message.received_at,
            "attempts": 0,
        },
    )
    stored = result.scalar_one_or_none()
    return None if stored is None else int(stored)


async def take(conn: AsyncConnection, message_id: int) -> Incoming | None:
    """Remove the message from the waiting ones and return it, to be placed in the same
    transaction; None when it is gone (placed already, by this process or another)."""
    row = (await conn.execute(_TAKE, {"b_id": message_id})).first()
    return None if row is None else _incoming(row)


async def thread_replies(conn: AsyncConnection, ids: list[int]) -> list[Incoming]:
    """The thread replies among these waiting messages (what the bot asks about their
    authors before placing them)."""
    if not ids:
        return []
    rows = await conn.execute(
        select(incoming_messages).where(
            incoming_messages.c.id.in_(ids), incoming_messages.c.thread_ts.is_not(None)
        )
    )
    return [_incoming(row) for row in rows]


def _incoming(row: Any) -> Incoming:
    return Incoming(
        workspace=row.workspace,
        channel=row.channel,
        ts=row.ts,
        user=row.user,
        text=row.text,
        received_at=as_utc(row.received_at),
        owner=row.owner,
        thread_ts=row.thread_ts,
        source=row.source,
        team=row.team,
        id=int(row.id),
    )


async def waiting(
    conn: AsyncConnection,
    *,
    owner: str | None = None,
    stale_before: datetime | None = None,
    limit: int = 1000,
) -> list[int]:
    """Ids of the messages waiting to be placed, oldest first: ``owner``'s and those received
    before ``stale_before`` (both None: all of them). Messages that failed ``MAX_ATTEMPTS``
    times are left out."""
    query = select(incoming_messages.c.id).where(incoming_messages.c.attempts < MAX_ATTEMPTS)
    if owner is not None or stale_before is not None:
        mine = [] if owner is None else [incoming_messages.c.owner == owner]
        old = [] if stale_before is None else [incoming_messages.c.received_at < stale_before]
        query = query.where(or_(*mine, *old))
    rows = await conn.execute(query.order_by(incoming_messages.c.id).limit(limit))
    return [int(row.id) for row in rows]


async def count_failed(conn: AsyncConnection, message_id: int) -> int:
    """Count a failed placement of the message; how many it has had (0: it is gone)."""
    await conn.execute(
        update(incoming_messages)
        .where(incoming_messages.c.id == message_id)
        .values(attempts=incoming_messages.c.attempts + 1)
    )
    attempts = await conn.scalar(
        select(incoming_messages.c.attempts).where(incoming_messages.c.id == message_id)
    )
    return int(attempts or 0)


async def count_waiting(conn: AsyncConnection) -> int:
    """How many messages wait to be placed (including those given up on)."""
    return int(await conn.scalar(select(func.count()).select_from(incoming_messages)) or 0)
