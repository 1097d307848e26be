"""Reading the stored training examples (corrections and other labelled tickets).

The bot writes these rows (one per ticket; the latest human label replaces the previous one);
the admin jobs read them. ``is_holdout_ticket`` is the one rule that decides which tickets are
held out of training for good, up to a cap (``holdout_cap``: once the holdout has that many
labelled tickets, every later label trains).

The holdout gates promotion, so labels must not be able to move it at once: whoever can
relabel tickets could otherwise relabel the held-out ones the same way as the training ones
and make a poisoned model look better. A held-out ticket therefore counts with the human label
that has stood for ``HOLDOUT_SETTLE`` (the latest correction at least that old and not undone):
a newer label changes the holdout only once it has stood that long, in which time
``triage corrections revert`` can undo it; a ticket whose first label is newer is in neither
set yet. Undoing a label (or reverting a person's labels) takes effect at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.label_precedence import standing_labels
from data.clock import as_utc
from data.db.corrections import corrections_where
from data.db.database import utcnow
from data.db.schema import tickets, training_examples

#: Share of labelled tickets held out of training to evaluate models on.
HOLDOUT_FRACTION = 0.2
#: How long a human label on a held-out ticket must stand before the holdout uses it.
#: A day, not a week: with a week, a team's first week had no team ticket in the holdout, and the
#: gate (then the starter test set alone) refused the models that had learnt the team's tickets
#: (bench/loop.py, light learner: right first time 53 % with a week, 77 % with a day).
HOLDOUT_SETTLE = timedelta(days=1)


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


async def list_training_examples(
    conn: AsyncConnection,
    *,
    now: datetime | None = None,
    settle: timedelta = HOLDOUT_SETTLE,
    holdout_cap: int | None = None,
) -> list[StoredExample]:
    """Every stored example, oldest change first (so "last wins" means "latest label wins").

    ``holdout`` is true when the row says so, or when the ticket falls in the fixed holdout and
    fewer than ``holdout_cap`` such tickets were stored before it (None: no cap). Once the
    holdout has ``holdout_cap`` labelled tickets every later label trains, so the gate keeps
    its tickets and training stops losing a fifth of what people teach. The order is the rows'
    creation order, which relabelling never changes; removing a held-out row (an undone
    correction) can move the next one into the holdout, which only makes the gate stricter.
    A held-out ticket's example carries its settled human label (see the module docstring) and
    is left out while it has none.
    """
    rows = list(
        await conn.execute(
            select(training_examples).order_by(
                training_examples.c.updated_at, training_examples.c.id
            )
        )
    )
    capped: set[int] = set()
    for row in sorted(rows, key=lambda r: int(r.id)):
        if holdout_cap is not None and len(capped) >= holdout_cap:
            break
        if row.ticket_id is not None and is_holdout_ticket(row.ticket_id):
            capped.add(int(row.id))
    settled, corrected = await _settled_labels(conn, (now or utcnow()) - settle)
    out: list[StoredExample] = []
    for row in rows:
        held = bool(row.holdout) or int(row.id) in capped
        label = row.label
        if held and row.ticket_id in corrected:
            if row.ticket_id not in settled:
                continue  # labelled too recently: in neither set yet
            label = settled[row.ticket_id]
        out.append(
            StoredExample(
                id=row.id,
                ticket_id=row.ticket_id,
                text=row.text,
                label=label,
                source=row.source,
                holdout=held,
                updated_at=row.updated_at,
            )
        )
    return out


async def _settled_labels(
    conn: AsyncConnection, cutoff: datetime
) -> tuple[dict[int, str], set[int]]:
    """(ticket -> its latest human label made by ``cutoff`` and not undone, every ticket that
    has a correction, undone or not)."""
    every = await corrections_where(conn)
    settled = standing_labels(c for c in every if as_utc(c.created_at) <= cutoff)
    return {ticket_id: c.to_label for ticket_id, c in settled.items()}, {c.ticket_id for c in every}


async def add_generated_examples(conn: AsyncConnection, examples: list[tuple[str, str]]) -> int:
    """Store synthetic (text, label) pairs so later retrains (and a resumed one) reuse them."""
    return await _add_examples(conn, examples, "generated", held_out=lambda _text: False)


async def _add_examples(
    conn: AsyncConnection,
    examples: list[tuple[str, str]],
    source: str,
    held_out: Callable[[str], bool],
) -> int:
    """Store (text, label) pairs that belong to no ticket; ``held_out`` decides the holdout."""
    if not examples:
        return 0
    now = utcnow()
    await conn.execute(
        training_examples.insert(),
        [
            {
                "text": text,
                "label": label,
                "source": source,
                "ticket_id": None,
                "holdout": held_out(text),
                "created_at": now,
                "updated_at": now,
            }
            for text, label in examples
        ],
    )
    return len(examples)


def is_holdout_text(text: str, fraction: float = HOLDOUT_FRACTION) -> bool:
    """Whether an imported ticket (no ticket id) is held out: a hash of its normalised text
    decides, so importing the same history twice holds out the same tickets."""
    key = " ".join(text.casefold().split())
    digest = hashlib.sha256(f"triage-holdout-text:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


async def add_imported_examples(conn: AsyncConnection, examples: list[tuple[str, str]]) -> int:
    """Store imported (text, label) pairs; about ``HOLDOUT_FRACTION`` of them are held out."""
    return await _add_examples(conn, examples, "imported", held_out=is_holdout_text)


async def recent_ticket_texts(conn: AsyncConnection, limit: int) -> list[str]:
    """The texts of the latest ``limit`` tickets outside the fixed holdout (newest first): what
    the bot has seen, labelled or not, for self-training (``classifier.taxonomy_learning``)."""
    rows = await conn.execute(
        select(tickets.c.id, tickets.c.text).order_by(tickets.c.id.desc()).limit(limit)
    )
    return [row.text for row in rows if not is_holdout_ticket(row.id)]
