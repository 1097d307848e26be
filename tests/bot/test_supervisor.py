"""The supervisor of the bot's background tasks: start order, restart on crash, stop order."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.supervisor import Supervisor
from tests.fakes.clock import FakeClock


async def test_tasks_start_in_order_and_stop_in_reverse_each_awaited() -> None:
    events: list[str] = []

    def task(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            events.append(f"start {name}")
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(0)  # a stop that takes a moment: the next waits for it
                events.append(f"stop {name}")

        return run

    supervisor = Supervisor(FakeClock())
    for name in ("commits", "workers", "watcher"):
        supervisor.add(name, task(name))
    supervisor.start()
    await asyncio.sleep(0)
    assert supervisor.running == ["commits", "workers", "watcher"]
    await supervisor.stop()
    assert events == [
        "start commits",
        "start workers",
        "start watcher",
        "stop watcher",
        "stop workers",
        "stop commits",
    ]
    assert supervisor.running == []


async def test_a_crashed_task_is_logged_and_restarted_after_a_growing_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError("database went away")
        await asyncio.Event().wait()

    supervisor = Supervisor(clock, restart_delay=1.0)
    supervisor.add("requeue-watcher", flaky)
    with caplog.at_level(logging.ERROR, logger="bot.supervisor"):
        supervisor.start()
        await clock.wait_for_sleepers(1)
        assert runs == 1  # it waits on the clock before the restart
        await clock.advance(1.0)
        await clock.wait_for_sleepers(1)
        assert runs == 2
        await clock.advance(1.0)  # the second delay is twice the first
        assert runs == 2
        await clock.advance(1.0)
        assert runs == 3
    assert supervisor.running == ["requeue-watcher"]
    assert supervisor.crashes("requeue-watcher") == 2
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Background task requeue-watcher crashed; restarting it in 1 s",
        "Background task requeue-watcher crashed; restarting it in 2 s",
    ]
    assert all(r.exc_info is not None for r in caplog.records)
    await supervisor.stop()


async def test_a_name_is_registered_once() -> None:
    supervisor = Supervisor(FakeClock())
    supervisor.add("group-commit", asyncio.Event().wait)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group-commit"):
        supervisor.add("group-commit", asyncio.Event().wait)  # type: ignore[arg-type]
