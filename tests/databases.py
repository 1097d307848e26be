"""Fresh databases for tests, copied from one migrated per test process.

Running every migration on each test's new database cost the suite a fifth of a second of
wall time per database (alembic reads every revision, and on PostgreSQL each DDL statement is
a durable commit). A test's database is instead a copy of a template migrated once per
process: a SQLite file copied byte for byte, or a PostgreSQL ``CREATE DATABASE ... TEMPLATE``.
The copy is at the newest schema, so the bot's own ``migrate`` on start finds nothing to do.
``tests/data/test_migrations.py`` still migrates empty databases, alone and racing.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import aiosqlite

from data.db.engine import create_engine, migrate

_lock = threading.Lock()
#: The threads of the aiosqlite connections told to stop (see ``sqlite_threads_finished``).
_stopping: set[threading.Thread] = set()
_stopping_lock = threading.Lock()  # not ``_lock``: a template is made while that is held
_sqlite_template: Path | None = None
_postgres_template: str | None = None


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def _in_own_loop(make: Callable[[], Awaitable[None]]) -> None:
    """Run ``make()`` to the end on an event loop of its own, in a thread of its own (the
    caller may be inside a running loop, and ``asyncio.run`` would unset this thread's)."""

    async def body() -> None:
        await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, body()).result()


def _make_sqlite_template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="triage-test-schema-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "template.db"
    _in_own_loop(lambda: _migrate(f"sqlite+aiosqlite:///{path}"))
    # Out of write-ahead-log mode: the file alone then holds everything (every engine of the
    # project turns WAL mode on again when it connects, as it does on a new file).
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA journal_mode=DELETE").fetchall()
    return path


def migrated_sqlite(path: Path) -> str:
    """A SQLite database file at ``path`` (which must not exist yet) at the newest schema;
    returns its URL."""
    global _sqlite_template
    with _lock:
        if _sqlite_template is None:
            _sqlite_template = _make_sqlite_template()
        template = _sqlite_template
    path.parent.mkdir(parents=True, exist_ok=True)
    with template.open("rb") as source, path.open("xb") as target:
        shutil.copyfileobj(source, target)
    return f"sqlite+aiosqlite:///{path}"


async def postgres_template(
    admin: Callable[[str], Awaitable[None]], server_url: str, prefix: str
) -> str:
    """The name of this process's migrated PostgreSQL template database, made on first use
    (``admin`` runs a statement on the server; ``server_url`` ends before the database name).
    ``drop_postgres_template`` removes it at the end of the session."""
    global _postgres_template
    if _postgres_template is None:
        name = f"{prefix}template_{uuid.uuid4().hex[:12]}"
        await admin(f'CREATE DATABASE "{name}"')
        try:
            await _migrate(f"{server_url}/{name}")
        except BaseException:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            raise
        _postgres_template = name
    return _postgres_template


def drop_postgres_template(admin: Callable[[str], Awaitable[None]]) -> None:
    """Drop the template ``postgres_template`` made, if it made one."""
    global _postgres_template
    name, _postgres_template = _postgres_template, None
    if name is not None:
        _in_own_loop(lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _tracked_stop(self: aiosqlite.Connection) -> asyncio.Future[Any] | None:
    with _stopping_lock:
        _stopping.add(self._thread)  # aiosqlite keeps no public handle on its thread
    return _untracked_stop(self)


# Every aiosqlite connection told to stop is remembered by its thread, whether its pool ever
# handed it out or not: a connection whose opening was cancelled (a bot stopped as a crash
# would, mid-connect) never reaches the pool and may be garbage before the test ends, and its
# thread still answers the test's event loop when the opening ends (seen under stress-ng:
# "Event loop is closed" reported on the next test).
_untracked_stop = aiosqlite.Connection.stop
aiosqlite.Connection.stop = _tracked_stop  # type: ignore[method-assign]


async def sqlite_threads_finished(seconds: float = 30.0) -> None:
    """Wait until every aiosqlite connection told to stop has finished its thread.

    A connection whose task was cancelled (a bot stopped as a crash would) is closed without
    waiting: its thread then answers a future on the test's event loop. Once the test has
    ended, that loop is closed, and the answer is an exception in the thread, which pytest
    reports on whichever test runs then (seen under load). Waiting here, on the test's own
    loop, keeps it inside the test. Connections still open are not waited for.
    """
    with _stopping_lock:
        stopping = [thread for thread in _stopping if thread.is_alive()]
        _stopping.intersection_update(stopping)
    for thread in stopping:
        await asyncio.to_thread(thread.join, seconds)
