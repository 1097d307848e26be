"""/retrain, /evalreport, /triage stats: who may run them, what they start, what they answer.

Listeners call one method and get back the short ephemeral text to acknowledge with (Slack
wants the acknowledgement within 3 s); the work runs in the background, owned by the
``JobFollower``. Every admin action, refused or not, is audited.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Collection
from typing import Any

from admin import registry
from admin.access import REFUSAL, AdminPolicy, audit
from admin.auto_retrain import set_auto_retrain
from admin.context import AdminContext
from admin.desk_stats import build_desk_stats
from admin.desk_stats_png import desk_stats_png
from admin.errors import AdminError, JobConflictError
from admin.report import build_report
from admin.retrain import RetrainRequest, cancel_retrain, start_retrain
from bot.admin_payloads import EvalReportCommand, RetrainCommand, StatsCommand
from bot.admin_views import auto_retrain_switched, report_message, stats_message
from bot.errors import SlackCallError
from bot.job_follower import JobFollower
from bot.slack_gateway import SlackGateway

log = logging.getLogger(__name__)

STATS_REFUSAL = "Sorry, the desk figures are for agents and admins."


class AdminAccess:
    """The one admin check (TRIAGE_ADMIN_USERS, TRIAGE_ADMIN_USERGROUP) and its audit."""

    def __init__(self, ctx: AdminContext, slack: SlackGateway) -> None:
        self._ctx = ctx
        self._slack = slack
        self.policy = AdminPolicy.from_settings(ctx.settings, self._group_members)

    async def _group_members(self, usergroup: str) -> Collection[str]:
        return await self._slack.usergroup_members(usergroup)

    async def is_admin(self, user: str) -> bool:
        """Whether ``user`` may use the admin commands."""
        return await self.policy.is_admin(user)

    async def refuse_usage(self, command: dict[str, Any], action: str) -> None:
        """Audit a command whose arguments were refused (who, and what they typed)."""
        user = str(command.get("user_id", ""))
        typed = str(command.get("text", ""))[:200]
        await audit(self._ctx.db, user, action, "bad-arguments", {"text": typed})

    async def refuse(self, user: str, action: str, detail: dict[str, Any]) -> str:
        """Record the refusal of ``action`` to ``user``; the polite text to answer with."""
        await audit(self._ctx.db, user, action, "refused", detail)
        return REFUSAL


class AdminCommands:
    """See the module docstring."""

    def __init__(
        self, ctx: AdminContext, slack: SlackGateway, access: AdminAccess, jobs: JobFollower
    ) -> None:
        self.ctx = ctx
        self._slack = slack
        self.access = access
        self._jobs = jobs

    async def retrain(self, command: RetrainCommand) -> str:
        """Handle /retrain; returns the ephemeral acknowledgement."""
        detail = command.model_dump(exclude={"user", "channel"})
        if not await self.access.is_admin(command.user):
            return await self.access.refuse(command.user, "retrain", detail)
        if command.action == "cancel":
            job = await cancel_retrain(self.ctx)
            await audit(self.ctx.db, command.user, "retrain-cancel", "done" if job else "none", {})
            if job is None:
                return "No retrain is running."
            return f"Asked retrain #{job.id} to stop; its thread will say when it has."
        if command.action in ("auto-on", "auto-off"):
            return await self.switch_auto_retrain(command.user, on=command.action == "auto-on")
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
            slack_channel=self.ctx.settings.admin_channel or command.channel,
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
        self._jobs.run_retrain(job, request)
        where = f"<#{request.slack_channel}>" if request.slack_channel else "this channel"
        return f"Started retrain #{job.id}; progress is in a thread in {where}."

    async def switch_auto_retrain(self, user: str, *, on: bool) -> str:
        """/retrain auto on|off and the Home tab's switch: admins only, for every replica."""
        if not await self.access.is_admin(user):
            return await self.access.refuse(user, "retrain-auto", {"on": on})
        if not self.ctx.settings.auto_retrain:
            return "Automatic retrains are off in this deployment (TRIAGE_AUTO_RETRAIN=false)."
        await set_auto_retrain(self.ctx, user, on=on)
        return auto_retrain_switched(on)

    async def evalreport(self, command: EvalReportCommand) -> str:
        """Handle /evalreport; the report is posted in the command's channel shortly."""
        detail = {"model": command.model}
        if not await self.access.is_admin(command.user):
            return await self.access.refuse(command.user, "evalreport", detail)
        self._jobs.spawn(self._post_report(command.channel, command.user, command.model))
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
            ts = await self._slack.post_message(channel, text, blocks=blocks)
        except SlackCallError:
            log.warning("could not post the evaluation report in %s", channel, exc_info=True)
            return
        number = report.model.id
        await self._picture(
            channel,
            user,
            ts,
            report.confusion_png,
            filename=f"confusion-model-{number}.png",
            title=f"Confusion matrix, model #{number}",
            alt_text="Confusion matrix of the model on the held-out tickets",
        )
        await self._picture(
            channel,
            user,
            ts,
            report.learning_curve_png,
            filename=f"learning-curve-model-{number}.png",
            title="Learning curve: holdout accuracy per model, corrections per week",
            alt_text="Holdout accuracy of each model version and the share of tickets "
            "corrected each week",
        )

    async def _picture(
        self,
        channel: str,
        user: str,
        thread_ts: str,
        draw: Callable[[], bytes],
        *,
        filename: str,
        title: str,
        alt_text: str,
    ) -> None:
        """Draw a picture (in a thread: it takes CPU) and upload it under ``thread_ts``. A
        picture that cannot be drawn costs only itself: logged, and its asker told."""
        try:
            png = await asyncio.to_thread(draw)
        except Exception:
            log.exception("could not draw %s", filename)
            await self._tell(
                channel,
                user,
                f"The picture {filename} could not be drawn; the logs have the details.",
            )
            return
        try:
            await self._slack.upload_file(
                channel, png, thread_ts=thread_ts, filename=filename, title=title, alt_text=alt_text
            )
        except SlackCallError:
            log.warning("could not upload %s in %s", filename, channel, exc_info=True)

    async def stats(self, command: StatsCommand, may_see: bool) -> str:
        """Handle ``/triage stats [days]`` for an agent or admin (``may_see``): the figures and
        their picture are posted in the command's channel shortly."""
        if not may_see and not await self.access.is_admin(command.user):
            await audit(self.ctx.db, command.user, "stats", "refused", {"days": command.days})
            return STATS_REFUSAL
        self._jobs.spawn(self._post_stats(command))
        return f"Counting the last {command.days} days; the figures will appear here shortly."

    async def _post_stats(self, command: StatsCommand) -> None:
        try:
            stats = await build_desk_stats(
                self.ctx.db, self.ctx.taxonomy, days=command.days, now=self.ctx.clock.now()
            )
        except Exception:
            log.exception("desk figures failed")
            await self._tell(command.channel, command.user, "The figures failed; see the logs.")
            return
        text, blocks = stats_message(stats)
        try:
            ts = await self._slack.post_message(command.channel, text, blocks=blocks)
        except SlackCallError:
            log.warning("could not post the desk figures in %s", command.channel, exc_info=True)
            return
        await self._picture(
            command.channel,
            command.user,
            ts,
            functools.partial(desk_stats_png, stats),
            filename=f"desk-{command.days}-days.png",
            title=f"Tickets and first response per day, last {command.days} days",
            alt_text="Tickets per day by department, and the median first response per day",
        )

    async def _tell(self, channel: str, user: str, text: str) -> None:
        try:
            await self._slack.post_ephemeral(channel, user, text)
        except SlackCallError:
            log.warning("could not tell %s: %s", user, text, exc_info=True)
