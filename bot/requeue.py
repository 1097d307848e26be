"""Tickets an admin handed back (``triage tickets retry``, the App Home) reach the work queue.

A retry marks failed tickets ``requeued`` in the database, from any process. Every running
replica looks for them every few seconds and claims them with one compare-and-set statement
(``tickets.claim_requeued``): each ticket goes to exactly one replica, which submits it to its
queue; the others get nothing. A claimed ticket is unfinished again (``classified``), so if the
replica dies before routing it, the next start resumes it like any other. The router then
does only what the ticket's ``routings`` say was not done yet, and, since the run that failed
may have been cut short between a post and its record (another process, long ago), it looks
for each post in Slack before making it, as it does for tickets resumed after a restart.

The same watcher takes over unfinished tickets whose lease ran out (their process died), every
quarter of a lease, and at start-up ``take_over(others_only=False)`` is how a bot resumes.
"""

from __future__ import annotations

import asyncio
import logging

from bot.routing import TicketRouter
from bot.work_queue import TicketQueue
from data.clock import sleep_or_wake
from data.db import tickets as tickets_repo
from data.db.database import Database

log = logging.getLogger(__name__)

#: Seconds between two looks for requeued tickets (one indexed count that is usually 0).
POLL_SECONDS = 2.0


class RequeueWatcher:
    """Claims requeued tickets for this process and queues them (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        queue: TicketQueue,
        router: TicketRouter,
        interval: float = POLL_SECONDS,
    ) -> None:
        self._db = db
        self._queue = queue
        self._router = router
        self._interval = interval
        #: Leases run out after ``lease_seconds``: look for abandoned tickets four times as often.
        self._take_over_interval = router.lease_seconds / 4
        self._clock = router.clock
        self._wake = asyncio.Event()

    async def claim(self) -> list[int]:
        """Claim the requeued tickets no other process took and queue them; returns their ids."""
        # A read first: the usual answer is none, and a read takes no SQLite write lock away
        # from the ticket writes. Its own transaction, so the claim below starts as a write.
        async with self._db.transaction() as conn:
            if not await tickets_repo.count_in_status(conn, tickets_repo.REQUEUED):
                return []
        async with self._db.transaction() as conn:
            claimed = await tickets_repo.claim_requeued(
                conn, owner=self._router.owner, lease_until=self._router.lease_until()
            )
        return self._queued(claimed, logging.INFO, "Claimed %d requeued ticket(s) for routing")

    def _queued(self, claimed: list[int], level: int, message: str) -> list[int]:
        # Their last run may have stopped between a post and its record, in another process.
        self._router.mark_uncertain(claimed)
        for ticket_id in claimed:
            self._queue.submit(ticket_id)
        if claimed:
            log.log(level, message, len(claimed), extra={"ticket_ids": claimed[:50]})
        return claimed

    def wake(self) -> None:
        """Look now instead of at the next interval (this process just requeued tickets)."""
        self._wake.set()

    async def take_over(self, *, others_only: bool = True) -> list[int]:
        """Claim unfinished tickets no live process holds and queue them; returns their ids.

        ``others_only`` (a running bot) leaves this process's own tickets alone: it has them in
        hand, maybe waiting to retry. At start-up every unheld ticket is taken, its own too.
        """
        async with self._db.transaction() as conn:
            claimed = await tickets_repo.claim_unfinished(
                conn,
                self._router.owner,
                self._router.lease_until(),
                others_only=others_only,
                now=self._clock.now(),
            )
        if others_only:
            message = "Took over %d ticket(s) whose bot process stopped holding them"
            return self._queued(claimed, logging.WARNING, message)
        return self._queued(claimed, logging.INFO, "Resuming %d ticket(s) stored but not routed")

    async def run(self) -> None:
        """Look for requeued and abandoned tickets until cancelled (the runtime's supervisor
        runs this; intervals are on the router's clock)."""
        next_take_over = self._clock.monotonic() + self._take_over_interval
        while True:
            try:
                await self.claim()
                if self._clock.monotonic() >= next_take_over:
                    next_take_over = self._clock.monotonic() + self._take_over_interval
                    await self.take_over()
            except Exception:
                # The database may be briefly away; the tickets stay requeued for a later look.
                log.warning("Could not claim requeued or abandoned tickets", exc_info=True)
            await sleep_or_wake(self._clock, self._interval, self._wake)
