"""The recent corrected tickets, for routing near-duplicates by their human label at once.

Reads the ``correction`` training examples (one per ticket, already redacted, always the
ticket's current human label) with the person who gave that label. ``changed_since`` returns
what changed after a moment, so a reader can keep its own copy up to date cheaply;
``standing_ticket_ids`` says which are still there (an undone correction removes its row).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.examples import Source
from data.db.corrections import human_labels
from data.db.schema import corrections, training_examples


@dataclass(frozen=True)
class RecentCorrection:
    """A corrected ticket: its stored text, its human label, who gave it, and when."""

    ticket_id: int
    text: str
    label: str
    corrected_by: str
    updated_at: datetime


async def changed_since(
    conn: AsyncConnection, since: datetime | None, limit: int
) -> list[RecentCorrection]:
    """Corrected tickets whose label changed after ``since`` (all when None), oldest first;
    at most the ``limit`` most recent."""
    query = select(
        training_examples.c.ticket_id,
        training_examples.c.text,
        training_examples.c.label,
        training_examples.c.updated_at,
    ).where(
        training_examples.c.source == Source.CORRECTION.value,
        training_examples.c.ticket_id.is_not(None),
    )
    if since is not None:
        query = query.where(training_examples.c.updated_at > since)
    query = query.order_by(
        training_examples.c.updated_at.desc(), training_examples.c.id.desc()
    ).limit(limit)
    rows = list(await conn.execute(query))
    if not rows:
        return []
    ids = [int(row.ticket_id) for row in rows]
    who = {
        ticket_id: label.user
        for ticket_id, label in (await human_labels(conn, corrections.c.ticket_id.in_(ids))).items()
    }
    return [
        RecentCorrection(
            ticket_id=int(row.ticket_id),
            text=row.text,
            label=row.label,
            corrected_by=who.get(int(row.ticket_id), ""),
            updated_at=row.updated_at,
        )
        for row in reversed(rows)
    ]


async def standing_ticket_ids(conn: AsyncConnection, ticket_ids: list[int]) -> set[int]:
    """Which of ``ticket_ids`` still have a correction example."""
    if not ticket_ids:
        return set()
    rows = await conn.execute(
        select(training_examples.c.ticket_id).where(
            training_examples.c.ticket_id.in_(ticket_ids),
            training_examples.c.source == Source.CORRECTION.value,
        )
    )
    return {int(row.ticket_id) for row in rows}
