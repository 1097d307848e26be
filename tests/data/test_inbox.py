"""Messages acknowledged and not yet placed (``data.db.inbox``), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from data.db import inbox as repo
from data.db.database import Database, utcnow
from tests.data.test_tickets import db  # noqa: F401 - the SQLite/PostgreSQL fixture

START = utcnow()


def incoming(ts: str, owner: str = "me", seconds: float = 0) -> repo.Incoming:
    return repo.Incoming(
        workspace="T1",
        channel="C1",
        ts=ts,
        user="U1",
        text=f"help {ts}",
        received_at=START + timedelta(seconds=seconds),
        owner=owner,
    )


async def test_a_retried_event_is_stored_once_and_taken_once(db: Database) -> None:  # noqa: F811
    async with db.transaction() as conn:
        first = await repo.receive(conn, incoming("1.0"))
        again = await repo.receive(conn, incoming("1.0"))
    assert first is not None
    assert again is None
    async with db.transaction() as conn:
        taken = await repo.take(conn, first)
        assert await repo.take(conn, first) is None  # placed once, whoever asks next
    assert taken is not None
    assert (taken.ts, taken.text, taken.owner, taken.received_at) == (
        "1.0",
        "help 1.0",
        "me",
        START,
    )
    async with db.transaction() as conn:
        assert await repo.count_waiting(conn) == 0


async def test_waiting_is_a_process_own_and_the_stale_ones_oldest_first(
    db: Database,  # noqa: F811
) -> None:
    async with db.transaction() as conn:
        mine = await repo.receive(conn, incoming("1.0", seconds=50))
        fresh = await repo.receive(conn, incoming("2.0", owner="other", seconds=50))
        stale = await repo.receive(conn, incoming("3.0", owner="gone", seconds=0))
    async with db.transaction() as conn:
        cutoff = START + timedelta(seconds=30)
        assert await repo.waiting(conn, owner="me", stale_before=cutoff) == [mine, stale]
        assert await repo.waiting(conn) == [mine, fresh, stale]


async def test_a_message_that_keeps_failing_is_left_out_after_max_attempts(
    db: Database,  # noqa: F811
) -> None:
    async with db.transaction() as conn:
        poison = await repo.receive(conn, incoming("1.0"))
    assert poison is not None
    for attempt in range(1, repo.MAX_ATTEMPTS + 1):
        async with db.transaction() as conn:
            assert await repo.count_failed(conn, poison) == attempt
    async with db.transaction() as conn:
        assert await repo.waiting(conn) == []
        assert await repo.count_waiting(conn) == 1  # kept for a person to look at
