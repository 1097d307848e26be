"""The ticket, routing and correction repositories, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.protocols import Prediction
from data.db import corrections, routings
from data.db import tickets as repo
from data.db.database import Database, utcnow

HOUR = timedelta(hours=1)
NEW = repo.NewTicket(workspace="T1", channel="C1", ts="100.000001", user="U1", text="help")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database of each kind (``database_url``)."""
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


async def test_a_retried_event_stores_the_ticket_once(db: Database) -> None:
    async with db.transaction() as conn:
        first, created = await repo.store_ticket(conn, NEW)
    async with db.transaction() as conn:
        again, created_again = await repo.store_ticket(conn, NEW)
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert first.status == repo.RECEIVED
    async with db.transaction() as conn:
        assert await repo.count_by_status(conn) == {"received": 1}


async def test_unfinished_tickets_are_those_not_routed(db: Database) -> None:
    async with db.transaction() as conn:
        a, _ = await repo.store_ticket(conn, NEW)
        b, _ = await repo.store_ticket(conn, repo.NewTicket("T1", "C1", "101.0", "U1", "x"))
        c, _ = await repo.store_ticket(conn, repo.NewTicket("T1", "C1", "102.0", "U1", "y"))
        await repo.set_status(conn, b.id, repo.ROUTED)
        await repo.set_status(conn, c.id, repo.CLASSIFIED, count_attempt=True)
    async with db.transaction() as conn:
        assert await repo.unfinished_tickets(conn) == [a.id, c.id]
        assert (await repo.get_ticket(conn, c.id)).attempts == 1
        with pytest.raises(repo.TicketNotFoundError):
            await repo.get_ticket(conn, 999)


async def test_predictions_keep_their_ranking(db: Database) -> None:
    async with db.transaction() as conn:
        ticket, _ = await repo.store_ticket(conn, NEW)
        assert await repo.latest_prediction(conn, ticket.id) is None
        await repo.save_prediction(
            conn,
            ticket.id,
            Prediction(
                "Billing", 0.7, (("Billing", 0.7), ("Account", 0.2), ("Other", 0.1)), "m1", 3.5
            ),
        )
        stored = await repo.latest_prediction(conn, ticket.id)
    assert stored is not None
    assert (stored.label, stored.model_id, stored.latency_ms) == ("Billing", "m1", 3.5)
    assert stored.runner_ups == (("Account", 0.2), ("Other", 0.1))


async def test_edit_requeues_the_ticket(db: Database) -> None:
    async with db.transaction() as conn:
        ticket, _ = await repo.store_ticket(conn, NEW)
        await repo.set_status(conn, ticket.id, repo.ROUTED)
        await repo.edit_text(conn, ticket.id, "new text")
        edited = await repo.get_ticket(conn, ticket.id)
    assert (edited.text, edited.status) == ("new text", repo.RECEIVED)
    assert edited.edited_at is not None


async def test_routings_find_the_ticket_of_a_card(db: Database) -> None:
    async with db.transaction() as conn:
        ticket, _ = await repo.store_ticket(conn, NEW)
        card = await routings.record_routing(
            conn, ticket.id, kind=routings.CARD, label="Billing", channel="CB", ts="5.5"
        )
        await routings.mark_removed(conn, card)
        recorded = await routings.routings_for(conn, ticket.id)
        assert await routings.ticket_id_for_card(conn, "CB", "5.5") == ticket.id
        assert await routings.ticket_id_for_card(conn, "CB", "6.6") is None
        # What a reaction or button is about: the ticket's own message, or its card.
        assert [
            found.id if (found := await routings.ticket_at(conn, channel, ts)) else None
            for channel, ts in (("C1", NEW.ts), ("CB", "5.5"), ("CB", "6.6"), ("C1", "7.7"))
        ] == [ticket.id, ticket.id, None, None]
    assert [(r.kind, r.active) for r in recorded] == [("card", False)]


async def test_latest_human_label_wins_and_undo_reverts_the_example(db: Database) -> None:
    async with db.transaction() as conn:
        ticket, _ = await repo.store_ticket(conn, NEW)
        await corrections.record_correction(
            conn, ticket.id, user="U2", from_label="Technical", to_label="Billing", via="reaction"
        )
        assert await corrections.sync_training_example(conn, ticket.id, "help") == "Billing"
        await corrections.record_correction(
            conn, ticket.id, user="U3", from_label="Billing", to_label="Account", via="button"
        )
        assert await corrections.sync_training_example(conn, ticket.id, "help") == "Account"
        example = await corrections.example_for_ticket(conn, ticket.id)
        assert example is not None
        assert (example.label, example.source) == ("Account", "correction")

        # U3 cannot undo U2's reaction; U2 undoing theirs leaves U3's label standing.
        assert (
            await corrections.undo_correction(
                conn, ticket.id, user="U3", to_label="Billing", via="reaction"
            )
            is None
        )
        await corrections.undo_correction(
            conn, ticket.id, user="U2", to_label="Billing", via="reaction"
        )
        assert await corrections.sync_training_example(conn, ticket.id, "help") == "Account"

        await corrections.record_correction(
            conn, ticket.id, user="U2", from_label="Account", to_label="Product", via="reaction"
        )
        await corrections.undo_correction(
            conn, ticket.id, user="U2", to_label="Product", via="reaction"
        )
        assert await corrections.sync_training_example(conn, ticket.id, "help") == "Account"
        current = await corrections.current_correction(conn, ticket.id)
        assert current is not None
        assert current.user == "U3"
        assert len(await corrections.corrections_for(conn, ticket.id)) == 3


