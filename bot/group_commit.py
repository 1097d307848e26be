"""Group commit: many small database operations from concurrent tickets in one transaction.

Each ticket's step is tiny (store it, record a card), but a transaction costs several round
trips to the database thread. ``GroupCommit.run(op)`` queues ``op`` and waits until the
transaction that ran it has committed, so the caller still knows its write is durable before it
moves on (the rule that keeps resumed tickets from being routed twice); operations that arrive
while one transaction commits share the next. If a shared transaction fails, each of its
operations is run again alone, so one bad operation fails only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.database import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
Operation = Callable[[AsyncConnection], Awaitable[Any]]

#: Most operations in one transaction (keeps the write lock short for other processes).
MAX_BATCH = 200


class GroupCommit:
    """Runs database operations in shared transactions; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[tuple[Operation, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start committing (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="group-commit")

    async def stop(self) -> None:
        """Stop after the operations already queued have run."""
        if self._task is None:
            return
        while self._pending:
            await self._flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def run(self, op: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``op`` in a (shared) transaction; returns once that transaction committed."""
        if self._task is None:  # not started (a one-off script): a transaction of its own
            async with self._db.transaction() as conn:
                return await op(conn)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wake.set()
        return await future

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        results: list[Any] = []
        try:
            async with self._db.transaction() as conn:
                for op, _future in batch:
                    results.append(await op(conn))
        except Exception:
            if len(batch) == 1:
                self._settle(batch[0][1], error=_current_error())
                return
            log.debug(
                "A shared transaction of %d operations failed; running each alone", len(batch)
            )
            for op, future in batch:
                try:
                    async with self._db.transaction() as conn:
                        result = await op(conn)
                except Exception as exc:
                    self._settle(future, error=exc)
                else:
                    self._settle(future, result=result)
            return
        for (_op, future), result in zip(batch, results, strict=True):
            self._settle(future, result=result)

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


def _current_error() -> BaseException:
    import sys

    error = sys.exc_info()[1]
    assert error is not None
    return error
