"""Bulk-seeds routed tickets into the desk for the timer and figures benchmarks.

Writes what routing and the desk would have written (a ticket, its card in ``routings``, its
``ticket_states`` row; optionally a first response, an owner, a resolution, a correction) in
large batches through SQLAlchemy Core, so 100,000 tickets take seconds, not the hours routing
them one by one through Slack would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from data.db.database import Database
from data.db.schema import corrections, routings, ticket_states, tickets

BATCH = 2_000


@dataclass(frozen=True)
class SeedTicket:
    """One ticket to seed."""

    department: str
    channel: str
    opened_at: datetime
    first_response_at: datetime | None = None
    assignee: str | None = None
    resolved_at: datetime | None = None
    corrected_from: str | None = None


async def seed(db: Database, rows: Sequence[SeedTicket], *, first_id: int = 1) -> list[int]:
    """Insert ``rows``; returns their ticket ids (``first_id`` on, consecutive)."""
    ids = []
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        ticket_rows, card_rows, state_rows, correction_rows = [], [], [], []
        for offset, row in enumerate(chunk):
            ticket_id = first_id + start + offset
            ids.append(ticket_id)
            ts = f"{1_700_000_000 + ticket_id}.000100"
            ticket_rows.append(
                {
                    "id": ticket_id,
                    "workspace": "T0BENCH",
                    "channel": "C0SUPPORT",
                    "ts": ts,
                    "user": "U0REQUESTER",
                    "text": "seeded ticket",
                    "status": "routed",
                    "attempts": 1,
                    "created_at": row.opened_at,
                    "updated_at": row.opened_at,
                }
            )
            card_rows.append(
                {
                    "ticket_id": ticket_id,
                    "kind": "card",
                    "label": row.department,
                    "channel": row.channel,
                    "ts": f"{1_700_000_000 + ticket_id}.000200",
                    "created_at": row.opened_at,
                }
            )
            status = "open"
            if row.resolved_at is not None:
                status = "resolved"
            elif row.assignee is not None:
                status = "in_progress"
            state_rows.append(
                {
                    "ticket_id": ticket_id,
                    "department": row.department,
                    "status": status,
                    "assignee": row.assignee,
                    "opened_at": row.opened_at,
                    "permalink": f"https://bench.slack.com/archives/C0SUPPORT/p{ticket_id}",
                    "taken_at": row.opened_at if row.assignee else None,
                    "first_response_at": row.first_response_at,
                    "first_responder": row.assignee if row.first_response_at else None,
                    "resolved_at": row.resolved_at,
                    "updated_at": row.opened_at,
                    "version": 1,
                }
            )
            if row.corrected_from is not None:
                correction_rows.append(
                    {
                        "ticket_id": ticket_id,
                        "user": "U0AGENT",
                        "from_label": row.corrected_from,
                        "to_label": row.department,
                        "via": "reaction",
                        "created_at": row.opened_at,
                    }
                )
        async with db.transaction() as conn:
            await conn.execute(tickets.insert(), ticket_rows)
            await conn.execute(routings.insert(), card_rows)
            await conn.execute(ticket_states.insert(), state_rows)
            if correction_rows:
                await conn.execute(corrections.insert(), correction_rows)
    return ids
