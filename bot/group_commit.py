"""Group commit: many small database operations from concurrent tickets in one transaction.

Each ticket's step is tiny (store it, record a card), but a transaction costs several round
trips to the database thread. ``GroupCommit.run(op)`` queues ``op`` and waits until the
transaction that ran it has committed, so the caller still knows its write is durable before it
moves on (the rule that keeps resumed tickets from being routed twice); operations that arrive
while one transaction commits share the next. If a shared transaction fails, each of its
operations is run again alone, so one bad operation fails only its own caller.

On a SQLite file a batch runs on a blocking connection, not through aiosqlite: there every
statement costs about four hops between the event loop and aiosqlite's thread (cursor,
execute, fetch, close), and at a hundred tickets a second those hops, not SQLite, were most of
the bot's CPU. The batch runs right on the event loop when the write lock is free (a batch is
local CPU work: WAL with ``synchronous=NORMAL`` does not wait for the disk at commit). A
thread of its own would hand the GIL back and forth on every statement (sqlite3 releases it
around each step), and while the loop is busy each handback waits up to the interpreter's
switch interval (5 ms): under load that convoy, not SQLite, set the acknowledgement's p99.
When another connection holds the write lock (a ``triage`` command, another replica, an
aiosqlite transaction of this process waiting for the loop), the batch goes to the thread and
waits there, so the loop never blocks on a lock. On the loop a transaction also stops taking
operations once it has run for ``INLINE_BUDGET_SECONDS``: it commits those, and the rest go
back to the head of the queue for the next one, after requests waiting on the loop (an
acknowledgement) have run. Without that bound, a backlog made batches of 30-50 placements
that held the loop 50-140 ms (measured in ``bench/load.py``, loaded), and the acknowledgements
waiting behind them set the p99. For the same reason the loop's connection never checkpoints
the write-ahead log (SQLite's automatic checkpoint runs in the commit that takes the log past
1,000 pages: on the loop, that commit would also copy the log into the database file and sync
it): every ``CHECKPOINT_EVERY`` transactions on the loop, a checkpoint runs in a thread of its
own (``PASSIVE``: it neither waits for nor stops the writers; 3-17 ms each in
``bench/load.py``). The operations are the same ``async``
functions; they get a connection whose ``execute`` finishes at once, so an operation must
await nothing but the connection's ``execute``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.database import Database
from data.db.engine import checkpoint, create_sqlite_writer

log = logging.getLogger(__name__)

T = TypeVar("T")
Operation = Callable[[AsyncConnection], Awaitable[Any]]
#: An operation waiting for its transaction, and its caller's future.
Queued = tuple[Operation, "asyncio.Future[Any]"]

#: Most operations in one transaction (keeps the write lock short for other processes, and
#: a batch run on the event loop short for everything else on it).
MAX_BATCH = 64
#: How long a transaction run on the event loop keeps taking operations (see the module
#: docstring); each operation is one ticket's step, a fraction of a millisecond.
INLINE_BUDGET_SECONDS = 0.005
#: Transactions on the loop between two checkpoints of the write-ahead log (see above).
CHECKPOINT_EVERY = 100


class GroupCommit:
    """Runs database operations in shared transactions; see the module docstring."""

    def __init__(
        self,
        db: Database,
        inline_budget_seconds: float = INLINE_BUDGET_SECONDS,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        self._db = db
        self._budget = inline_budget_seconds
        self._checkpoint_every = checkpoint_every
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Future[None] | None = None
        self._checkpointer: ThreadPoolExecutor | None = None
        #: Checkpoints of the write-ahead log run so far (see the module docstring).
        self.checkpoints = 0
        self._pending: list[Queued] = []
        self._urgent: list[Queued] = []
        self._wake = asyncio.Event()
        self._running = False
        self._writer: Engine | None = None
        self._inline: Engine | None = None  # the same file, never waiting for the lock
        self._thread: ThreadPoolExecutor | None = None

    async def run_commits(self) -> None:
        """Commit queued operations until cancelled, then run what is still queued and close.

        The runtime's supervisor runs this; until it runs, each operation gets a transaction
        of its own.
        """
        self._writer = create_sqlite_writer(self._db.url)
        if self._writer is not None:
            self._inline = create_sqlite_writer(self._db.url, busy_timeout=0, autocheckpoint=False)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="group-commit")
            self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="wal-checkpoint")
        self._running = True
        try:
            await self._loop()
        finally:
            try:
                while self._urgent or self._pending:
                    await self._flush()
            finally:
                self._running = False
                if self._checkpointing is not None:
                    await asyncio.shield(self._checkpointing)
                for pool in (self._thread, self._checkpointer):
                    if pool is not None:
                        pool.shutdown()
                self._thread = self._checkpointer = None
                for engine in (self._writer, self._inline):
                    if engine is not None:
                        engine.dispose()
                self._writer = self._inline = None

    async def run(
        self, op: Callable[[AsyncConnection], Awaitable[T]], *, urgent: bool = False
    ) -> T:
        """Run ``op`` in a (shared) transaction; returns once that transaction committed.

        ``urgent``: someone waits on it (Slack, for its acknowledgement): it is committed
        before any other queued operation, with the other urgent ones only, and its caller
        goes on before the next batch runs."""
        if not self._running:  # not running (a one-off script): a transaction of its own
            async with self._db.transaction() as conn:
                return await op(conn)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._pending).append((op, future))
        self._wake.set()
        return await future

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._urgent or self._pending:
                urgent = bool(self._urgent)
                if urgent:
                    batch, self._urgent = self._urgent[:MAX_BATCH], self._urgent[MAX_BATCH:]
                else:
                    batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                rest = await self._flush(batch)
                if rest:  # the budget ran out: first in the next transaction
                    if urgent:
                        self._urgent[:0] = rest
                    else:
                        self._pending[:0] = rest
                # A batch on the loop blocks it: let the callers and new requests run first.
                await asyncio.sleep(0)

    async def _flush(self, batch: list[Queued] | None = None) -> list[Queued]:
        """Run ``batch`` (or what is queued) in one transaction; returns the operations the
        on-loop budget left for the next one (see the module docstring)."""
        if batch is None:
            queued = self._urgent + self._pending
            batch, rest = queued[:MAX_BATCH], queued[MAX_BATCH:]
            self._urgent, self._pending = [], rest
            rest_of_batch = await self._flush(batch)
            self._pending[:0] = rest_of_batch
            return []
        ops = [op for op, _future in batch]
        try:
            results = await self._together(ops)
        except Exception:
            if len(batch) == 1:
                self._settle(batch[0][1], error=_current_error())
                return []
            log.debug(
                "A shared transaction of %d operations failed; running each alone", len(batch)
            )
            for (_op, future), (result, error) in zip(batch, await self._alone(ops), strict=True):
                self._settle(future, result=result, error=error)
            return []
        for (_op, future), result in zip(batch, results, strict=False):
            self._settle(future, result=result)
        return batch[len(results) :]

    async def _together(self, ops: list[Operation]) -> list[Any]:
        """Run ``ops`` in one transaction; their results, or the first error. On the event
        loop, only the first of them may have run (the budget): one result each, in order."""
        if self._inline is not None:
            results = _run_inline(self._inline, ops, self._budget)
            if results is not None:
                self._since_checkpoint += 1
                if self._since_checkpoint >= self._checkpoint_every:
                    self._start_checkpoint()
                return results
        if self._writer is not None and self._thread is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, _run_blocking, self._writer, ops)
        results = []
        async with self._db.transaction() as conn:
            for op in ops:
                results.append(await op(conn))
        return results

    def _start_checkpoint(self) -> None:
        """Checkpoint the write-ahead log in the checkpointer's thread (one at a time)."""
        if self._checkpointing is not None or self._writer is None or self._checkpointer is None:
            return
        self._since_checkpoint = 0
        future = asyncio.get_running_loop().run_in_executor(
            self._checkpointer, checkpoint, self._writer
        )
        self._checkpointing = future

        def done(finished: asyncio.Future[None]) -> None:
            self._checkpointing = None
            if finished.cancelled():
                return
            error = finished.exception()
            if error is not None:
                log.warning("Could not checkpoint the database's log", exc_info=error)
                return
            self.checkpoints += 1

        future.add_done_callback(done)

    async def _alone(self, ops: list[Operation]) -> list[tuple[Any, BaseException | None]]:
        """Run each of ``ops`` in a transaction of its own; (result, error) for each."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        for op in ops:
            try:
                outcomes.append(((await self._together([op]))[0], None))
            except Exception as exc:
                outcomes.append((None, exc))
        return outcomes

    @staticmethod
    def _settle(
        future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None
    ) -> None:
        if future.done():  # the caller was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class _ImmediateConnection:
    """What an operation sees on the commit thread: ``execute`` that is done when called."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self._conn.execute(statement, parameters)


