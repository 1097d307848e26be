"""A clock the test moves: ``advance`` jumps time and wakes every sleeper whose time came.

Wall time starts at the real current time (so rows stamped elsewhere with the real clock stay
in order) and then moves only when the test says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Implements ``data.clock.Clock``; see the module docstring."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime.now(UTC)
        self._offset = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return self._offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._offset + seconds, future)
        self._sleepers.append(entry)
        self._changed.set()
        try:
            await future
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def sleepers(self) -> int:
        """How many coroutines are sleeping on this clock now."""
        return sum(1 for _at, future in self._sleepers if not future.done())

    async def advance(self, seconds: float) -> None:
        """Let what is ready run up to its next wait, move time on by ``seconds``, wake the
        sleepers that are due and let them run a little.

        Running the ready tasks first matters: a task created just before (say, a retry
        scheduled a moment ago) must be asleep on the clock before time moves, or it would
        start its wait after the jump and never be woken by it.
        """
        await _let_ready_tasks_run()
        self._offset += seconds
        for at, future in list(self._sleepers):
            if at <= self._offset and not future.done():
                future.set_result(None)
        await _let_ready_tasks_run()

    async def advance_until(
        self, condition: Callable[[], bool], step: float, within: float = 60.0
    ) -> None:
        """Move time on by ``step`` at a time until ``condition`` holds (bounded, in real time).

        For work that waits on the clock after I/O the test cannot see the end of (a database
        look, say): one ``advance`` may come before that work is asleep, so time moves on
        again until it has happened.
        """
        async with asyncio.timeout(within):
            while not condition():
                await self.advance(step)
                await asyncio.sleep(0.01)  # database threads and sockets make progress

    async def wait_for_sleepers(self, count: int, within: float = 10.0) -> None:
        """Wait (bounded, in real time) until at least ``count`` coroutines sleep on the clock:
        the background tasks have reached their wait and an ``advance`` will wake them."""
        async with asyncio.timeout(within):
            while self.sleepers < count:
                self._changed.clear()
                await self._changed.wait()


async def _let_ready_tasks_run(rounds: int = 20) -> None:
    """Yield to the event loop ``rounds`` times: tasks that are ready run until they next wait
    on I/O or the clock."""
    for _ in range(rounds):
        await asyncio.sleep(0)
