"""Routes each conversation once it closes: the background task behind grouping.

Intake stores every message at once (``data.db.conversations``) and pushes its ticket's
``regroup_at`` to ``TRIAGE_GROUP_SECONDS`` after it. This task sleeps until the earliest
``regroup_at`` in the database, takes the tickets whose time has come with one
compare-and-set (each goes to exactly one replica) and queues them: the router classifies the
whole conversation once and posts its card, or brings the card up to date after follow-ups.
So a 200-message burst costs one classification and one card, not 200, and the schedule lives
in the database: it survives a restart, and any replica closes a conversation another one
opened if that one stopped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.group_commit import GroupCommit
from bot.routing import TicketRouter
from bot.work_queue import TicketQueue
from data.clock import Clock, sleep_or_wake
from data.db import conversations as conversations_repo
from data.db.tickets import Ticket

log = logging.getLogger(__name__)

#: Longest sleep between two looks (conversations another replica opened and then stopped).
POLL_SECONDS = 2.0
#: Shortest wait between two looks: conversations that close within it are claimed together
#: (at a hundred closes a second, one look each cost a claim transaction each).
BATCH_SECONDS = 0.05


class ConversationCloser:
    """See the module docstring; ``run`` is the supervised task, ``scheduled`` its doorbell."""

    def __init__(
        self,
        commits: GroupCommit,
        queue: TicketQueue,
        router: TicketRouter,
        clock: Clock,
        poll_seconds: float = POLL_SECONDS,
        batch_seconds: float = BATCH_SECONDS,
    ) -> None:
        self._commits = commits
        self._queue = queue
        self._router = router
        self._clock = clock
        self._poll = poll_seconds
        self._batch = batch_seconds
        self._wake = asyncio.Event()
        self._until: datetime | None = None  # when the current sleep ends

    def scheduled(self, closes_at: datetime) -> None:
        """A conversation closes at ``closes_at``: look then, if that is before the next look."""
        if self._until is None or closes_at < self._until:
            self._wake.set()

    async def close_due(self) -> list[int]:
        """Queue every ticket whose conversation has closed; returns their ids."""
        claimed, _upcoming, _now = await self._close_due()
        return claimed

    async def _close_due(self) -> tuple[list[int], datetime | None, datetime]:
        """Claim and queue the closed conversations; (their ids, when the next one closes, the
        time the claim counted as now).

        One shared transaction (on SQLite it runs on the loop, no thread hops): a look at the
        earliest close first, so the usual look, with nothing due, writes nothing.
        """
        owner, until, now = self._router.owner, self._router.lease_until(), self._clock.now()

        async def claim(conn: AsyncConnection) -> tuple[list[int], list[Ticket], datetime | None]:
            upcoming = await conversations_repo.next_due(conn)
            if upcoming is None or upcoming > now:
                return [], [], upcoming
            claimed = await conversations_repo.claim_due(conn, now, owner, until)
            first = await conversations_repo.first_runs(conn, claimed)
            return claimed, first, await conversations_repo.next_due(conn)

        claimed, first, upcoming = await self._commits.run(claim)
        for ticket in first:  # leased to this process just now: no claim, no reads
            self._router.expect(ticket)
        for ticket_id in claimed:
            self._queue.submit(ticket_id)
        if claimed:
            log.debug("Conversations closed: %s", claimed)
        return claimed, upcoming, now

    async def run(self) -> None:
        """Close conversations as their time comes, until cancelled."""
        while True:
            delay = self._poll
            try:
                claimed, upcoming, looked_at = await self._close_due()
                delay = next_look(
                    claimed, upcoming, looked_at, self._clock.now(), self._poll, self._batch
                )
            except Exception:
                log.warning("Could not close conversations; trying again", exc_info=True)
            delay = max(delay, 0.0)
            self._until = self._clock.now() + timedelta(seconds=delay)
            await sleep_or_wake(self._clock, delay, self._wake)
            self._until = None


def next_look(
    claimed: list[int],
    upcoming: datetime | None,
    looked_at: datetime,
    now: datetime,
    poll: float,
    batch: float = 0.0,
) -> float:
    """Seconds until the closer looks again, after a look at ``looked_at`` (the time the claim
    counted as now) that claimed ``claimed`` and found the next close at ``upcoming``.

    A conversation due when the claim looked but not claimed is held by another replica: look
    again after ``poll``. One that closed only after that moment (the claim waits its turn in
    the group commit, and time passes meanwhile) is looked at now: treated as held elsewhere,
    it waited ``poll`` (2 s), with every card behind it (``bench/load.py``: cards' p99 2 s).
    Never less than ``batch``, so closes that come close together share one claim.
    """
    if upcoming is None:
        return poll
    if not claimed and upcoming <= looked_at:
        return poll
    return max(batch, min(poll, (upcoming - now).total_seconds()))
