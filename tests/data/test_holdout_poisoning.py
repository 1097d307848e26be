"""Corrections cannot move the holdout that gates promotion at once (#10, defect 4): a held-out
ticket counts with the human label that has stood for HOLDOUT_SETTLE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from admin.training_data import assemble_training_data
from classifier.taxonomy import Taxonomy
from data.db import corrections as corrections_repo
from data.db import tickets as tickets_repo
from data.db.database import Database
from data.db.training_set import (
    HOLDOUT_SETTLE,
    StoredExample,
    is_holdout_ticket,
    list_training_examples,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - HOLDOUT_SETTLE - timedelta(days=1)


async def _ticket(conn: AsyncConnection, n: int) -> int:
    ticket, _ = await tickets_repo.store_ticket(
        conn,
        tickets_repo.NewTicket(
            workspace="T1", channel="C1", ts=f"{n}.000100", user="U9", text=f"refund {n}"
        ),
    )
    return ticket.id


async def _label(
    conn: AsyncConnection, ticket_id: int, user: str, label: str, at: datetime
) -> None:
    await corrections_repo.record_correction(
        conn, ticket_id, user=user, from_label="", to_label=label, via="reaction", now=at
    )
    await corrections_repo.sync_training_example(conn, ticket_id, f"refund {ticket_id}")


async def _tickets(conn: AsyncConnection, count: int) -> tuple[int, int]:
    """(a held-out ticket id, a training ticket id) among ``count`` stored tickets."""
    ids = [await _ticket(conn, n) for n in range(1, count + 1)]
    return (
        next(i for i in ids if is_holdout_ticket(i)),
        next(i for i in ids if not is_holdout_ticket(i)),
    )


async def test_a_new_label_on_a_held_out_ticket_does_not_change_the_holdout(
    sqlite_url: str, taxonomy: Taxonomy
) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            held, trained = await _tickets(conn, 20)
            await _label(conn, held, "U0AGENT", "Billing", LONG_AGO)
            await _label(conn, trained, "U0AGENT", "Billing", LONG_AGO)
            before = await list_training_examples(conn, now=NOW)
            # An agent gone rogue relabels both the same way.
            await _label(conn, held, "U0MALLORY", "Technical", NOW)
            await _label(conn, trained, "U0MALLORY", "Technical", NOW)
            after = await list_training_examples(conn, now=NOW)
            later = await list_training_examples(conn, now=NOW + HOLDOUT_SETTLE)
    finally:
        await db.close()

    def split(stored: list[StoredExample]) -> tuple[dict[int | None, str], dict[int | None, str]]:
        return (
            {e.ticket_id: e.label for e in stored if e.holdout},
            {e.ticket_id: e.label for e in stored if not e.holdout},
        )

    assert split(before) == ({held: "Billing"}, {trained: "Billing"})
    # Training sees the newest label at once; the holdout keeps the label that stood.
    assert split(after) == ({held: "Billing"}, {trained: "Technical"})
    data_before = assemble_training_data(taxonomy, starter_train=(), starter_test=(), stored=before)
    data_after = assemble_training_data(taxonomy, starter_train=(), starter_test=(), stored=after)
    assert data_after.holdout_hash == data_before.holdout_hash
    # Unreverted for HOLDOUT_SETTLE, the new label is the ticket's label in the holdout too.
    assert split(later) == ({held: "Technical"}, {trained: "Technical"})


async def test_a_fresh_label_enters_the_holdout_only_once_it_has_stood(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            held, _trained = await _tickets(conn, 20)
            await _label(conn, held, "U0AGENT", "Billing", NOW)
            now = await list_training_examples(conn, now=NOW)
            settled = await list_training_examples(conn, now=NOW + HOLDOUT_SETTLE)
            # Undone (a person's revert) takes effect at once.
            await corrections_repo.undo_correction(
                conn, held, user="U0AGENT", to_label="Billing", via="reaction"
            )
            await corrections_repo.sync_training_example(conn, held, f"refund {held}")
            undone = await list_training_examples(conn, now=NOW + HOLDOUT_SETTLE)
    finally:
        await db.close()
    assert [e.ticket_id for e in now] == []  # in neither set while fresh
    assert [(e.ticket_id, e.label, e.holdout) for e in settled] == [(held, "Billing", True)]
    assert undone == []
