"""Confirmed tickets: routed to a department, not corrected in time, labelled where they went."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.database import Database
from data.db.routings import CARD, mark_removed, record_routing, routings_for
from data.db.schema import corrections, training_examples
from data.db.training_set import confirmed_examples, is_holdout_ticket, list_training_examples
from tests.routed_tickets import routed_ticket

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CUTOFF = T0 + timedelta(hours=1)
TRIAGE = "C0TRIAGE"


async def _routed(
    conn: AsyncConnection,
    n: int,
    label: str,
    *,
    channel: str | None = None,
    status: str = "routed",
    at: datetime = T0,
) -> int:
    return await routed_ticket(conn, n, label, at=at, channel=channel, status=status)


async def test_only_routed_uncorrected_department_cards_before_the_cutoff_count(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            kept = await _routed(conn, 1, "Billing")
            await _routed(conn, 2, "Billing", at=CUTOFF + timedelta(minutes=1))  # too recent
            await _routed(conn, 3, "Technical", channel=TRIAGE)  # a question, not an answer
            await _routed(conn, 4, "Account", status="failed")  # never carded for good
            removed = await _routed(conn, 5, "Product")
            corrected = await _routed(conn, 6, "Billing")
            moved = await _routed(conn, 7, "Billing")
            # A card taken down (e.g. the ticket was deleted) is no answer either.
            for routing in await routings_for(conn, removed):
                await mark_removed(conn, routing.id)
            # Even an undone correction means someone doubted the ticket: not confirmed.
            await conn.execute(
                corrections.insert().values(
                    ticket_id=corrected,
                    user="U2",
                    from_label="Billing",
                    to_label="Account",
                    via="reaction",
                    created_at=T0,
                    undone_at=T0 + timedelta(minutes=1),
                )
            )
            # The bot moved the card later (a newer model): the newest card is the label.
            for routing in await routings_for(conn, moved):
                await mark_removed(conn, routing.id)
            await record_routing(conn, moved, kind=CARD, label="Product", channel="C0P", ts="9.1")
            found = await confirmed_examples(conn, before=CUTOFF, exclude_channels=[TRIAGE])
            unfiltered = await confirmed_examples(conn, before=CUTOFF)
        assert [(e.ticket_id, e.label, e.source) for e in found] == [
            (kept, "Billing", "ticket"),
            (moved, "Product", "ticket"),
        ]
        assert {e.ticket_id for e in unfiltered} == {kept, moved, 3}
        assert found[0].text == "ticket 1 about Billing"
    finally:
        await db.close()


async def test_only_tickets_from_a_moment_on_are_read_when_asked(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            await _routed(conn, 1, "Billing", at=T0 - timedelta(minutes=5))
            since = await _routed(conn, 2, "Account", at=T0)
            later = await _routed(conn, 3, "Product", at=T0 + timedelta(minutes=5))
            found = await confirmed_examples(conn, before=CUTOFF, after=T0)
        assert [e.ticket_id for e in found] == [since, later]
    finally:
        await db.close()


async def test_confirmed_tickets_join_the_holdout_up_to_the_cap_in_arrival_order(
    sqlite_url: str,
) -> None:
    held = [i for i in range(1, 300) if is_holdout_ticket(i)][:3]
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            for n in range(1, max(held) + 1):
                await _routed(conn, n, "Billing")
            # The second held-out ticket was corrected (a correction row), the others confirmed.
            await conn.execute(
                training_examples.insert().values(
                    text=f"ticket {held[1]} about Billing",
                    label="Account",
                    source="correction",
                    ticket_id=held[1],
                    holdout=False,
                    created_at=T0,
                    updated_at=T0,
                )
            )
            await conn.execute(
                corrections.insert().values(
                    ticket_id=held[1],
                    user="U2",
                    from_label="Billing",
                    to_label="Account",
                    via="reaction",
                    created_at=T0,
                )
            )
            now = T0 + timedelta(days=2)  # the correction has settled
            stored = await list_training_examples(
                conn, now=now, holdout_cap=2, confirmed_before=CUTOFF
            )
            without = await list_training_examples(conn, now=now, holdout_cap=2)
            # Two hours on, neither held-out ticket has settled: corrected or not, both wait.
            young = await list_training_examples(
                conn, now=T0 + timedelta(hours=2), holdout_cap=2, confirmed_before=CUTOFF
            )
        by_ticket = {e.ticket_id: e for e in stored}
        assert len(stored) == max(held)  # every ticket once: the corrected one as a correction
        assert (by_ticket[held[1]].source, by_ticket[held[1]].label) == ("correction", "Account")
        assert {t for t, e in by_ticket.items() if e.holdout} == {held[0], held[1]}
        assert by_ticket[held[2]].holdout is False  # the cap was reached: it trains
        assert {e.ticket_id for e in young} == set(by_ticket) - {held[0], held[1]}
        assert not any(e.holdout for e in young)
        # Without confirmed tickets only the correction is there, and it is held out.
        assert [(e.ticket_id, e.holdout) for e in without] == [(held[1], True)]
    finally:
        await db.close()
