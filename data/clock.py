"""The one clock of a process: wall time for stored timestamps, monotonic time and sleeping.

Everything that waits or compares times (ticket leases, job heartbeats, the requeue watcher,
the registry follower, progress-message throttling, the supervisor's restart delay) asks the
``Clock`` it was given, never ``datetime.now`` or ``asyncio.sleep`` directly. Production uses
``SystemClock``; tests pass a fake they advance, so nothing in a test waits for real time to
pass. It lives in ``data`` because the lowest layer that needs it is the database's leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """What code that waits or stamps times needs."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC (what every timestamp column stores)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for intervals."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``."""
        await asyncio.sleep(seconds)


def as_utc(moment: datetime) -> datetime:
    """A stored or typed time as aware UTC: SQLite hands back naive datetimes, and every time this
    project stores is UTC; an aware time is converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def sleep_or_wake(
    clock: Clock, seconds: float, wake: asyncio.Event, *, clear: bool = True
) -> None:
    """Return after ``seconds`` on ``clock``, or as soon as ``wake`` is set (then clear it,
    unless ``clear`` is false: a stop signal stays set for every later check)."""
    if not wake.is_set():
        sleeper = asyncio.ensure_future(clock.sleep(seconds))
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if clear:
        wake.clear()
