"""Retrains as the bot runs them: one progress message each, and resumption after a crash.

A retrain's progress is one message in a thread in the admin channel (TRIAGE_ADMIN_CHANNEL,
else the channel the command came from), updated in place at most once per ``update_interval``.
``JobFollower.follow`` is a background task of the runtime: every ``poll_interval`` it resumes
the retrains whose process died (their lease ran out), in the same thread. The follower also
owns the work the admin surfaces start (retrains, reports): stopping it cancels that work, and
a running retrain stays resumable by the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from admin.context import AdminContext
from admin.progress import ProgressBoard
from admin.retrain import (
    RetrainOutcome,
    RetrainRequest,
    RetrainStatus,
    resolve_learner,
    resume_orphaned_retrains,
    run_retrain,
)
from bot.admin_views import retrain_board_title, retrain_finished, retrain_started
from bot.errors import SlackCallError
from bot.slack_gateway import SlackGateway
from classifier.protocols import ProgressCallback, ProgressEvent
from data.clock import Clock
from data.db import jobs

log = logging.getLogger(__name__)

#: Seconds between chat.update calls of one progress message (chat.update is Tier 3).
UPDATE_INTERVAL = 1.0
#: Seconds between looks for orphaned retrains.
POLL_INTERVAL = 3.0

#: Called with the requester's user id once a retrain this process ran has finished.
RetrainFinished = Callable[[str], Awaitable[None]]


class ProgressMessage:
    """A ProgressBoard shown in one Slack message, updated at most once per interval."""

    def __init__(
        self,
        slack: SlackGateway,
        clock: Clock,
        channel: str,
        ts: str,
        board: ProgressBoard,
        interval: float,
    ) -> None:
        self._slack = slack
        self._clock = clock
        self.channel, self.ts, self.board = channel, ts, board
        self._interval = interval
        self._dirty = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def __call__(self, event: ProgressEvent) -> None:
        self.board.update(event)
        self._dirty.set()

    async def _push(self) -> None:
        try:
            await self._slack.update_message(self.channel, self.ts, self.board.render())
        except SlackCallError:
            log.warning("could not update the retrain progress message", exc_info=True)

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._push()
            await self._clock.sleep(self._interval)

    async def close(self, outcome: RetrainOutcome) -> None:
        """Stop updating and show the outcome."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.board.finish(
            retrain_finished(outcome.status, outcome.message),
            failed=outcome.status in (RetrainStatus.FAILED, RetrainStatus.CANCELLED),
        )
        await self._push()


class JobFollower:
    """See the module docstring."""

    def __init__(
        self,
        ctx: AdminContext,
        slack: SlackGateway,
        clock: Clock,
        *,
        on_retrain_finished: RetrainFinished | None = None,
        update_interval: float = UPDATE_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.ctx = ctx
        self._slack = slack
        self._clock = clock
        self._on_retrain_finished = on_retrain_finished
        self.update_interval = update_interval
        self.poll_interval = poll_interval
        self._tasks: set[asyncio.Task[Any]] = set()

    async def follow(self) -> None:
        """Resume orphaned retrains every ``poll_interval`` until cancelled; then cancel the
        work this process runs. The runtime's supervisor runs this."""
        try:
            while True:
                try:
                    await self._resume_orphans()
                except Exception:
                    log.warning("Could not look for orphaned retrains", exc_info=True)
                await self._clock.sleep(self.poll_interval)
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` in the background, owned by this follower (cancelled when it stops)."""
        task = asyncio.create_task(work)
        self._keep(task)
        return task

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def run_retrain(self, job: jobs.Job, request: RetrainRequest) -> asyncio.Task[None]:
        """Run the started retrain ``job`` in the background with its progress message."""
        return self.spawn(self._run_retrain(job, request))

    async def _run_retrain(self, job: jobs.Job, request: RetrainRequest) -> None:
        learner = resolve_learner(self.ctx, request.learner)
        channel = request.slack_channel or ""
        progress: ProgressMessage | None = None
        try:
            parent = await self._slack.post_message(
                channel, retrain_started(job.id, learner, request.requested_by, request.dry_run)
            )
            board = ProgressBoard(retrain_board_title(job.id, learner))
            reply = await self._slack.post_message(channel, board.render(), thread_ts=parent)
            async with self.ctx.db.transaction() as conn:
                await jobs.set_slack_message(conn, job.id, channel, reply)
            progress = self._progress(channel, reply, board)
        except SlackCallError:
            log.warning("retrain %s: no progress message in %s", job.id, channel, exc_info=True)
        outcome = await run_retrain(self.ctx, job.id, progress or (lambda _event: None))
        if progress is not None:
            await progress.close(outcome)
        if self._on_retrain_finished is not None:
            # The requester's Home tab shows the new model and the job's outcome.
            await self._on_retrain_finished(request.requested_by)

    def _progress(self, channel: str, ts: str, board: ProgressBoard) -> ProgressMessage:
        return ProgressMessage(self._slack, self._clock, channel, ts, board, self.update_interval)

    async def _resume_orphans(self) -> None:
        messages: dict[int, ProgressMessage] = {}

        def progress_for(job: jobs.Job) -> ProgressCallback:
            if not job.slack_channel or not job.slack_ts:
                return lambda _event: None
            learner = resolve_learner(self.ctx, str(job.params.get("learner", "local")))
            board = ProgressBoard(
                f"{retrain_board_title(job.id, learner)}, resumed after a restart"
            )
            message = self._progress(job.slack_channel, job.slack_ts, board)
            messages[job.id] = message
            return message

        for task in await resume_orphaned_retrains(self.ctx, progress_for):
            self._keep(task)
            self.spawn(self._close_when_done(task, messages))

    async def _close_when_done(
        self, task: asyncio.Task[RetrainOutcome], messages: dict[int, ProgressMessage]
    ) -> None:
        outcome = await task
        message = messages.get(outcome.job_id)
        if message is not None:
            await message.close(outcome)
