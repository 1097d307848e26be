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

Confirmed tickets (``confirmed_before``) are labelled examples too: a ticket the bot routed to
a department's channel that nobody corrected by then is labelled where it went (source
``ticket``). They give the team's own ticket mix from the first day, not only its mistakes:
in the holdout, the gate then compares models on tickets like the ones they will route
(corrections alone are exactly the active model's errors); in training, the model learns
what the team's tickets look like, not only where it was wrong (bench/loop.py). A held-out
ticket counts only once it is as old as a held-out label must be (``HOLDOUT_SETTLE``), whether
it was corrected or not, so the holdout is a fair sample of the team's tickets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.label_precedence import standing_labels
from data.clock import as_utc
from data.db.corrections import corrections_where
from data.db.database import utcnow
from data.db.routings import CARD
from data.db.schema import corrections, routings, tickets, training_examples
from data.db.tickets import ROUTED

#: Share of labelled tickets held out of training to evaluate models on.
HOLDOUT_FRACTION = 0.2
#: How long a human label on a held-out ticket must stand before the holdout uses it.
#: A day, not a week: with a week, a team's first week had no team ticket in the holdout, and the
#: gate (then the starter test set alone) refused the models that had learnt the team's tickets
#: (bench/loop.py, light learner: right first time 53 % with a week, 77 % with a day).
HOLDOUT_SETTLE = timedelta(days=1)
#: Most confirmed tickets read (the newest): bounds a retrain's reading and training time.
CONFIRMED_LIMIT = 20_000


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
    confirmed_before: datetime | None = None,
    exclude_channels: Collection[str] = (),
) -> list[StoredExample]:
    """Every stored example, oldest change first (so "last wins" means "latest label wins"),
    then, with ``confirmed_before``, the confirmed tickets (see ``confirmed_examples``).

    ``holdout`` is true when the row says so, or when the ticket falls in the fixed holdout and
    fewer than ``holdout_cap`` such tickets came before it (None: no cap). Once the holdout has
    ``holdout_cap`` labelled tickets every later label trains, so the gate keeps its tickets
    and training stops losing a fifth of what people teach. The order is the tickets' arrival
    (their ids), which relabelling never changes; removing a held-out label (an undone
    correction) can move the next ticket into the holdout, which only makes the gate stricter.
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
    confirmed: list[StoredExample] = []
    if confirmed_before is not None:
        confirmed = await confirmed_examples(
            conn, before=confirmed_before, exclude_channels=exclude_channels
        )
    ticket_ids = sorted(
        {int(r.ticket_id) for r in rows if r.ticket_id is not None}
        | {int(e.ticket_id) for e in confirmed if e.ticket_id is not None}
    )
    capped: set[int] = set()
    for ticket_id in ticket_ids:
        if holdout_cap is not None and len(capped) >= holdout_cap:
            break
        if is_holdout_ticket(ticket_id):
            capped.add(ticket_id)
    cutoff = (now or utcnow()) - settle
    settled, corrected = await _settled_labels(conn, cutoff)
    out: list[StoredExample] = []
    for row in rows:
        held = bool(row.holdout) or row.ticket_id in capped
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
    for example in confirmed:
        held = example.ticket_id in capped
        if held and as_utc(example.updated_at) > cutoff:
            # A held-out ticket counts once its outcome has settled either way: a corrected one
            # waits ``settle`` for its label, so an uncorrected one waits as long, or the
            # holdout would hold the active model's successes before its mistakes.
            continue
        out.append(replace(example, holdout=held))
    return out


async def confirmed_examples(
    conn: AsyncConnection,
    *,
    before: datetime,
    exclude_channels: Collection[str] = (),
    limit: int = CONFIRMED_LIMIT,
    after: datetime | None = None,
) -> list[StoredExample]:
    """The newest ``limit`` tickets routed before ``before`` (and at or after ``after``, when
    given) that nobody corrected, labelled with the department whose channel has their card
    (oldest first; ``id`` is 0: no row).

    A ticket counts only if its status is routed, its card is still up and not in one of
    ``exclude_channels`` (the triage channel: a card there is a question, not an answer), and
    it has no correction at all (an undone one included: someone doubted it).
    """
    latest_card = (
        select(routings.c.ticket_id, func.max(routings.c.id).label("card_id"))
        .where(routings.c.kind == CARD)
        .group_by(routings.c.ticket_id)
        .subquery()
    )
    query = (
        select(tickets.c.id, tickets.c.text, tickets.c.created_at, routings.c.label)
        .join(latest_card, latest_card.c.ticket_id == tickets.c.id)
        .join(routings, routings.c.id == latest_card.c.card_id)
        .where(
            tickets.c.status == ROUTED,
            tickets.c.created_at < before,
            routings.c.removed_at.is_(None),
            ~exists().where(and_(corrections.c.ticket_id == tickets.c.id)),
        )
        .order_by(tickets.c.id.desc())
        .limit(limit)
    )
    if exclude_channels:
        query = query.where(routings.c.channel.notin_(list(exclude_channels)))
    if after is not None:
        query = query.where(tickets.c.created_at >= after)
    rows = list(await conn.execute(query))
    return [
        StoredExample(
            id=0,
            ticket_id=int(row.id),
            text=row.text,
            label=row.label,
            source="ticket",
            holdout=False,
            updated_at=row.created_at,
        )
        for row in reversed(rows)
    ]


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
