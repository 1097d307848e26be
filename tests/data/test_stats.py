from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from data.db import stats
from data.db.database import Database
from data.db.schema import corrections, predictions, tickets, training_examples
from data.db.training_set import is_holdout_ticket, list_training_examples

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def _ticket(
    conn: AsyncConnection,
    n: int,
    label: str,
    confidence: float,
    *,
    status: str = "routed",
    at: datetime = T0,
) -> int:
    result = await conn.execute(
        tickets.insert()
        .values(
            workspace="T1",
            channel="C1",
            ts=f"{n}.0",
            user="U9",
            text=f"ticket {n}",
            status=status,
            attempts=1,
            created_at=at,
            updated_at=at,
        )
        .returning(tickets.c.id)
    )
    ticket_id = int(result.scalar_one())
    await conn.execute(
        predictions.insert().values(
            ticket_id=ticket_id,
            label=label,
            confidence=confidence,
            ranking=[],
            model_id="m",
            latency_ms=1.0,
            created_at=at,
        )
    )
    return ticket_id


async def _correct(
    conn: AsyncConnection, ticket_id: int, old: str, new: str, minute: int, *, undone: bool = False
) -> None:
    await conn.execute(
        corrections.insert().values(
            ticket_id=ticket_id,
            user="U2",
            from_label=old,
            to_label=new,
            via="reaction",
            created_at=T0 + timedelta(minutes=minute),
            undone_at=T0 + timedelta(minutes=minute + 1) if undone else None,
        )
    )


async def test_live_figures_match_a_hand_computed_case(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            b1 = await _ticket(conn, 1, "Billing", 0.9)
            b2 = await _ticket(conn, 2, "Billing", 0.4)
            await _ticket(conn, 3, "Billing", 0.8)
            b4 = await _ticket(conn, 4, "Billing", 0.95)
            t1 = await _ticket(conn, 5, "Technical", 0.3, status="failed")
            await _ticket(conn, 6, "Technical", 0.7)
            await _ticket(conn, 7, "Account", 0.99, at=T0 - timedelta(days=30))  # outside
            # A re-classification: the latest prediction is the bot's answer.
            await conn.execute(
                predictions.insert().values(
                    ticket_id=t1,
                    label="Account",
                    confidence=0.45,
                    ranking=[],
                    model_id="m2",
                    latency_ms=1.0,
                    created_at=T0 + timedelta(minutes=1),
                )
            )
            await _correct(conn, b1, "Billing", "Account", 1)
            await _correct(conn, b2, "Billing", "Technical", 2)
            await _correct(conn, b2, "Technical", "Account", 3)  # latest human label wins
            await _correct(conn, b4, "Billing", "Product", 4, undone=True)  # undone: ignored
            await _correct(conn, t1, "Account", "Technical", 5)

        async with db.transaction() as conn:
            figures = await stats.live_figures(
                conn,
                since=T0 - timedelta(days=7),
                until=T0 + timedelta(days=1),
                threshold=0.5,
                labels=("Technical", "Billing", "Account", "Product"),
            )
            activity = await stats.activity_counts(conn, T0 - timedelta(days=7))

        # Hand count: 6 tickets in the period, 5 routed (one failed); bot labels
        # Billing x4, Technical x1, Account x1 (t1 re-labelled); corrected: b1, b2, t1.
        assert (figures.tickets, figures.routed, figures.classified) == (6, 5, 6)
        assert figures.corrected == 3
        assert figures.correction_rate == 0.5
        # Below 0.5: b2 (0.4) and t1 (0.45 after re-classification).
        assert (figures.below_threshold, figures.below_threshold_share) == (2, 2 / 6)
        by_label = {d.label: (d.predicted, d.corrected) for d in figures.departments}
        assert by_label == {
            "Technical": (1, 0),
            "Billing": (4, 2),
            "Account": (1, 1),
            "Product": (0, 0),
        }
        assert [d.label for d in figures.departments] == [
            "Technical",
            "Billing",
            "Account",
            "Product",
        ]
        billing = next(d for d in figures.departments if d.label == "Billing")
        assert billing.correction_rate == 0.5
        assert figures.confusions == (("Billing", "Account", 2), ("Account", "Technical", 1))
        # Activity: 6 recent tickets; corrections not undone: 4.
        assert activity == (6, 4)
    finally:
        await db.close()


async def test_training_examples_read_with_a_fixed_holdout(sqlite_url: str) -> None:
    held = next(i for i in range(1, 200) if is_holdout_ticket(i))
    kept = next(i for i in range(1, 200) if not is_holdout_ticket(i))
    # The rule is a pure function of the id: about a fifth of tickets, always the same ones.
    share = sum(is_holdout_ticket(i) for i in range(10_000)) / 10_000
    assert 0.18 < share < 0.22
    assert [is_holdout_ticket(i) for i in range(50)] == [is_holdout_ticket(i) for i in range(50)]
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            for n in range(1, max(held, kept) + 1):
                await _ticket(conn, n, "Billing", 0.9)
            for ticket_id, label, minute in ((kept, "Account", 2), (held, "Technical", 1)):
                at = T0 + timedelta(minutes=minute)
                await conn.execute(
                    training_examples.insert().values(
                        text=f"ticket {ticket_id}",
                        label=label,
                        source="correction",
                        ticket_id=ticket_id,
                        holdout=False,
                        created_at=at,
                        updated_at=at,
                    )
                )
            stored = await list_training_examples(conn)
        assert [(e.ticket_id, e.label, e.holdout) for e in stored] == [
            (held, "Technical", True),
            (kept, "Account", False),
        ]
    finally:
        await db.close()


async def test_the_holdout_stops_growing_at_its_cap_and_later_labels_train(
    sqlite_url: str,
) -> None:
    held = [i for i in range(1, 200) if is_holdout_ticket(i)][:3]
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            for n in range(1, max(held) + 1):
                await _ticket(conn, n, "Billing", 0.9)
            for ticket_id in held:
                await conn.execute(
                    training_examples.insert().values(
                        text=f"ticket {ticket_id}",
                        label="Account",
                        source="correction",
                        ticket_id=ticket_id,
                        holdout=False,
                        created_at=T0,
                        updated_at=T0,
                    )
                )
            uncapped = await list_training_examples(conn)
            capped = await list_training_examples(conn, holdout_cap=2)
            # A relabel changes updated_at, not the creation order that decides.
            await conn.execute(
                training_examples.update()
                .where(training_examples.c.ticket_id == held[0])
                .values(updated_at=T0 + timedelta(hours=1))
            )
            relabelled = await list_training_examples(conn, holdout_cap=2)
        assert [e.holdout for e in uncapped] == [True, True, True]
        expected = {held[0]: True, held[1]: True, held[2]: False}
        assert {e.ticket_id: e.holdout for e in capped} == expected
        assert {e.ticket_id: e.holdout for e in relabelled} == expected
    finally:
        await db.close()
