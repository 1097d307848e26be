"""Engine creation and migrations (Alembic, applied on start, same scripts for every engine).

Replicas started together migrate one at a time: on PostgreSQL the migration transaction first
takes an advisory lock (``pg_advisory_xact_lock``, released at its commit or rollback); on SQLite
a lock on a file next to the database (``<file>.migrate.lock``, ``flock``). Whoever waits finds
the schema at head when its turn comes and changes nothing.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import create_engine as create_blocking_engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite:///file.db`` or ``postgresql+asyncpg://``).

    SQLite gets WAL mode, foreign keys and a busy timeout, so the bot and a ``triage`` command
    can use the same file at once.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
            cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


def create_sqlite_writer(
    url: str, busy_timeout: float = 30.0, *, autocheckpoint: bool = True
) -> Engine | None:
    """A blocking engine on the same SQLite file, for batches of writes.

    ``autocheckpoint=False``: its commits never checkpoint the write-ahead log (SQLite does so
    in the commit that takes the log past 1,000 pages, and that commit then copies the log
    into the database file); whoever uses it checkpoints elsewhere (``checkpoint``).

    Each batch opens with ``BEGIN IMMEDIATE``: it takes the write lock first (waiting out
    other writers for ``busy_timeout`` seconds; 0: "database is locked" at once) instead of
    failing when a batch that read something then writes. None for other databases and
    in-memory SQLite (another engine would not see the same data).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.query.get("mode") == "memory":
        return None
    engine = create_blocking_engine(
        parsed.set(drivername="sqlite+pysqlite"), connect_args={"timeout": busy_timeout}
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
        dbapi_conn.isolation_level = None  # type: ignore[attr-defined]  # BEGIN is ours
        cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


#: The advisory lock key of migrations on PostgreSQL (any constant; "triage" in ASCII).
MIGRATION_LOCK_KEY = 0x747269616765


def _lock_file(database: str) -> int:
    """Open ``<database>.migrate.lock`` and wait for its exclusive lock; returns the descriptor.

    Each open file has its own lock, so this also orders migrations within one process.
    """
    path = Path(f"{Path(database).expanduser()}.migrate.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


@asynccontextmanager
async def _sqlite_migration_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
        yield  # no other process can see this database
        return
    descriptor = await asyncio.to_thread(_lock_file, database)
    try:
        yield
    finally:
        os.close(descriptor)  # closing the file releases its lock


async def migrate(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema (idempotent; safe on every start).

    Any number of processes may call it at once: they take turns (see the module docstring).
    """
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            await conn.run_sync(_upgrade)
        return
    if engine.dialect.name == "sqlite":
        async with _sqlite_migration_lock(engine), engine.begin() as conn:
            await conn.run_sync(_upgrade)
        return
    async with engine.begin() as conn:  # pragma: no cover - only SQLite and PostgreSQL run
        await conn.run_sync(_upgrade)


def checkpoint(writer: Engine) -> None:
    """Copy what the write-ahead log holds into the database file, without waiting for or
    stopping readers and writers (``PASSIVE``); blocking: call it off the event loop."""
    raw = writer.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
    finally:
        raw.close()
