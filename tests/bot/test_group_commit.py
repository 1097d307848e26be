from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.group_commit import GroupCommit
from data.db import tickets as repo
from data.db.database import Database


async def test_concurrent_operations_commit_together_and_a_bad_one_fails_alone(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url)
    await db.start()
    commits = GroupCommit(db)
    committing = asyncio.create_task(commits.run_commits())
    await asyncio.sleep(0)  # let it start: operations from now on share transactions
    try:

        def store(n: int):  # type: ignore[no-untyped-def]
            async def op(conn: AsyncConnection) -> int:
                ticket, _ = await repo.store_ticket(
                    conn, repo.NewTicket("T", "C", f"{n}.0", "U", f"text {n}")
                )
                return ticket.id

            return op

        async def broken(conn: AsyncConnection) -> int:
            await repo.get_ticket(conn, 10_000)  # raises TicketNotFoundError
            return 0

        results = await asyncio.gather(
            *(commits.run(store(n)) for n in range(20)),
            commits.run(broken),
            return_exceptions=True,
        )
        assert sorted(r for r in results if isinstance(r, int)) == list(range(1, 21))
        assert isinstance(results[-1], repo.TicketNotFoundError)
        async with db.transaction() as conn:
            assert await repo.count_by_status(conn) == {"received": 20}
    finally:
        committing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committing
        await db.close()


async def test_while_not_running_each_operation_has_its_own_transaction(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        commits = GroupCommit(db)
        with pytest.raises(repo.TicketNotFoundError):
            await commits.run(lambda conn: repo.get_ticket(conn, 1))
    finally:
        await db.close()


async def test_a_batch_waits_in_the_thread_while_another_connection_holds_the_write_lock(
    sqlite_url: str,
) -> None:
    # The batch runs on the event loop only when the lock is free; held by another
    # connection (here an aiosqlite transaction of this process, which needs the loop to
    # finish), it must wait in the thread, not fail and not block the loop.
    db = Database(sqlite_url)
    await db.start()
    commits = GroupCommit(db)
    committing = asyncio.create_task(commits.run_commits())
    await asyncio.sleep(0)
    try:

        async def store(conn: AsyncConnection) -> int:
            ticket, _ = await repo.store_ticket(conn, repo.NewTicket("T", "C", "1.0", "U", "x"))
            return ticket.id

        async with db.transaction() as holder:
            await repo.store_ticket(holder, repo.NewTicket("T", "C", "0.5", "U", "first"))
            waiting = asyncio.create_task(commits.run(store))
            for _ in range(20):  # the loop runs: the batch is not holding it up
                await asyncio.sleep(0)
            assert not waiting.done()
        assert await asyncio.wait_for(waiting, 30) == 2
    finally:
        committing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committing
        await db.close()


async def test_an_urgent_operation_is_committed_before_those_queued_ahead_of_it(
    sqlite_url: str,
) -> None:
    # The acknowledgement's insert is urgent: Slack waits for it, the placements and routing
    # records queued before it do not.
    db = Database(sqlite_url)
    await db.start()
    commits = GroupCommit(db)
    committing = asyncio.create_task(commits.run_commits())
    await asyncio.sleep(0)
    ran: list[str] = []
    try:

        def op(name: str):  # type: ignore[no-untyped-def]
            async def run(conn: AsyncConnection) -> str:
                await repo.count_by_status(conn)
                ran.append(name)
                return name

            return run

        normal = [asyncio.create_task(commits.run(op(f"n{n}"))) for n in range(5)]
        urgent = asyncio.create_task(commits.run(op("ack"), urgent=True))
        assert await urgent == "ack"
        await asyncio.gather(*normal)
        assert ran[0] == "ack"
        assert sorted(ran[1:]) == [f"n{n}" for n in range(5)]
    finally:
        committing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committing
        await db.close()


@pytest.mark.parametrize(("budget", "transactions"), [(0.0, 6), (60.0, 1)])
async def test_a_transaction_on_the_loop_stops_taking_operations_when_its_budget_is_spent(
    sqlite_url: str, budget: float, transactions: int
) -> None:
    # A batch run on the event loop holds it (and the acknowledgements waiting on it): past its
    # budget the transaction commits what ran, and the rest run next, in order, each once.
    db = Database(sqlite_url)
    await db.start()
    commits = GroupCommit(db, inline_budget_seconds=budget)
    committing = asyncio.create_task(commits.run_commits())
    await asyncio.sleep(0)
    seen: list[tuple[int, AsyncConnection]] = []  # (operation, the transaction it ran in)
    try:

        def store(n: int):  # type: ignore[no-untyped-def]
            async def op(conn: AsyncConnection) -> int:
                seen.append((n, conn))
                ticket, _ = await repo.store_ticket(
                    conn, repo.NewTicket("T", "C", f"{n}.0", "U", f"text {n}")
                )
                return ticket.id

            return op

        results = await asyncio.gather(*(commits.run(store(n)) for n in range(6)))
        assert results == [1, 2, 3, 4, 5, 6]
        assert [n for n, _conn in seen] == list(range(6))
        assert len({id(conn) for _n, conn in seen}) == transactions
        async with db.transaction() as conn:
            assert await repo.count_by_status(conn) == {"received": 6}
    finally:
        committing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committing
        await db.close()


async def test_the_loop_never_checkpoints_the_log_a_thread_does(sqlite_url: str) -> None:
    # SQLite checkpoints in the commit that takes the write-ahead log past 1,000 pages: on the
    # event loop that held every card for about 2 s. The loop's connection does not; every
    # ``checkpoint_every`` transactions a thread does, and the log is then empty of new pages.
    db = Database(sqlite_url)
    await db.start()
    commits = GroupCommit(db, checkpoint_every=3)
    committing = asyncio.create_task(commits.run_commits())
    await asyncio.sleep(0)
    try:

        async def autocheckpoint(conn: AsyncConnection) -> int:
            return int((await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one())

        assert await commits.run(autocheckpoint) == 0

        def store(n: int):  # type: ignore[no-untyped-def]
            async def op(conn: AsyncConnection) -> int:
                ticket, _ = await repo.store_ticket(
                    conn, repo.NewTicket("T", "C", f"{n}.0", "U", f"text {n}")
                )
                return ticket.id

            return op

        for n in range(9):  # one transaction each: nothing else is queued
            await commits.run(store(n))
    finally:
        committing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committing  # waits for a checkpoint still running
    assert commits.checkpoints >= 1
    # The database file alone (without its log) holds what the checkpoints copied.
    path = Path(sqlite_url.split("///", 1)[1])
    alone = path.with_name("alone.db")
    shutil.copyfile(path, alone)
    with contextlib.closing(sqlite3.connect(alone)) as raw:
        (copied,) = raw.execute("SELECT count(*) FROM tickets").fetchone()
    assert copied >= 2
    await db.close()
