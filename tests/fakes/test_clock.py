"""The FakeClock's waits: tests move time and wait on events, never on real time."""

from __future__ import annotations

import asyncio

from bot.supervisor import background_task
from tests.fakes.clock import FakeClock


async def _watcher(clock: FakeClock, name: str, looks: list[float]) -> None:
    """A background task as the bot has them: I/O the clock cannot see, a look at the time,
    then a sleep on the clock."""
    background_task.set(name)
    while True:
        await asyncio.to_thread(lambda: None)  # a database look, say
        await asyncio.to_thread(lambda: None)
        looks.append(clock.monotonic())
        await clock.sleep(10)


async def test_advance_and_settle_returns_once_each_task_looked_at_the_new_time() -> None:
    clock = FakeClock()
    first: list[float] = []
    second: list[float] = []
    tasks = [
        asyncio.create_task(_watcher(clock, "watcher", first)),
        asyncio.create_task(_watcher(clock, "watcher", second)),  # a second replica's
    ]
    try:
        await clock.advance_and_settle(10, "watcher", "watcher")
        assert (first, second) == ([0.0, 10.0], [0.0, 10.0])
        await clock.advance_and_settle(10, "watcher", "watcher")
        assert (first, second) == ([0.0, 10.0, 20.0], [0.0, 10.0, 20.0])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_wait_for_sleepers_wakes_when_a_task_starts_sleeping() -> None:
    clock = FakeClock()
    task = asyncio.create_task(_watcher(clock, "watcher", []))
    try:
        await clock.wait_for_sleepers(1)
        assert clock.sleepers == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
