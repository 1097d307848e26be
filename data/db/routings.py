"""What the bot did in Slack for each ticket: cards posted, thread replies, tag reactions.

Each Slack side effect is recorded here right after it succeeds, before the bot moves on, so a
ticket resumed after a crash skips what was already done and nothing is posted twice. A card
that was moved is kept with ``removed_at`` set, for the record.

kind: ``card`` (a card in a department or triage channel), ``reply`` (the first thread reply),
``confirm`` (a thread reply confirming a correction), ``tag`` (the bot's emoji on the ticket).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from data.db import tickets as tickets_repo
from data.db.database import utcnow
from data.db.schema import routings

CARD = "card"
REPLY = "reply"
CONFIRM = "confirm"
TAG = "tag"

_INSERT = routings.insert().returning(routings.c.id)


@dataclass(frozen=True)
class Routing:
    """One recorded Slack side effect for a ticket."""

    id: int
    ticket_id: int
    kind: str
    label: str
    channel: str
    ts: str | None
    created_at: datetime
    removed_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the message or reaction is still there."""
        return self.removed_at is None


def _routing(row: Any) -> Routing:
    return Routing(
        id=row.id,
        ticket_id=row.ticket_id,
        kind=row.kind,
        label=row.label,
        channel=row.channel,
        ts=row.ts,
        created_at=row.created_at,
        removed_at=row.removed_at,
    )


async def record_routing(
    conn: AsyncConnection, ticket_id: int, *, kind: str, label: str, channel: str, ts: str | None
) -> int:
    """Record that the bot posted (or reacted) for a ticket; returns the record's id."""
    result = await conn.execute(
        _INSERT,  # built once; a statement with .values() is traversed again on every call
        {
            "ticket_id": ticket_id,
            "kind": kind,
            "label": label,
            "channel": channel,
            "ts": ts,
            "created_at": utcnow(),
        },
    )
    return int(result.scalar_one())


async def mark_removed(conn: AsyncConnection, routing_id: int) -> None:
    """Record that a card was deleted (or replaced) or a tag reaction removed."""
    await conn.execute(
        update(routings)
        .where(routings.c.id == routing_id, routings.c.removed_at.is_(None))
        .values(removed_at=utcnow())
    )


async def routings_for(conn: AsyncConnection, ticket_id: int) -> list[Routing]:
    """Everything recorded for a ticket, oldest first."""
    rows = await conn.execute(
        select(routings).where(routings.c.ticket_id == ticket_id).order_by(routings.c.id)
    )
    return [_routing(row) for row in rows]


async def ticket_at(conn: AsyncConnection, channel: str, ts: str) -> tickets_repo.Ticket | None:
    """The ticket message ``ts`` in ``channel`` stands for (what a reaction or a button on it
    is about): the ticket's own message, or its card (moved cards included); else None."""
    ticket = await tickets_repo.find_ticket_by_message(conn, channel, ts)
    if ticket is not None:
        return ticket
    ticket_id = await ticket_id_for_card(conn, channel, ts)
    return await tickets_repo.get_ticket(conn, ticket_id) if ticket_id else None


async def ticket_id_for_card(conn: AsyncConnection, channel: str, ts: str) -> int | None:
    """The ticket whose card is message ``ts`` in ``channel`` (moved cards included), or None."""
    row = (
        await conn.execute(
            select(routings.c.ticket_id)
            .where(routings.c.channel == channel, routings.c.ts == ts, routings.c.kind == CARD)
            .order_by(routings.c.id.desc())
            .limit(1)
        )
    ).first()
    return int(row.ticket_id) if row is not None else None
