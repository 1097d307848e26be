"""The first-response sweep: nudges on cards and escalations to the triage channel.

One background task (``run``), registered with the supervisor, on every replica; only the
holder of the ``response-timers`` lease (``data/db/leases.py``) sweeps, so the work runs on one
replica at a time and moves to another when its holder dies. Each sweep:

1. schedules: every unanswered ticket of a department with ``first_response_minutes`` gets a
   nudge due at the target and an escalation at twice it, counted in the department's business
   hours from when the requester asked (``classifier.business_hours``); a correction that moved
   the ticket reschedules them for the new department;
2. fires the due ones, in batches: a ticket answered or resolved meanwhile cancels its timers;
   the others are claimed in the database, posted (the nudge in the card's thread, mentioning
   the department's ``oncall_usergroup``; the escalation in the triage channel with a link to
   the card) and recorded, so each is posted at most once and survives a restart. A timer whose
   sweep was cut short between claim and record is looked for in Slack (message metadata)
   before it is posted.

Times come from the injected ``Clock``; tests call ``sweep`` after moving a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.errors import PermanentSlackError, SlackCallError
from bot.slack_gateway import TICKET_MESSAGE_EVENT, SlackGateway, ticket_calls
from bot.views import escalation_text, nudge_text
from classifier.business_hours import add_open_time
from classifier.taxonomy import Department, Taxonomy
from data.clock import Clock, sleep_or_wake
from data.db import leases as leases_repo
from data.db import response_timers as timers_repo
from data.db.database import Database
from data.db.response_timers import DueTimer, Finished, NewTimer

log = logging.getLogger(__name__)

LEASE = "response-timers"
#: Seconds between sweeps: a nudge is posted at most this long (plus the sweep) after it is due.
SWEEP_SECONDS = 5.0
#: A timer already this far overdue when first scheduled is recorded ``late``, not posted.
LATE_AFTER = timedelta(hours=1)
#: Timers handled per database round trip, and Slack posts in flight at once.
BATCH = 500
CONCURRENCY = 32


@dataclass
class SweepFigures:
    """What one sweep did (for logs and the benchmark)."""

    scheduled: int = 0
    posted: int = 0
    cancelled: int = 0
    failed: int = 0
    held_elsewhere: bool = False
    outcomes: dict[str, int] = field(default_factory=dict)


class ResponseTimers:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        slack: SlackGateway,
        taxonomy: Taxonomy,
        clock: Clock,
        *,
        owner: str,
        triage_channel: str | None,
        interval: float = SWEEP_SECONDS,
    ) -> None:
        self._db = db
        self._slack = slack
        self._taxonomy = taxonomy
        self._clock = clock
        self._owner = owner
        self._triage_channel = triage_channel
        self._interval = interval
        self._wake = asyncio.Event()
        # One sweep at a time in this process (the lease keeps other processes out).
        self._sweeping = asyncio.Lock()
        self._targeted = {d.name: d for d in taxonomy if d.first_response_minutes}
        #: Set once ``run`` has swept for the first time (tests wait for it before they sweep
        #: themselves, so the start-up sweep cannot run in the middle of theirs).
        self.first_sweep = asyncio.Event()

    @property
    def active(self) -> bool:
        """Whether any department has a first-response target (else nothing to sweep)."""
        return bool(self._targeted)

    async def run(self) -> None:
        """Sweep every ``interval`` seconds while holding the lease (the supervisor's task)."""
        while True:
            try:
                await self.sweep()
            except SlackCallError:
                log.warning("The response-timer sweep stopped on a Slack error", exc_info=True)
            self.first_sweep.set()
            await sleep_or_wake(self._clock, self._interval, self._wake)

    def wake(self) -> None:
        """Sweep now instead of at the next interval."""
        self._wake.set()

    async def _hold_lease(self) -> bool:
        now = self._clock.now()
        # Held for three sweeps: a replica that stops renewing hands over within a minute.
        until = now + timedelta(seconds=max(3 * self._interval, 30.0))
        async with self._db.transaction() as conn:
            return await leases_repo.claim_lease(conn, LEASE, self._owner, now=now, until=until)

    async def release(self) -> None:
        """Hand the lease on (this process is stopping)."""
        async with self._db.transaction() as conn:
            await leases_repo.release_lease(conn, LEASE, self._owner)

    async def sweep(self) -> SweepFigures:
        """Schedule new timers and fire the due ones, if this process holds the lease."""
        async with self._sweeping:
            return await self._sweep()

    async def _sweep(self) -> SweepFigures:
        figures = SweepFigures()
        if not self._targeted:
            return figures
        if not await self._hold_lease():
            figures.held_elsewhere = True
            return figures
        figures.scheduled = await self._schedule()
        while True:
            async with self._db.transaction() as conn:
                due = await timers_repo.due(conn, self._clock.now(), limit=BATCH)
            if not due:
                break
            if not await self._fire(due, figures):
                break
            if not await self._hold_lease():  # another replica took over: stop here
                figures.held_elsewhere = True
                break
        if figures.posted or figures.failed:
            log.info(
                "Response timers: %d posted, %d cancelled, %d failed",
                figures.posted,
                figures.cancelled,
                figures.failed,
            )
        return figures

    def _timers(self, dept: Department, ticket_id: int, opened_at: datetime) -> list[NewTimer]:
        assert dept.first_response_minutes is not None
        now = self._clock.now()
        timers = []
        for kind, factor in ((timers_repo.NUDGE, 1), (timers_repo.ESCALATION, 2)):
            target = timedelta(minutes=dept.first_response_minutes * factor)
            due_at = add_open_time(dept.hours, opened_at, target)
            late = due_at < now - LATE_AFTER
            timers.append(
                NewTimer(ticket_id, kind, dept.name, due_at, timers_repo.LATE if late else None)
            )
        return timers

    async def _schedule(self) -> int:
        scheduled = 0
        while True:
            async with self._db.transaction() as conn:
                waiting = await timers_repo.unscheduled(conn, self._targeted.keys())
                timers = [
                    timer
                    for ticket in waiting
                    for timer in self._timers(
                        self._targeted[ticket.department], ticket.ticket_id, ticket.opened_at
                    )
                ]
                await timers_repo.schedule(conn, timers, at=self._clock.now())
            scheduled += len(waiting)
            if len(waiting) < 5_000:
                return scheduled

    def _cancelled(self, timer: DueTimer) -> str | None:
        """Why ``timer`` is not to be posted, or None to post it."""
        if timer.status is None or timer.status == "resolved":
            return timers_repo.RESOLVED
        if timer.answered:
            return timers_repo.ANSWERED
        if timer.current_department not in self._targeted:
            return timers_repo.UNTARGETED
        if timer.kind == timers_repo.NUDGE and timer.card is None:
            return timers_repo.NOWHERE
        if timer.kind == timers_repo.ESCALATION and not (self._triage_channel and timer.card):
            return timers_repo.NOWHERE
        return None

    async def _fire(self, due: list[DueTimer], figures: SweepFigures) -> bool:
        """Cancel or post ``due``; False when Slack failed for some of them."""
        done: list[Finished] = []
        to_post: list[DueTimer] = []
        moved: dict[int, list[NewTimer]] = {}
        for timer in due:
            department = timer.current_department
            if department not in (None, timer.department) and department in self._targeted:
                # A correction moved it: due again on the new department's target.
                moved[timer.ticket_id] = self._timers(
                    self._targeted[department], timer.ticket_id, timer.opened_at
                )
                continue
            reason = self._cancelled(timer)
            if reason is None:
                to_post.append(timer)
            else:
                done.append(Finished(timer.ticket_id, timer.kind, reason))
                figures.cancelled += 1
        now = self._clock.now()
        async with self._db.transaction() as conn:
            await timers_repo.claim(conn, [t.key for t in to_post], at=now)
            await timers_repo.finish(conn, done, at=now)
            await timers_repo.schedule(conn, [t for ts in moved.values() for t in ts], at=now)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def post(timer: DueTimer) -> Finished | None:
            async with gate:
                try:
                    return await self._post(timer)
                except PermanentSlackError:
                    log.warning("Ticket %s: its %s cannot be posted", timer.ticket_id, timer.kind)
                    figures.failed += 1
                    return Finished(timer.ticket_id, timer.kind, timers_repo.FAILED)
                except SlackCallError:
                    # Left claimed: the next sweep looks for it in Slack, then posts it.
                    log.warning("Ticket %s: %s to try again", timer.ticket_id, timer.kind)
                    figures.failed += 1
                    return None

        with ticket_calls():  # a post whose answer was lost is looked for, not sent again
            results = await asyncio.gather(*(post(t) for t in to_post))
        finished = [r for r in results if r is not None]
        async with self._db.transaction() as conn:
            await timers_repo.finish(conn, finished, at=self._clock.now())
        figures.posted += sum(r.outcome == timers_repo.POSTED for r in finished)
        for result in [*done, *finished]:
            figures.outcomes[result.outcome] = figures.outcomes.get(result.outcome, 0) + 1
        # Slack failed for some (left claimed): end this sweep; the next one tries them again.
        return len(finished) == len(to_post)

    async def _post(self, timer: DueTimer) -> Finished:
        dept = self._targeted[timer.department]
        assert timer.card is not None
        card_channel, card_ts = timer.card
        payload = {"ticket_id": timer.ticket_id, "kind": timer.kind, "label": dept.name, "n": 1}
        if timer.kind == timers_repo.NUDGE:
            channel, thread = card_channel, card_ts
        else:
            assert self._triage_channel is not None
            channel, thread = self._triage_channel, None
        if timer.uncertain:
            found = await self._slack.find_ticket_message(
                channel, payload, after_ts=card_ts, thread_ts=thread
            )
            if found is not None:
                log.info("Ticket %s: its %s was already posted", timer.ticket_id, timer.kind)
                return Finished(timer.ticket_id, timer.kind, timers_repo.POSTED, channel, found)
        waited = self._clock.now() - timer.opened_at
        metadata = {"event_type": TICKET_MESSAGE_EVENT, "event_payload": payload}
        if timer.kind == timers_repo.NUDGE:
            ts = await self._slack.post_message(
                channel,
                nudge_text(dept, waited),
                thread_ts=thread,
                metadata=metadata,
                mention_usergroup=dept.oncall_usergroup,
            )
        else:
            link = await self._slack.permalink(card_channel, card_ts)
            text = escalation_text(dept, timer.ticket_id, waited, link)
            ts = await self._slack.post_message(channel, text, metadata=metadata)
        return Finished(timer.ticket_id, timer.kind, timers_repo.POSTED, channel, ts)
