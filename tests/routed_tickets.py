"""A ticket stored as the bot leaves it once routed: a ``routed`` row and its card's routing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.routings import CARD, record_routing
from data.db.schema import tickets


async def routed_ticket(
    conn: AsyncConnection,
    n: int,
    label: str,
    *,
    at: datetime,
    text: str | None = None,
    channel: str | None = None,
    status: str = "routed",
) -> int:
    """Store ticket ``n`` (ts ``n.0``) routed to ``label`` at ``at``, its card in ``channel``
    (default ``C0<label>``); ``text`` defaults to one naming ``n`` and ``label``."""
    result = await conn.execute(
        tickets.insert()
        .values(
            workspace="T1",
            channel="C1",
            ts=f"{n}.0",
            user="U9",
            text=text if text is not None else f"ticket {n} about {label}",
            status=status,
            attempts=1,
            created_at=at,
            updated_at=at,
        )
        .returning(tickets.c.id)
    )
    ticket_id = int(result.scalar_one())
    await record_routing(
        conn, ticket_id, kind=CARD, label=label, channel=channel or f"C0{label}", ts=f"{n}.1"
    )
    return ticket_id
