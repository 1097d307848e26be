"""Corrections: a person's label for a ticket, and the training example it becomes.

The latest human label that is not undone wins (``classifier.label_precedence``, applied here by
``current_correction`` and ``human_labels``). Every change here also brings the ticket's one
``correction`` training example in line (``sync_training_example``): upserted with the current
human label, or removed when no human label is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.examples import Source
from classifier.label_precedence import standing_label, standing_labels
from data.db.database import utcnow
from data.db.schema import corrections, training_examples

REACTION = "reaction"
BUTTON = "button"
COMMAND = "command"


@dataclass(frozen=True)
class Correction:
    """One person's label for a ticket."""

    id: int
    ticket_id: int
    user: str
    from_label: str
    to_label: str
    via: str
    created_at: datetime
    undone_at: datetime | None


@dataclass(frozen=True)
class StoredExample:
    """A training example as stored."""

    id: int
    text: str
    label: str
    source: str
    ticket_id: int | None


def _correction(row: Any) -> Correction:
    return Correction(
        id=row.id,
        ticket_id=row.ticket_id,
        user=row.user,
        from_label=row.from_label,
        to_label=row.to_label,
        via=row.via,
        created_at=row.created_at,
        undone_at=row.undone_at,
    )


async def record_correction(
    conn: AsyncConnection,
    ticket_id: int,
    *,
    user: str,
    from_label: str,
    to_label: str,
    via: str,
    now: datetime | None = None,
) -> Correction:
    """Record that ``user`` labelled the ticket ``to_label`` (it was ``from_label``)."""
    now = now or utcnow()
    result = await conn.execute(
        corrections.insert()
        .values(
            ticket_id=ticket_id,
            user=user,
            from_label=from_label,
            to_label=to_label,
            via=via,
            created_at=now,
        )
        .returning(corrections.c.id)
    )
    return Correction(
        id=int(result.scalar_one()),
        ticket_id=ticket_id,
        user=user,
        from_label=from_label,
        to_label=to_label,
        via=via,
        created_at=now,
        undone_at=None,
    )


async def undo_correction(
    conn: AsyncConnection, ticket_id: int, *, user: str, to_label: str, via: str
) -> Correction | None:
    """Undo ``user``'s newest standing correction of the ticket to ``to_label``; None if none."""
    row = (
        await conn.execute(
            select(corrections)
            .where(
                corrections.c.ticket_id == ticket_id,
                corrections.c.user == user,
                corrections.c.to_label == to_label,
                corrections.c.via == via,
                corrections.c.undone_at.is_(None),
            )
            .order_by(corrections.c.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    await conn.execute(
        update(corrections).where(corrections.c.id == row.id).values(undone_at=utcnow())
    )
    return _correction(row)


async def current_correction(conn: AsyncConnection, ticket_id: int) -> Correction | None:
    """The ticket's human label: its latest correction that is not undone, or None."""
    return standing_label(await corrections_for(conn, ticket_id))


async def corrections_where(conn: AsyncConnection, *where: ColumnElement[bool]) -> list[Correction]:
    """The corrections that match ``where`` (undone ones included), oldest first."""
    rows = await conn.execute(select(corrections).where(*where).order_by(corrections.c.id))
    return [_correction(row) for row in rows]


async def human_labels(conn: AsyncConnection, *where: ColumnElement[bool]) -> dict[int, Correction]:
    """Each ticket's human label, among the corrections that match ``where``."""
    return standing_labels(await corrections_where(conn, *where))


async def count_by_user_since(conn: AsyncConnection, user: str, since: datetime) -> int:
    """How many corrections ``user`` recorded from ``since`` on (undone ones count too)."""
    statement = select(func.count()).where(
        corrections.c.user == user, corrections.c.created_at >= since
    )
    return int((await conn.execute(statement)).scalar_one())


async def corrections_for(conn: AsyncConnection, ticket_id: int) -> list[Correction]:
    """Every correction of the ticket, undone ones included, oldest first."""
    return await corrections_where(conn, corrections.c.ticket_id == ticket_id)


async def sync_training_example(conn: AsyncConnection, ticket_id: int, text: str) -> str | None:
    """Make the ticket's correction example match its current human label.

    ``text`` is what may be stored (already redacted when PII redaction is on). Returns the
    label stored, or None when the example was removed because no human label is left.
    """
    current = await current_correction(conn, ticket_id)
    if current is None:
        await conn.execute(
            delete(training_examples).where(training_examples.c.ticket_id == ticket_id)
        )
        return None
    now = utcnow()
    changed = await conn.execute(
        update(training_examples)
        .where(training_examples.c.ticket_id == ticket_id)
        .values(text=text, label=current.to_label, source=Source.CORRECTION.value, updated_at=now)
    )
    if changed.rowcount == 0:
        await conn.execute(
            training_examples.insert().values(
                text=text,
                label=current.to_label,
                source=Source.CORRECTION.value,
                ticket_id=ticket_id,
                holdout=False,
                created_at=now,
                updated_at=now,
            )
        )
    return current.to_label


async def example_for_ticket(conn: AsyncConnection, ticket_id: int) -> StoredExample | None:
    """The training example made from the ticket, or None."""
    row = (
        await conn.execute(
            select(training_examples).where(training_examples.c.ticket_id == ticket_id)
        )
    ).first()
    if row is None:
        return None
    return StoredExample(
        id=row.id, text=row.text, label=row.label, source=row.source, ticket_id=row.ticket_id
    )


async def list_corrections(
    conn: AsyncConnection,
    *,
    user: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[Correction]:
    """Corrections (undone ones included), newest first, by ``user`` and from ``since`` on."""
    statement = select(corrections).order_by(corrections.c.id.desc()).limit(limit)
    if user is not None:
        statement = statement.where(corrections.c.user == user)
    if since is not None:
        statement = statement.where(corrections.c.created_at >= since)
    return [_correction(row) for row in await conn.execute(statement)]


async def revert_user(
    conn: AsyncConnection, user: str, *, since: datetime | None = None
) -> list[Correction]:
    """Undo every standing correction by ``user`` (from ``since`` on); returns them.

    Each affected ticket's training example is brought in line at once: the latest remaining
    human label wins again, or the example goes when none is left.
    """
    statement = select(corrections).where(
        corrections.c.user == user, corrections.c.undone_at.is_(None)
    )
    if since is not None:
        statement = statement.where(corrections.c.created_at >= since)
    undone = [_correction(row) for row in await conn.execute(statement.order_by(corrections.c.id))]
    if not undone:
        return []
    await conn.execute(
        update(corrections)
        .where(corrections.c.id.in_([c.id for c in undone]))
        .values(undone_at=utcnow())
    )
    for ticket_id in dict.fromkeys(c.ticket_id for c in undone):
        example = await example_for_ticket(conn, ticket_id)
        await sync_training_example(conn, ticket_id, example.text if example else "")
    return undone
