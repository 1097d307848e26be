"""The in-process queue of tickets waiting for work; the durable state is in the database.

Listeners submit a ticket id after storing what happened; workers run the router on it. The
queue holds ids only, so losing it (a crash) loses nothing: on start the bot submits every
unfinished ticket again. A ticket is never worked on by two workers at once, and one submitted
while it is being worked on runs again afterwards (so a correction during routing is applied).
Transient failures come back after a bounded, growing delay.

No ticket is left behind by an error: the work function either finishes, asks to run again
later (``RetryLater``, after it counted the attempt in the database), or raises; a ticket whose
work raised runs again after ``retry_delay(failures in a row)`` seconds (the work function could
not even record its failure, e.g. the database is away, so only this process can bring it back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from data.clock import Clock, SystemClock

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Raised by the work function: run this ticket again after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.1f}s")
        self.delay = delay


Work = Callable[[int], Awaitable[None]]


def backoff_delay(failures: int) -> float:
    """Seconds before the next run after ``failures`` errors in a row: 1, 2, 4 ... 60."""
    return float(min(2 ** max(failures - 1, 0), 60))


class TicketQueue:
    """Bounded pool of workers over ticket ids (see the module docstring)."""

    def __init__(
        self,
        work: Work,
        workers: int = 8,
        *,
        clock: Clock | None = None,
        retry_delay: Callable[[int], float] = backoff_delay,
    ) -> None:
        """``clock``: delayed runs wait on it (tests move a fake one); ``retry_delay``: seconds
        before running again a ticket whose work raised n times in a row.
        """
        self._work = work
        self._workers = workers
        self._clock: Clock = clock or SystemClock()
        self._retry_delay = retry_delay
        self._failures: dict[int, int] = {}
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._queued: set[int] = set()
        self._running: set[int] = set()
        self._again: set[int] = set()
        self._delayed: dict[int, asyncio.Task[None]] = {}
        self._delays: dict[int, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, ticket_id: int) -> None:
        """Ask for work on ``ticket_id`` (duplicates while queued are merged)."""
        timer = self._delayed.pop(ticket_id, None)
        self._delays.pop(ticket_id, None)
        if timer is not None:
            timer.cancel()
        if ticket_id in self._running:
            self._again.add(ticket_id)
        elif ticket_id not in self._queued:
            self._queued.add(ticket_id)
            self._queue.put_nowait(ticket_id)
        self._idle.clear()

    async def run_workers(self) -> None:
        """Run the workers until cancelled, then stop them (the runtime's supervisor runs this).

        Unfinished tickets stay unfinished in the database.
        """
        self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    def start(self) -> None:
        """Start the workers (idempotent); ``run_workers`` is what the runtime uses."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._worker(), name=f"ticket-worker-{n}")
                for n in range(self._workers)
            ]

    async def stop(self) -> None:
        """Stop the workers; unfinished tickets stay unfinished in the database."""
        for timer in self._delayed.values():
            timer.cancel()
        self._delayed.clear()
        self._delays.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @property
    def pending(self) -> int:
        """Tickets queued, running or waiting to retry."""
        return len(self._queued) + len(self._running) + len(self._delayed)

    async def drain(self) -> None:
        """Wait until no ticket is queued, running or waiting to retry (tests, shutdown).

        Callers bound the wait with ``asyncio.timeout``.
        """
        while True:
            await self._idle.wait()
            if self.pending == 0:
                return
            self._idle.clear()

    def delayed(self) -> dict[int, float]:
        """Tickets waiting on the clock to run again, with the delay each was given (seconds)."""
        return dict(self._delays)

    def holds(self, ticket_id: int) -> bool:
        """Whether ``ticket_id`` is queued, running or waiting to run again here."""
        return ticket_id in self._queued or ticket_id in self._running or ticket_id in self._delayed

    def _check_idle(self) -> None:
        if self.pending == 0:
            self._idle.set()

    async def _run_later(self, delay: float, ticket_id: int) -> None:
        # Shown in ``delayed()`` only from here: once listed, the wait is on the clock.
        self._delays[ticket_id] = delay
        await self._clock.sleep(delay)
        self._delayed.pop(ticket_id, None)
        self._delays.pop(ticket_id, None)
        self.submit(ticket_id)

    async def _worker(self) -> None:
        while True:
            ticket_id = await self._queue.get()
            self._queued.discard(ticket_id)
            self._running.add(ticket_id)
            delay: float | None = None
            try:
                await self._work(ticket_id)
            except RetryLater as retry:
                delay = retry.delay
                self._failures.pop(ticket_id, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures = self._failures.get(ticket_id, 0) + 1
                self._failures[ticket_id] = failures
                delay = self._retry_delay(failures)
                log.exception(
                    "Ticket %s: unexpected error (%d in a row); it runs again in %.0fs",
                    ticket_id,
                    failures,
                    delay,
                )
            else:
                self._failures.pop(ticket_id, None)
            finally:
                self._running.discard(ticket_id)
                self._queue.task_done()
            if ticket_id in self._again:
                self._again.discard(ticket_id)
                self.submit(ticket_id)
            elif delay is not None:
                self._delayed[ticket_id] = asyncio.create_task(
                    self._run_later(delay, ticket_id), name=f"ticket-{ticket_id}-later"
                )
            self._check_idle()
