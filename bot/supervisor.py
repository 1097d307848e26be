"""Every background task of the bot, under one owner.

A task is a name and a coroutine function that runs until cancelled (the group commit, the
ticket workers, the requeue watcher, the registry follower, the retrain follower). The
supervisor starts them in the order they were added, restarts one that crashes (with an
error log line naming it and a growing, bounded delay on the runtime's clock) and stops them
in the reverse order, each awaited before the next is stopped, so a task never outlives what
it uses. New background work is added here by the runtime, never started by a listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from data.clock import Clock

log = logging.getLogger(__name__)

#: The name of the background task the running code belongs to (None outside them); tasks a
#: background task starts inherit it. Test clocks read it to know which task sleeps on them.
background_task: ContextVar[str | None] = ContextVar("background_task", default=None)

#: First and longest wait before restarting a crashed task, in seconds.
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0


@dataclass
class _Entry:
    name: str
    run: Callable[[], Awaitable[None]]
    task: asyncio.Task[None] | None = None
    crashes: int = field(default=0)


class Supervisor:
    """See the module docstring."""

    def __init__(
        self,
        clock: Clock,
        *,
        restart_delay: float = RESTART_DELAY,
        max_restart_delay: float = MAX_RESTART_DELAY,
    ) -> None:
        self._clock = clock
        self._restart_delay = restart_delay
        self._max_restart_delay = max_restart_delay
        self._entries: dict[str, _Entry] = {}

    def add(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Register ``run`` as the background task ``name`` (started by ``start``)."""
        if name in self._entries:
            raise ValueError(f"A background task named {name!r} is already registered.")
        self._entries[name] = _Entry(name, run)

    def start(self) -> None:
        """Start every registered task not running yet, in the order they were added."""
        for entry in self._entries.values():
            if entry.task is None:
                entry.task = asyncio.create_task(self._keep(entry), name=entry.name)

    @property
    def running(self) -> list[str]:
        """The names of the tasks running now, in start order."""
        return [e.name for e in self._entries.values() if e.task is not None and not e.task.done()]

    def crashes(self, name: str) -> int:
        """How many times task ``name`` crashed and was restarted."""
        return self._entries[name].crashes

    async def stop(self, *names: str) -> None:
        """Stop the named tasks (default: all) in the reverse of their start order."""
        chosen = [e for e in self._entries.values() if not names or e.name in names]
        for entry in reversed(chosen):
            task, entry.task = entry.task, None
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep(self, entry: _Entry) -> None:
        background_task.set(entry.name)  # this task's own context: its name for what it starts
        delay = self._restart_delay
        while True:
            started = self._clock.monotonic()
            try:
                await entry.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                entry.crashes += 1
                if self._clock.monotonic() - started > self._max_restart_delay:
                    delay = self._restart_delay  # it ran fine for a while: start over
                log.error(
                    "Background task %s crashed; restarting it in %.0f s",
                    entry.name,
                    delay,
                    exc_info=True,
                )
                await self._clock.sleep(delay)
                delay = min(delay * 2, self._max_restart_delay)
                continue
            log.info("Background task %s finished", entry.name)
            return
