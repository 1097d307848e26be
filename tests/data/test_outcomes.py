"""How the bot's answers turned out, and the triage threshold refreshed from them."""

from __future__ import annotations

from datetime import timedelta

from admin.triage_threshold import TriageThreshold
from bot.policy import RoutingPolicy
from data.db.database import Database
from data.db.outcomes import recent_outcomes
from data.db.schema import corrections
from tests.data.test_stats import T0, _ticket
from tests.fakes.clock import FakeClock


async def _correct(conn, ticket_id: int, to_label: str, undone: bool = False) -> None:  # type: ignore[no-untyped-def]
    await conn.execute(
        corrections.insert().values(
            ticket_id=ticket_id,
            user="U1",
            from_label="Billing",
            to_label=to_label,
            via="reaction",
            created_at=T0,
            undone_at=T0 if undone else None,
        )
    )


async def test_outcomes_count_a_moved_ticket_as_wrong_and_an_untouched_one_as_right(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            moved = await _ticket(conn, 1, "Billing", 0.6)
            await _ticket(conn, 2, "Billing", 0.9)
            undone = await _ticket(conn, 3, "Billing", 0.4)
            await _correct(conn, moved, "Account")
            await _correct(conn, undone, "Account", undone=True)
            await _ticket(conn, 4, "Billing", 0.3, at=T0 + timedelta(hours=5))  # too recent
            outcomes = await recent_outcomes(conn, settled_before=T0 + timedelta(hours=1))
        assert sorted(outcomes) == [(0.4, True), (0.6, False), (0.9, True)]
    finally:
        await db.close()


async def test_the_routing_policy_follows_the_threshold_fitted_on_outcomes(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            # 120 tickets: at 0.6 confidence the model was right only a third of the time.
            for n in range(120):
                confidence = 0.6 if n % 2 else 0.95
                ticket_id = await _ticket(conn, n, "Billing", confidence)
                if confidence == 0.6 and n % 3:
                    await _correct(conn, ticket_id, "Account")
        clock = FakeClock(start=T0 + timedelta(days=1))
        threshold = TriageThreshold(db, clock, fallback=0.5, target=0.75)
        policy = RoutingPolicy(
            support_channels=frozenset(),
            confidence_threshold=0.5,
            triage_channel="C0TRIAGE",
            shadow_mode=False,
            redact_pii=False,
            adaptive_threshold=threshold.value,
        )
        assert not policy.needs_person(0.6)  # the configured 0.5 until fitted
        assert await threshold.refresh() == 0.95
        assert policy.needs_person(0.6)
        assert not policy.needs_person(0.95)
    finally:
        await db.close()
