"""People's word on whether a message is a request: the request filter's learned examples.

An agent's "not a ticket" emoji stores ``is_request=False`` for the ticket; sending a skipped
message to triage stores ``True``. One row per ticket: a new word replaces the old one (deleted
and inserted, so the row gets a new id), and removing the emoji deletes it. ``version`` is
(rows, highest id): it changes whenever the examples do, which is how every replica's refit
loop notices feedback given to another replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from data.clock import as_utc
from data.db.schema import request_feedback

#: How the word was given.
REACTION = "reaction"
SHORTCUT = "shortcut"


@dataclass(frozen=True)
class RequestFeedback:
    """One stored word: the message's text and whether it is a request."""

    id: int
    ticket_id: int | None
    text: str
    is_request: bool
    user: str
    via: str
    created_at: datetime


async def record_feedback(
    conn: AsyncConnection,
    *,
    ticket_id: int | None,
    text: str,
    is_request: bool,
    user: str,
    via: str,
    now: datetime,
) -> int:
    """Store the word (replacing the ticket's earlier one); returns its id."""
    if ticket_id is not None:
        await conn.execute(
            delete(request_feedback).where(request_feedback.c.ticket_id == ticket_id)
        )
    result = await conn.execute(
        request_feedback.insert().values(
            ticket_id=ticket_id,
            text=text,
            is_request=is_request,
            user=user,
            via=via,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def feedback_for(conn: AsyncConnection, ticket_id: int) -> RequestFeedback | None:
    """The ticket's standing word, or None."""
    row = (
        await conn.execute(
            select(request_feedback).where(request_feedback.c.ticket_id == ticket_id)
        )
    ).first()
    return None if row is None else _feedback(row)


async def remove_feedback(
    conn: AsyncConnection, ticket_id: int, *, user: str, is_request: bool
) -> bool:
    """Take back ``user``'s word on the ticket (an emoji removed); whether there was one."""
    result = await conn.execute(
        delete(request_feedback).where(
            request_feedback.c.ticket_id == ticket_id,
            request_feedback.c.user == user,
            request_feedback.c.is_request == is_request,
        )
    )
    return bool(result.rowcount)


async def all_feedback(conn: AsyncConnection) -> list[RequestFeedback]:
    """Every stored word, oldest first."""
    rows = await conn.execute(select(request_feedback).order_by(request_feedback.c.id))
    return [_feedback(row) for row in rows]


async def version(conn: AsyncConnection) -> tuple[int, int]:
    """(rows, highest id): different whenever the stored examples changed."""
    row = (
        await conn.execute(
            select(func.count(request_feedback.c.id), func.max(request_feedback.c.id))
        )
    ).one()
    return int(row[0]), int(row[1] or 0)


def _feedback(row: Any) -> RequestFeedback:
    return RequestFeedback(
        id=row.id,
        ticket_id=row.ticket_id,
        text=row.text,
        is_request=bool(row.is_request),
        user=row.user,
        via=row.via,
        created_at=as_utc(row.created_at),
    )
