"""The bot's memory of the team's labelled tickets: corrections, and confirmed tickets voting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from admin.near_duplicates import CorrectionMemory
from classifier.protocols import Prediction
from data.db.database import Database
from tests.routed_tickets import routed_ticket

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TRIAGE = "C0TRIAGE"
UNSURE = Prediction("Technical", 0.5, (("Technical", 0.5), ("Billing", 0.3)), "model-1")


async def _routed(
    conn: AsyncConnection, n: int, text: str, label: str, at: datetime, channel: str = ""
) -> int:
    return await routed_ticket(conn, n, label, at=at, text=text, channel=channel or None)


async def test_confirmed_tickets_vote_once_of_age_and_are_never_near_duplicates(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url)
    await db.start()
    now = [T0 + timedelta(hours=1, minutes=1)]
    try:
        async with db.transaction() as conn:
            await _routed(conn, 1, "I was charged twice for my subscription", "Billing", T0)
            # In the triage channel: a question to a person, not an answer; never votes.
            await _routed(conn, 2, "charged twice for my plan", "Account", T0, channel=TRIAGE)
            # Routed 51 minutes ago: not confirmed yet.
            later = T0 + timedelta(minutes=10)
            await _routed(conn, 3, "my card was declined at checkout", "Product", later)
        memory = CorrectionMemory(
            db,
            lambda: "keywords",
            confirm_after=timedelta(hours=1),
            exclude_channels=[TRIAGE],
            now=lambda: now[0],
            vote_weight=0.6,
            vote_full_at=1,  # in full from the first labelled ticket (the ramp: below)
        )
        voted = await memory.voted("I was charged twice for my subscription!", UNSURE)
        assert (voted.label, voted.model_id) == ("Billing", "model-1")
        assert await memory.nearest("I was charged twice for my subscription") is None
        # The third ticket is not of age: nothing similar enough votes on its text.
        assert await memory.voted("my card was declined at checkout", UNSURE) is UNSURE

        # Twenty minutes on, it has come of age and votes (read since the last look only);
        # a ticket is not its own neighbour.
        now[0] += timedelta(minutes=20)
        memory.changed()
        voted = await memory.voted("my card was declined at checkout", UNSURE)
        assert voted.ranking[0] == ("Product", 0.6)
        assert await memory.voted("my card was declined at checkout", UNSURE, exclude=3) is UNSURE
        # With the bot's ramp, two labelled tickets of ten carry a fifth of the weight.
        ramped = CorrectionMemory(
            db,
            lambda: "keywords",
            confirm_after=timedelta(hours=1),
            exclude_channels=[TRIAGE],
            now=lambda: now[0],
            vote_weight=0.6,
        )
        voted = await ramped.voted("my card was declined at checkout", UNSURE)
        assert voted.ranking[0] == ("Technical", 0.5 * (1 - 0.12))
        assert dict(voted.ranking)["Product"] == 0.12
    finally:
        await db.close()


async def test_without_a_vote_weight_the_prediction_stands(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            await _routed(conn, 1, "I was charged twice for my subscription", "Billing", T0)
        # The light learner's n-grams: no vote (measured with sentence embeddings only).
        memory = CorrectionMemory(
            db,
            lambda: "tfidf",
            confirm_after=timedelta(hours=1),
            now=lambda: T0 + timedelta(hours=2),
        )
        assert memory.vote_weight == 0.0
        assert await memory.voted("I was charged twice for my subscription", UNSURE) is UNSURE
        # No confirmation rule: nothing but corrections would vote, and there are none.
        off = CorrectionMemory(db, lambda: "keywords", vote_weight=0.6)
        assert await off.voted("I was charged twice for my subscription", UNSURE) is UNSURE
    finally:
        await db.close()
