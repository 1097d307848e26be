"""The admin surfaces' service: /retrain, /evalreport and the App Home, over the admin jobs.

Listeners call one method and get back the short ephemeral text to acknowledge with (Slack
wants the acknowledgement within 3 s); the work runs in background tasks. A retrain's progress
is one message in a thread in the admin channel (TRIAGE_ADMIN_CHANNEL, else the channel the
command came from), updated in place at most once a second. ``follow_jobs`` (a background
task of the runtime) resumes retrains whose process died and owns the retrains started here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from admin import registry
from admin.access import REFUSAL, AdminPolicy, audit
from admin.context import AdminContext
from admin.errors import AdminError, JobConflictError
from admin.home import home_summary
from admin.progress import ProgressBoard
from admin.report import build_report
from admin.retrain import (
    RetrainOutcome,
    RetrainRequest,
    cancel_retrain,
    resolve_learner,
    resume_orphaned_retrains,
    run_retrain,
    start_retrain,
)
from admin.tickets import retry_tickets
from bot.admin_payloads import EvalReportCommand, RetrainCommand
from bot.admin_views import (
    home_view,
    report_message,
    retrain_board_title,
    retrain_finished,
    retrain_started,
    tickets_retried,
)
from bot.errors import SlackCallError
from bot.requeue import RequeueWatcher
from bot.slack_gateway import SlackGateway
from classifier.model import ProgressEvent
from data.clock import Clock
from data.db import jobs

log = logging.getLogger(__name__)

#: Seconds between chat.update calls of one progress message (chat.update is Tier 3).
UPDATE_INTERVAL = 1.0
#: Seconds between checks of the registry's active model and of orphaned retrains.
POLL_INTERVAL = 3.0

_SLACK_ERRORS = (SlackApiError, SlackCallError, aiohttp.ClientError, TimeoutError)


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
        except _SLACK_ERRORS:
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
            failed=outcome.status in ("failed", "cancelled"),
        )
        await self._push()


class AdminDesk:
    """See the module docstring."""

    def __init__(
        self,
        ctx: AdminContext,
        slack: SlackGateway,
        requeue: RequeueWatcher,
        clock: Clock,
        *,
        update_interval: float = UPDATE_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.ctx = ctx
        self.slack = slack
        self.settings = ctx.settings
        self._requeue = requeue
        self._clock = clock
        self.policy = AdminPolicy.from_settings(ctx.settings, self._group_members)
        self.update_interval = update_interval
        self.poll_interval = poll_interval
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ----------------------------------------------------------------------

    async def follow_jobs(self) -> None:
        """Resume orphaned retrains every ``poll_interval`` until cancelled; then cancel the
        retrains and reports this process runs (a running retrain stays resumable). The
        runtime's supervisor runs this."""
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

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _group_members(self, usergroup: str) -> Collection[str]:
        response = await self.slack.client.usergroups_users_list(usergroup=usergroup)
        return {str(user) for user in response.get("users") or []}

    async def is_admin(self, user: str) -> bool:
        """Whether ``user`` may use the admin commands."""
        return await self.policy.is_admin(user)

    async def _refuse(self, user: str, action: str, detail: dict[str, Any]) -> str:
        await audit(self.ctx.db, user, action, "refused", detail)
        return REFUSAL

    # -- /retrain -----------------------------------------------------------------------

    async def retrain(self, command: RetrainCommand) -> str:
        """Handle /retrain; returns the ephemeral acknowledgement."""
        detail = command.model_dump(exclude={"user", "channel"})
        if not await self.is_admin(command.user):
            return await self._refuse(command.user, "retrain", detail)
        if command.action == "cancel":
            job = await cancel_retrain(self.ctx)
            await audit(self.ctx.db, command.user, "retrain-cancel", "done" if job else "none", {})
            if job is None:
                return "No retrain is running."
            return f"Asked retrain #{job.id} to stop; its thread will say when it has."
        if command.action == "rollback":
            try:
                entry = await registry.rollback(self.ctx, command.user)
            except AdminError as exc:
                return str(exc)
            return f"Rolled back: model #{entry.id} (`{entry.model_id}`) is active again."
        request = RetrainRequest(
            learner=command.learner,
            generate=command.generate,
            dry_run=command.dry_run,
            requested_by=command.user,
            slack_channel=self._progress_channel(command.channel),
        )
        try:
            job = await start_retrain(self.ctx, request)
        except JobConflictError as exc:
            await audit(self.ctx.db, command.user, "retrain", "conflict", detail)
            return str(exc)
        except AdminError as exc:
            await audit(self.ctx.db, command.user, "retrain", "rejected", detail)
            return str(exc)
        await audit(self.ctx.db, command.user, "retrain", "started", {"job_id": job.id, **detail})
        self._spawn(self._run_retrain(job, request))
        where = f"<#{request.slack_channel}>" if request.slack_channel else "this channel"
        return f"Started retrain #{job.id}; progress is in a thread in {where}."

    def _progress_channel(self, command_channel: str) -> str:
        return self.settings.admin_channel or command_channel

    async def _run_retrain(self, job: jobs.Job, request: RetrainRequest) -> None:
        learner = resolve_learner(self.ctx, request.learner)
        channel = request.slack_channel or ""
        progress: ProgressMessage | None = None
        try:
            parent = await self.slack.post_message(
                channel, retrain_started(job.id, learner, request.requested_by, request.dry_run)
            )
            board = ProgressBoard(retrain_board_title(job.id, learner))
            reply = await self.slack.post_message(channel, board.render(), thread_ts=parent)
            async with self.ctx.db.transaction() as conn:
                await jobs.set_slack_message(conn, job.id, channel, reply)
            progress = ProgressMessage(
                self.slack, self._clock, channel, reply, board, self.update_interval
            )
        except _SLACK_ERRORS:
            log.warning("retrain %s: no progress message in %s", job.id, channel, exc_info=True)
        outcome = await run_retrain(self.ctx, job.id, progress or (lambda _event: None))
        if progress is not None:
            await progress.close(outcome)
        # The requester's Home tab shows the new model and the job's outcome.
        await self.publish_home(request.requested_by)

    async def _resume_orphans(self) -> None:
        messages: dict[int, ProgressMessage] = {}

        def progress_for(job: jobs.Job) -> Any:
            if not job.slack_channel or not job.slack_ts:
                return lambda _event: None
            learner = resolve_learner(self.ctx, str(job.params.get("learner", "local")))
            board = ProgressBoard(
                f"{retrain_board_title(job.id, learner)}, resumed after a restart"
            )
            message = ProgressMessage(
                self.slack,
                self._clock,
                job.slack_channel,
                job.slack_ts,
                board,
                self.update_interval,
            )
            messages[job.id] = message
            return message

        for task in await resume_orphaned_retrains(self.ctx, progress_for):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._spawn(self._close_when_done(task, messages))

    async def _close_when_done(
        self, task: asyncio.Task[RetrainOutcome], messages: dict[int, ProgressMessage]
    ) -> None:
        outcome = await task
        message = messages.get(outcome.job_id)
        if message is not None:
            await message.close(outcome)

    # -- /evalreport --------------------------------------------------------------------

    async def evalreport(self, command: EvalReportCommand) -> str:
        """Handle /evalreport; the report is posted in the command's channel shortly."""
        detail = {"model": command.model}
        if not await self.is_admin(command.user):
            return await self._refuse(command.user, "evalreport", detail)
        self._spawn(self._post_report(command.channel, command.user, command.model))
        which = f"model #{command.model}" if command.model else "the active model"
        return f"Building the evaluation report for {which}; it will appear here shortly."

    async def _post_report(self, channel: str, user: str, model: int | None) -> None:
        try:
            report = await build_report(self.ctx, model, requested_by=user)
        except AdminError as exc:
            await self._tell(channel, user, str(exc))
            return
        except Exception:
            log.exception("evaluation report failed")
            await self._tell(channel, user, "The report failed; the logs have the details.")
            return
        text, blocks = report_message(report)
        try:
            ts = await self.slack.post_message(channel, text, blocks=blocks)
            png = await asyncio.to_thread(report.confusion_png)
            await self.slack.client.files_upload_v2(
                channel=channel,
                thread_ts=ts,
                file=png,
                filename=f"confusion-model-{report.model.id}.png",
                title=f"Confusion matrix, model #{report.model.id}",
                alt_txt="Confusion matrix of the model on the held-out tickets",
            )
        except _SLACK_ERRORS:
            log.warning("could not post the evaluation report in %s", channel, exc_info=True)

    async def _tell(self, channel: str, user: str, text: str) -> None:
        try:
            await self.slack.client.chat_postEphemeral(channel=channel, user=user, text=text)
        except _SLACK_ERRORS:
            log.warning("could not tell %s: %s", user, text, exc_info=True)

    # -- App Home -----------------------------------------------------------------------

    async def publish_home(self, user: str) -> None:
        """Publish the Home tab for ``user`` (buttons only for admins)."""
        summary = await home_summary(self.ctx)
        view = home_view(summary, is_admin=await self.is_admin(user))
        try:
            await self.slack.client.views_publish(user_id=user, view=view)
        except _SLACK_ERRORS:
            log.warning("could not publish the Home tab for %s", user, exc_info=True)

    async def home_retrain(self, user: str) -> None:
        """The Home tab's Retrain button: a default retrain, answered by DM."""
        text = await self.retrain(RetrainCommand(user=user, channel=user))
        await self._dm(user, text)
        await self.publish_home(user)

    async def home_report(self, user: str) -> None:
        """The Home tab's report button: the report in the admin channel, else by DM."""
        channel = self.settings.admin_channel or user
        text = await self.evalreport(EvalReportCommand(user=user, channel=channel))
        await self._dm(user, text)

    async def home_retry_failed(self, user: str) -> None:
        """The Home tab's Retry button: every failed ticket back to the bot, answered by DM."""
        if not await self.is_admin(user):
            await self._dm(user, await self._refuse(user, "ticket-retry", {"failed": True}))
            return
        outcome = await retry_tickets(self.ctx.db, None, user)
        self._requeue.wake()  # this replica looks at once instead of in a few seconds
        await self._dm(user, tickets_retried(outcome))
        await self.publish_home(user)

    async def _dm(self, user: str, text: str) -> None:
        try:
            await self.slack.post_message(user, text)
        except _SLACK_ERRORS:
            log.warning("could not message %s", user, exc_info=True)