async def test_undoing_the_only_correction_removes_the_example(db: Database) -> None:
    async with db.transaction() as conn:
        ticket, _ = await repo.store_ticket(conn, NEW)
        await corrections.record_correction(
            conn, ticket.id, user="U2", from_label="Technical", to_label="Billing", via="reaction"
        )
        await corrections.sync_training_example(conn, ticket.id, "help")
        await corrections.undo_correction(
            conn, ticket.id, user="U2", to_label="Billing", via="reaction"
        )
        assert await corrections.sync_training_example(conn, ticket.id, "help") is None
        assert await corrections.example_for_ticket(conn, ticket.id) is None


async def _store(conn: AsyncConnection, n: int, *, status: str, text: str = "help") -> int:
    ticket, _ = await repo.store_ticket(conn, repo.NewTicket("T1", "C1", f"{n}.0", "U1", text))
    await repo.set_status(conn, ticket.id, status, count_attempt=status == repo.FAILED)
    return ticket.id


def _prediction(label: str) -> Prediction:
    return Prediction(label, 0.9, ((label, 0.9),), "m1", 1.0)


async def test_list_shows_the_newest_tickets_with_their_latest_label(db: Database) -> None:
    async with db.transaction() as conn:
        routed = await _store(conn, 1, status=repo.ROUTED)
        failed = await _store(conn, 2, status=repo.FAILED, text="refund please")
        fresh = await _store(conn, 3, status=repo.RECEIVED)
        await repo.save_prediction(conn, routed, _prediction("Technical"))
        await repo.save_prediction(conn, failed, _prediction("Technical"))
        await repo.save_prediction(conn, failed, _prediction("Billing"))  # the latest counts
    async with db.transaction() as conn:
        everything = await repo.list_tickets(conn)
        only_failed = await repo.list_tickets(conn, status=repo.FAILED)
        newest = await repo.list_tickets(conn, limit=1)
        assert await repo.count_in_status(conn, repo.FAILED) == 1
    assert [(s.ticket.id, s.label) for s in everything] == [
        (fresh, None),
        (failed, "Billing"),
        (routed, "Technical"),
    ]
    (summary,) = only_failed
    assert (summary.ticket.id, summary.ticket.status, summary.ticket.attempts) == (
        failed,
        "failed",
        1,
    )
    assert summary.ticket.text == "refund please"
    assert [s.ticket.id for s in newest] == [fresh]


async def test_requeue_takes_only_failed_tickets_and_names_the_others(db: Database) -> None:
    async with db.transaction() as conn:
        failed = await _store(conn, 1, status=repo.FAILED)
        other_failed = await _store(conn, 2, status=repo.FAILED)
        routed = await _store(conn, 3, status=repo.ROUTED)
    async with db.transaction() as conn:
        result = await repo.requeue_failed(conn, [routed, failed, 999])
    assert result.requeued == (failed,)
    assert result.refused == {routed: "routed", 999: None}
    async with db.transaction() as conn:
        ticket = await repo.get_ticket(conn, failed)
        assert (ticket.status, ticket.attempts) == ("requeued", 0)
        assert (await repo.get_ticket(conn, other_failed)).status == "failed"
        # Asking again: it is requeued now, not failed, so nothing changes.
        again = await repo.requeue_failed(conn, [failed])
        assert (again.requeued, again.refused) == ((), {failed: "requeued"})
        # Every failed ticket at once; requeued tickets are not "unfinished" until claimed.
        everything = await repo.requeue_failed(conn)
        assert (everything.requeued, everything.refused) == ((other_failed,), {})
        assert await repo.unfinished_tickets(conn) == []


async def test_a_claim_moves_requeued_tickets_back_to_where_the_router_resumes(
    db: Database,
) -> None:
    async with db.transaction() as conn:
        classified = await _store(conn, 1, status=repo.FAILED)
        await repo.save_prediction(conn, classified, _prediction("Billing"))
        never_classified = await _store(conn, 2, status=repo.FAILED)
        untouched = await _store(conn, 3, status=repo.FAILED)
        await repo.requeue_failed(conn, [classified, never_classified])
    async with db.transaction() as conn:
        assert await repo.claim_requeued(conn) == [classified, never_classified]
        assert await repo.claim_requeued(conn) == []  # taken once only
        assert (await repo.get_ticket(conn, classified)).status == "classified"
        assert (await repo.get_ticket(conn, never_classified)).status == "received"
        assert (await repo.get_ticket(conn, untouched)).status == "failed"
        assert await repo.unfinished_tickets(conn) == [classified, never_classified]


