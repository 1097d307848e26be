"""Automatic retrains in the running bot: a background task of the runtime's supervisor.

Every ``interval`` it asks ``admin.auto_retrain`` whether a retrain is due (the schedule, the
pause switch, no retrain running anywhere) and, if so, starts the /retrain job; the job runs
in this process (its training in a child process) owned by the ``JobFollower``, and its end is
one line in the admin channel. Replicas all look, and the job lock lets one of them start it.
"""

from __future__ import annotations

import asyncio
import logging

from admin.auto_retrain import AutoRetrainStarted, auto_retrain_line, start_auto_retrain
from admin.context import AdminContext
from admin.retrain import RetrainOutcome, run_retrain
from admin.retrain_schedule import RetrainSchedule
from bot.errors import SlackCallError
from bot.job_follower import JobFollower
from bot.slack_gateway import SlackGateway
from data.clock import Clock

log = logging.getLogger(__name__)

#: Seconds between looks (two indexed counts and one lookup of the newest job).
INTERVAL = 30.0


class AutoRetrainer:
    """See the module docstring."""

    def __init__(
        self,
        ctx: AdminContext,
        slack: SlackGateway,
        clock: Clock,
        jobs: JobFollower,
        *,
        schedule: RetrainSchedule | None = None,
        interval: float = INTERVAL,
    ) -> None:
        self.ctx = ctx
        self._slack = slack
        self._clock = clock
        self._jobs = jobs
        self.schedule = schedule or RetrainSchedule()
        self.interval = interval
        #: The automatic retrain this process started last (tests wait for it).
        self.last_run: asyncio.Task[RetrainOutcome] | None = None

    async def run(self) -> None:
        """Look every ``interval`` until cancelled (the supervisor runs this)."""
        while True:
            try:
                await self.check()
            except Exception:
                log.warning("Could not check whether a retrain is due", exc_info=True)
            await self._clock.sleep(self.interval)

    async def check(self) -> AutoRetrainStarted | None:
        """Start an automatic retrain when one is due; its run goes on in the background."""
        if not self.ctx.settings.auto_retrain:
            return None
        started = await start_auto_retrain(
            self.ctx,
            self.schedule,
            self._clock.now(),
            slack_channel=self.ctx.settings.admin_channel,
        )
        if started is not None:
            self.last_run = self._jobs.spawn(self._run(started))
        return started

    async def _run(self, started: AutoRetrainStarted) -> RetrainOutcome:
        outcome = await run_retrain(self.ctx, started.job.id)
        channel = self.ctx.settings.admin_channel
        if channel:
            try:
                await self._slack.post_message(channel, auto_retrain_line(started, outcome))
            except SlackCallError:
                log.warning("could not post the automatic retrain's outcome", exc_info=True)
        return outcome
