"""App Home: the Home tab (model, jobs, activity) and its admin buttons.

``HomeTab`` publishes a user's tab (buttons only for admins); ``AppHome`` answers the buttons:
a default retrain, the evaluation report, and handing the failed tickets back to the bot; also
the Retry button of a failed ticket's notice (``bot.failure_notice``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from admin.context import AdminContext
from admin.home import desk_home, home_summary
from admin.tickets import retry_tickets
from bot.admin_commands import AdminAccess, AdminCommands
from bot.admin_payloads import EvalReportCommand, RetrainCommand
from bot.admin_views import home_view, tickets_retried
from bot.errors import SlackCallError
from bot.failure_notice import RetryTicketPress, retried_notice
from bot.requeue import RequeueWatcher
from bot.slack_gateway import SlackGateway

log = logging.getLogger(__name__)


class HomeTab:
    """Publishes the Home tab."""

    def __init__(
        self,
        ctx: AdminContext,
        slack: SlackGateway,
        access: AdminAccess,
        is_agent: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """``is_agent``: whether a user is an agent (they see their open tickets)."""
        self._ctx = ctx
        self._slack = slack
        self._access = access
        self._is_agent = is_agent

    async def publish(self, user: str) -> None:
        """Publish the Home tab for ``user``: an agent's open tickets; for an admin (a lead)
        also the backlog per department, the desk's figures and the buttons."""
        summary = await home_summary(self._ctx)
        is_admin = await self._access.is_admin(user)
        agent = is_admin or (self._is_agent is not None and await self._is_agent(user))
        desk = await desk_home(self._ctx, user, lead=is_admin) if agent else None
        view = home_view(summary, is_admin=is_admin, desk=desk, now=self._ctx.clock.now())
        try:
            await self._slack.publish_home(user, view)
        except SlackCallError:
            log.warning("could not publish the Home tab for %s", user, exc_info=True)


class AppHome:
    """The Home tab's buttons; see the module docstring."""

    def __init__(
        self,
        tab: HomeTab,
        commands: AdminCommands,
        slack: SlackGateway,
        requeue: RequeueWatcher,
    ) -> None:
        self.tab = tab
        self._commands = commands
        self._slack = slack
        self._requeue = requeue

    async def opened(self, user: str) -> None:
        """``user`` opened the Home tab."""
        await self.tab.publish(user)

    async def retrain(self, user: str) -> None:
        """The Retrain button: a default retrain, answered by DM."""
        text = await self._commands.retrain(RetrainCommand(user=user, channel=user))
        await self._dm(user, text)
        await self.tab.publish(user)

    async def report(self, user: str) -> None:
        """The report button: the report in the admin channel, else by DM."""
        channel = self._commands.ctx.settings.admin_channel or user
        text = await self._commands.evalreport(EvalReportCommand(user=user, channel=channel))
        await self._dm(user, text)

    async def auto_retrain(self, user: str, *, on: bool) -> None:
        """The pause/resume switch of automatic retrains, answered by DM."""
        await self._dm(user, await self._commands.switch_auto_retrain(user, on=on))
        await self.tab.publish(user)

    async def retry_failed(self, user: str) -> None:
        """The Retry button: every failed ticket back to the bot, answered by DM."""
        access = self._commands.access
        if not await access.is_admin(user):
            await self._dm(user, await access.refuse(user, "ticket-retry", {"failed": True}))
            return
        outcome = await retry_tickets(self._commands.ctx.db, None, user)
        self._requeue.wake()  # this replica looks at once instead of in a few seconds
        await self._dm(user, tickets_retried(outcome))
        await self.tab.publish(user)

    async def retry_ticket(self, press: RetryTicketPress) -> None:
        """A failure notice's Retry button: that ticket back to the bot (admins), answered by
        DM; the notice then says who retried it."""
        access = self._commands.access
        if not await access.is_admin(press.user):
            detail = {"ticket": press.ticket_id}
            await self._dm(press.user, await access.refuse(press.user, "ticket-retry", detail))
            return
        outcome = await retry_tickets(self._commands.ctx.db, [press.ticket_id], press.user)
        self._requeue.wake()
        if outcome.requeued and press.channel and press.ts:
            text, blocks = retried_notice(press.ticket_id, press.user)
            try:
                await self._slack.update_message(press.channel, press.ts, text, blocks)
            except SlackCallError:
                log.warning("could not update the failure notice", exc_info=True)
        answer = tickets_retried(outcome)
        if outcome.refused:
            answer = f"Ticket #{press.ticket_id} was not requeued: {outcome.refused[0].reason}."
        await self._dm(press.user, answer)

    async def _dm(self, user: str, text: str) -> None:
        try:
            await self._slack.post_message(user, text)
        except SlackCallError:
            log.warning("could not message %s", user, exc_info=True)
