"""How the bot's answers turned out: each recent ticket's confidence and whether it was right.

Right means the ticket's final label (``classifier.label_precedence``: its human label, else the
model's) is the one the model gave.
Only tickets older than ``settled_before`` count, so people have had time to correct them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.label_precedence import final_label
from data.db.corrections import human_labels
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
    human = await human_labels(conn, corrections.c.ticket_id.in_(ids))
    return [
        (confidence, final_label(label, human.get(t)) == label)
        for t in ids
        for label, confidence in [latest[t]]
    ]
