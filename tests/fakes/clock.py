"""A clock the test moves: ``advance`` jumps time and wakes every sleeper whose time came.

Wall time starts at the real current time (so rows stamped elsewhere with the real clock stay
in order) and then moves only when the test says so.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.supervisor import background_task


class FakeClock:
    """Implements ``data.clock.Clock``; see the module docstring."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime.now(UTC)
        self._offset = 0.0
        self._sleepers: list[_Sleeper] = []
        self._sleeps = 0  # sleeps begun so far: orders them
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
        self._sleeps += 1
        entry = _Sleeper(self._offset + seconds, future, background_task.get(), self._sleeps)
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
        return sum(1 for s in self._sleepers if not s.future.done())

    async def advance(self, seconds: float) -> None:
        """Let what is ready run up to its next wait, move time on by ``seconds``, wake the
        sleepers that are due and let them run a little.

        Running the ready tasks first matters: a task created just before (say, a retry
        scheduled a moment ago) must be asleep on the clock before time moves, or it would
        start its wait after the jump and never be woken by it.
        """
        await _let_ready_tasks_run()
        self._jump(seconds)
        await _let_ready_tasks_run()

    async def advance_and_settle(self, seconds: float, *tasks: str, within: float = 60.0) -> None:
        """``advance`` for background tasks that look at the time, do I/O the test cannot see
        the end of (a database look, say), then sleep on the clock again.

        ``tasks`` are background task names (``bot.supervisor``; a name twice for two
        replicas' tasks on this clock). Waits until each of them is
        asleep on the clock, so none is half-way through a look at the time before the jump;
        moves time on; then waits until each has gone back to sleep: each has finished a look
        at the new time. Each must be due within ``seconds``. ``within`` bounds both waits in
        real time; a passing test returns as soon as the tasks are asleep.
        """
        wanted = Counter(tasks)
        await self._wait(lambda: self._asleep(wanted, since=0), within)
        mark = self._sleeps  # no await since the check: nothing has looked at the time since
        self._jump(seconds)
        await self._wait(lambda: self._asleep(wanted, since=mark), within)

    async def wait_for_sleepers(self, count: int, within: float = 10.0) -> None:
        """Wait (bounded, in real time) until at least ``count`` coroutines sleep on the clock:
        the background tasks have reached their wait and an ``advance`` will wake them."""
        await self._wait(lambda: self.sleepers >= count, within)

    def _jump(self, seconds: float) -> None:
        self._offset += seconds
        for sleeper in list(self._sleepers):
            if sleeper.at <= self._offset and not sleeper.future.done():
                sleeper.future.set_result(None)

    def _asleep(self, wanted: Counter[str], *, since: int) -> bool:
        """Whether at least ``wanted[name]`` background tasks of each name sleep on the clock
        in sleeps begun after the ``since``-th."""
        asleep = Counter(s.task for s in self._sleepers if s.order > since and not s.future.done())
        return all(asleep[name] >= count for name, count in wanted.items())

    async def _wait(self, ready: Callable[[], bool], within: float) -> None:
        """Wait until ``ready()``, looking again whenever a coroutine starts sleeping."""
        async with asyncio.timeout(within):
            while True:
                self._changed.clear()
                await _let_ready_tasks_run()
                if ready():
                    return
                await self._changed.wait()


@dataclass(frozen=True, eq=False)
class _Sleeper:
    at: float
    future: asyncio.Future[None]
    task: str | None  # the background task sleeping (``bot.supervisor.background_task``)
    order: int


async def _let_ready_tasks_run(rounds: int = 20) -> None:
    """Yield to the event loop ``rounds`` times: tasks that are ready run until they next wait
    on I/O or the clock."""
    for _ in range(rounds):
        await asyncio.sleep(0)
