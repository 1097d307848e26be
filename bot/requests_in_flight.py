"""Requests Slack is waiting on go before the bot's work that can wait.

Slack waits for the acknowledgement of every request (3 s at most, and the desk's goal is a
p99 within 50 ms), and the bot answers it only once its listener returns
(``process_before_response``). Everything runs on one event loop, so when the bot is busy
(after a restart, with the Slack side of everything that arrived meanwhile to draw) an
acknowledgement waits behind that work's steps. The web handler counts the requests in
flight (``serving``); work that can wait (the desk's Slack side, ``bot.desk``) awaits
``turn`` before each step: at once when no request is in flight, else when the last one is
answered or after ``MAX_WAIT`` seconds (so it is slowed down, never starved).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from data.clock import Clock, sleep_or_wake

#: The longest a step of waiting work gives way to requests in flight, in seconds.
MAX_WAIT = 0.05


class RequestsInFlight:
    """See the module docstring."""

    def __init__(self, clock: Clock, *, max_wait: float = MAX_WAIT) -> None:
        self._clock = clock
        self._max_wait = max_wait
        self._count = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @property
    def count(self) -> int:
        """Requests being answered now."""
        return self._count

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Around the handling of one request from Slack, up to its answer."""
        self._count += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._quiet.set()

    async def turn(self) -> None:
        """Wait, up to ``max_wait`` seconds, until no request is in flight."""
        if self._count:
            await sleep_or_wake(self._clock, self._max_wait, self._quiet, clear=False)
