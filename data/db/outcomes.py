"""How the bot's answers turned out: each recent ticket's confidence and whether it was right.

Right means no person moved the ticket, or the standing human label is the one the model gave.
Only tickets older than ``settled_before`` count, so people have had time to correct them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.schema import corrections, predictions, tickets


async def recent_outcomes(
    conn: AsyncConnection, *, settled_before: datetime, limit: int = 2_000
) -> list[tuple[float, bool]]:
    """(confidence of the ticket's latest prediction, was it right) for the newest ``limit``
    tickets created before ``settled_before``."""
    rows = list(
        await conn.execute(
            select(predictions.c.ticket_id, predictions.c.label, predictions.c.confidence)
            .join(tickets, tickets.c.id == predictions.c.ticket_id)
            .where(tickets.c.created_at < settled_before)
            .order_by(predictions.c.id.desc())
            .limit(limit * 2)
        )
    )
    latest: dict[int, tuple[str, float]] = {}
    for ticket_id, label, confidence in rows:
        latest.setdefault(int(ticket_id), (str(label), float(confidence)))
    ids = list(latest)[:limit]
    if not ids:
        return []
    human: dict[int, str] = {}
    for ticket_id, to_label in await conn.execute(
        select(corrections.c.ticket_id, corrections.c.to_label)
        .where(corrections.c.ticket_id.in_(ids), corrections.c.undone_at.is_(None))
        .order_by(corrections.c.id)
    ):
        human[int(ticket_id)] = str(to_label)  # the latest standing label wins
    return [(latest[t][1], human.get(t, latest[t][0]) == latest[t][0]) for t in ids]