async def test_racing_claimers_on_separate_engines_never_take_a_ticket_twice(
    db: Database,
) -> None:
    async with db.transaction() as conn:
        ids = [await _store(conn, n, status=repo.FAILED) for n in range(60)]
        await repo.requeue_failed(conn)
    # Three "replicas", each with its own engine (own connection pool), claim in small batches
    # until nothing is left.
    replicas = [db, Database(db.url), Database(db.url)]

    async def claimer(replica: Database) -> list[int]:
        taken: list[int] = []
        while True:
            async with replica.transaction() as conn:
                batch = await repo.claim_requeued(conn, limit=4)
            if not batch:
                return taken
            taken.extend(batch)
            await asyncio.sleep(0)

    try:
        async with asyncio.timeout(30):
            results = await asyncio.gather(*(claimer(r) for r in replicas * 2))
    finally:
        for replica in replicas[1:]:
            await replica.close()
    claimed = [ticket_id for taken in results for ticket_id in taken]
    assert sorted(claimed) == ids  # every ticket claimed, none twice
    async with db.transaction() as conn:
        assert await repo.count_by_status(conn) == {"received": 60}


async def test_a_lease_goes_to_one_process_until_it_runs_out_or_is_given_up(db: Database) -> None:
    now = utcnow()
    async with db.transaction() as conn:
        ticket, _ = await repo.store_ticket(conn, NEW, owner="a", lease_until=now + HOUR)
        assert (ticket.owner, ticket.lease_until) == ("a", now + HOUR)
        assert not await repo.claim_ticket(conn, ticket.id, "b", now + HOUR)
        assert await repo.claim_ticket(conn, ticket.id, "a", now + 2 * HOUR)  # renewed
        assert await repo.claim_unfinished(conn, "b", now + HOUR) == []
        await repo.release_ticket(conn, ticket.id, "b")  # not b's: nothing happens
        assert not await repo.claim_ticket(conn, ticket.id, "b", now + HOUR)
        assert await repo.release_unfinished(conn, "a") == 1
        assert await repo.claim_ticket(conn, ticket.id, "b", now + HOUR)
        stored = await repo.get_ticket(conn, ticket.id)
        assert (stored.owner, stored.lease_until) == ("b", now + HOUR)


async def test_unfinished_tickets_whose_lease_ran_out_are_taken_over(db: Database) -> None:
    now = utcnow()
    async with db.transaction() as conn:
        held, _ = await repo.store_ticket(conn, NEW, owner="a", lease_until=now + HOUR)
        ran_out, _ = await repo.store_ticket(
            conn, repo.NewTicket("T1", "C1", "101.0", "U1", "x"), owner="a", lease_until=now - HOUR
        )
        mine, _ = await repo.store_ticket(
            conn, repo.NewTicket("T1", "C1", "102.0", "U1", "y"), owner="b", lease_until=now - HOUR
        )
        unleased, _ = await repo.store_ticket(conn, repo.NewTicket("T1", "C1", "103.0", "U1", "z"))
        done, _ = await repo.store_ticket(
            conn, repo.NewTicket("T1", "C1", "104.0", "U1", "w"), owner="a", lease_until=now - HOUR
        )
        await repo.set_status(conn, done.id, repo.ROUTED, release=True)
        # A running process leaves its own tickets alone (it has them in hand) ...
        taken = await repo.claim_unfinished(conn, "b", now + HOUR, others_only=True)
        assert taken == [ran_out.id, unleased.id]
        # ... a restarted one takes them back.
        assert await repo.claim_unfinished(conn, "b", now + HOUR) == [
            ran_out.id,
            mine.id,
            unleased.id,
        ]
        assert (await repo.get_ticket(conn, held.id)).owner == "a"
        assert (await repo.get_ticket(conn, done.id)).lease_until is None


async def test_racing_processes_never_both_take_a_lease(db: Database) -> None:
    past = utcnow() - HOUR
    async with db.transaction() as conn:
        ids = [
            (
                await repo.store_ticket(
                    conn,
                    repo.NewTicket("T1", "C1", f"{n}.0", "U1", "x"),
                    owner="dead",
                    lease_until=past,
                )
            )[0].id
            for n in range(40)
        ]
    replicas = [db, Database(db.url), Database(db.url)]

    async def take(replica: Database, owner: str) -> list[int]:
        taken: list[int] = []
        for ticket_id in ids:
            async with replica.transaction() as conn:
                if await repo.claim_ticket(conn, ticket_id, owner, utcnow() + HOUR):
                    taken.append(ticket_id)
            await asyncio.sleep(0)
        return taken

    try:
        async with asyncio.timeout(30):
            results = await asyncio.gather(*(take(r, f"p{n}") for n, r in enumerate(replicas * 2)))
    finally:
        for replica in replicas[1:]:
            await replica.close()
    assert sorted(t for taken in results for t in taken) == ids  # each taken by one process