def _finish_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (it awaits only ``_ImmediateConnection``)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("A group-commit operation awaited something other than the database.")


def _run_blocking(writer: Engine, ops: list[Operation]) -> list[Any]:
    with writer.begin() as conn:
        immediate = cast(AsyncConnection, _ImmediateConnection(conn))
        return [_finish_now(cast(Coroutine[Any, Any, Any], op(immediate))) for op in ops]


def _run_inline(engine: Engine, ops: list[Operation], budget: float) -> list[Any] | None:
    """Run ``ops`` in one transaction here and now, taking no more once ``budget`` seconds
    have passed (at least one runs); their results. None when the write lock is taken (the
    caller runs them in the thread, which waits for it)."""
    with engine.connect() as conn:
        try:
            transaction = conn.begin()  # BEGIN IMMEDIATE, failing at once when locked
        except OperationalError as exc:
            if "locked" in str(exc.orig):
                return None
            raise
        with transaction:
            immediate = cast(AsyncConnection, _ImmediateConnection(conn))
            deadline = time.perf_counter() + budget
            results = []
            for op in ops:
                results.append(_finish_now(cast(Coroutine[Any, Any, Any], op(immediate))))
                if time.perf_counter() >= deadline:
                    break
            return results


def _current_error() -> BaseException:
    import sys

    error = sys.exc_info()[1]
    assert error is not None
    return error
