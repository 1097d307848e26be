"""Reading the stored training examples (corrections and other labelled tickets).

The bot writes these rows (one per ticket; the latest human label replaces the previous one);
the admin jobs read them. ``is_holdout_ticket`` is the one rule that decides which tickets are
held out of training for good.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.database import utcnow
from data.db.schema import training_examples

#: Share of labelled tickets held out of training to evaluate models on.
HOLDOUT_FRACTION = 0.2


def is_holdout_ticket(ticket_id: int, fraction: float = HOLDOUT_FRACTION) -> bool:
    """Whether ticket ``ticket_id`` belongs to the fixed held-out set.

    A hash of the id decides, so the answer never changes between runs, processes, machines or
    relabellings, and a ticket in the holdout never enters training.
    """
    digest = hashlib.sha256(f"triage-holdout:{ticket_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


@dataclass(frozen=True)
class StoredExample:
    """A labelled example as stored (``ticket_id`` None for examples not from a ticket)."""

    id: int
    ticket_id: int | None
    text: str
    label: str
    source: str
    holdout: bool
    updated_at: datetime


async def list_training_examples(conn: AsyncConnection) -> list[StoredExample]:
    """Every stored example, oldest change first (so "last wins" means "latest label wins").

    ``holdout`` is true when the row says so or the ticket falls in the fixed holdout.
    """
    rows = await conn.execute(
        select(training_examples).order_by(training_examples.c.updated_at, training_examples.c.id)
    )
    return [
        StoredExample(
            id=row.id,
            ticket_id=row.ticket_id,
            text=row.text,
            label=row.label,
            source=row.source,
            holdout=bool(row.holdout)
            or (row.ticket_id is not None and is_holdout_ticket(row.ticket_id)),
            updated_at=row.updated_at,
        )
        for row in rows
    ]


async def add_generated_examples(conn: AsyncConnection, examples: list[tuple[str, str]]) -> int:
    """Store synthetic (text, label) pairs so later retrains (and a resumed one) reuse them."""
    if not examples:
        return 0
    now = utcnow()
    await conn.execute(
        training_examples.insert(),
        [
            {
                "text": text,
                "label": label,
                "source": "generated",
                "ticket_id": None,
                "holdout": False,
                "created_at": now,
                "updated_at": now,
            }
            for text, label in examples
        ],
    )
    return len(examples)
