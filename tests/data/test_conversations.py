"""Conversations in the database, on SQLite and PostgreSQL: joining, follow-ups, closing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, event

from data.db import conversations as repo
from data.db import tickets as tickets_repo
from data.db.database import Database, utcnow
from tests.data.test_tickets import db  # noqa: F401 - the SQLite/PostgreSQL fixture

WINDOW = 120.0
CAP = 40_000


def message(ts: str, text: str = "help", user: str = "U1") -> repo.Message:
    return repo.Message("T1", "C1", ts, user, text)


def new(part: repo.Message) -> tickets_repo.NewTicket:
    return tickets_repo.NewTicket(part.workspace, part.channel, part.ts, part.user, part.text)


async def place(database: Database, part: repo.Message, seconds: float) -> repo.Placed:
    now = START + timedelta(seconds=seconds)
    async with database.transaction() as conn:
        return await repo.open_or_join(
            conn, part, now=now, window=WINDOW, cap=CAP, new=new(part), owner="me"
        )


START = utcnow()


async def test_messages_within_the_window_join_one_ticket(db: Database) -> None:  # noqa: F811
    first = await place(db, message("1.0", "hi"), 0)
    second = await place(db, message("2.0", "my invoice is wrong"), 60)
    third = await place(db, message("3.0", "it says 2 seats"), 170)  # 110 s after the second
    late = await place(db, message("4.0", "another thing"), 300)  # 130 s: a new conversation
    other = await place(db, message("5.0", "me too", user="U2"), 301)
    assert [p.outcome for p in (first, second, third, late, other)] == [
        repo.Joined.OPENED,
        repo.Joined.JOINED,
        repo.Joined.JOINED,
        repo.Joined.OPENED,
        repo.Joined.OPENED,
    ]
    assert third.ticket is not None
    assert first.ticket is not None
    assert third.ticket.id == first.ticket.id
    assert third.ticket.text == "hi\nmy invoice is wrong\nit says 2 seats"
    assert third.ticket.parts == 3
    assert third.ticket.regroup_at == START + timedelta(seconds=170 + WINDOW)
    again = await place(db, message("2.0", "my invoice is wrong"), 302)
    assert again.outcome is repo.Joined.DUPLICATE


async def test_a_closed_conversation_is_claimed_once(db: Database) -> None:  # noqa: F811
    placed = await place(db, message("1.0"), 0)
    assert placed.ticket is not None
    async with db.transaction() as conn:
        early = await repo.claim_due(conn, START + timedelta(seconds=60), "me", utcnow())
    async with db.transaction() as conn:
        due = await repo.claim_due(conn, START + timedelta(seconds=121), "me", utcnow())
    async with db.transaction() as conn:
        again = await repo.claim_due(conn, START + timedelta(seconds=122), "other", utcnow())
        assert await repo.next_due(conn) is None
    assert (early, due, again) == ([], [placed.ticket.id], [])


async def test_a_reply_before_its_ticket_is_kept_and_adopted(db: Database) -> None:  # noqa: F811
    now = START
    async with db.transaction() as conn:
        kept = await repo.add_follow_up(
            conn, message("2.0", "we have 3 seats"), "1.0", now=now, window=WINDOW, cap=CAP
        )
        stranger = await repo.add_follow_up(
            conn, message("2.5", "me too", user="U9"), "1.0", now=now, window=WINDOW, cap=CAP
        )
    assert (kept.outcome, stranger.outcome) == (repo.Joined.KEPT, repo.Joined.KEPT)
    opened = await place(db, message("1.0", "my invoice is wrong"), 1)
    assert opened.ticket is not None
    assert (opened.ticket.follow_ups, opened.ticket.last_follow_up) == (1, "we have 3 seats")
    assert opened.ticket.text == "my invoice is wrong\nwe have 3 seats"  # not U9's


def replica(url: str) -> Database:
    """A replica's own database handle. On SQLite its transactions begin by taking the write
    lock (``BEGIN IMMEDIATE``), as the bot's writes do (``bot.group_commit``): a writer waits
    its turn on the busy timeout, where a transaction that read first and then wrote would fail
    at once with "database is locked" when another wrote in between."""
    handle = Database(url)
    if handle.engine.dialect.name == "sqlite":
        sync_engine = handle.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _no_implicit_begin(dbapi_conn: Any, _record: object) -> None:
            dbapi_conn.isolation_level = None  # BEGIN is ours (SQLAlchemy's aiosqlite recipe)

        @event.listens_for(sync_engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return handle


async def test_replicas_storing_one_burst_at_once_open_one_ticket(
    db: Database,  # noqa: F811
) -> None:
    # Each message in its own transaction of its own replica, all at once: on PostgreSQL the
    # window row's lock makes them take turns; SQLite lets one writer in at a time.
    replicas = [replica(db.url) for _ in range(8)]

    async def one(n: int) -> repo.Placed:
        return await place(replicas[n - 1], message(f"{n}.0", f"line {n}"), n * 0.1)

    try:
        placed = await asyncio.gather(*(one(n) for n in range(1, 9)))
    finally:
        for handle in replicas:
            await handle.close()
    ids = {p.ticket.id for p in placed if p.ticket is not None}
    assert len(ids) == 1
    assert sorted(p.outcome for p in placed).count(repo.Joined.OPENED) == 1
    async with db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"received": 1}
