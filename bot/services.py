"""The bot's dependencies in one small frozen object, and their lifecycle.

``build_services`` wires them; ``start`` checks Slack (auth.test), starts the workers,
resumes unfinished tickets (claiming those an admin requeued) and starts watching for more
requeued tickets; ``stop`` closes everything it opened. Listeners receive the
``Services`` and call one of its services; the admin surfaces use ``model.reload()`` after
promoting a model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aiohttp

from admin.settings import Settings
from bot.active_model import ActiveModel, ModelLoader
from bot.config import SlackConfig
from bot.corrections import CorrectionDesk
from bot.errors import SlackCallError
from bot.group_commit import GroupCommit
from bot.intake import Intake
from bot.policy import RoutingPolicy
from bot.requeue import POLL_SECONDS, RequeueWatcher
from bot.routing import TicketRouter
from bot.slack_gateway import SlackGateway, create_slack_client
from bot.work_queue import TicketQueue
from classifier.artifacts import load_model
from classifier.taxonomy import Taxonomy
from data.db import tickets as tickets_repo
from data.db.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """Everything a listener may use; built once per process."""

    settings: Settings
    slack_config: SlackConfig
    taxonomy: Taxonomy
    policy: RoutingPolicy
    db: Database
    http: aiohttp.ClientSession
    slack: SlackGateway
    model: ActiveModel
    queue: TicketQueue
    router: TicketRouter
    intake: Intake
    corrections: CorrectionDesk
    commits: GroupCommit
    requeue: RequeueWatcher
    extras: dict[str, object] = field(default_factory=dict)  # room for admin surfaces

    async def start(self, *, migrate: bool = True) -> None:
        """Migrate, check the token (auth.test), start workers, resume unfinished tickets,
        then watch for tickets an admin requeues."""
        if migrate:
            await self.db.start()
        identity = self.slack.identity or await self.slack.connect()
        log.info("Connected to Slack as %s (team %s)", identity.user_id, identity.team_id)
        await self.check_channels()
        self.commits.start()
        self.queue.start()
        await self.resume()
        self.requeue.start()

    async def check_channels(self) -> list[str]:
        """Log, with the fix, every configured channel the bot is not in; returns their ids.

        Not fatal: tickets for a department whose channel is fixed later are retried by hand.
        """
        channels = [*self.policy.support_channels, *(d.channel for d in self.taxonomy)]
        if self.policy.triage_channel:
            channels.append(self.policy.triage_channel)
        missing: list[str] = []
        for channel in dict.fromkeys(channels):
            try:
                name, member = await self.slack.channel_membership(channel)
            except SlackCallError:
                missing.append(channel)  # the gateway logged what is wrong and how to fix it
                continue
            if not member:
                missing.append(channel)
                log.error(
                    "The bot is not in #%s (%s): invite it with /invite @bot in that channel, "
                    "or it cannot read tickets or post cards there.",
                    name,
                    channel,
                )
        return missing

    async def resume(self) -> int:
        """Queue every ticket stored but not yet routed; returns how many.

        Tickets an admin requeued while no bot ran are claimed first (never just read: another
        replica may be claiming them at this moment), which makes them unfinished.
        """
        await self.requeue.claim()
        # Only tickets no live replica holds: another one may be routing some right now.
        return len(await self.requeue.take_over(others_only=False))

    async def drain(self) -> None:
        """Wait until every queued ticket has been worked on (tests and shutdown).

        Bound it with ``asyncio.timeout``; retries waiting on a delay count as unfinished.
        """
        await self.queue.drain()

    async def stop(self) -> None:
        """Stop the workers and close the HTTP session and the database."""
        await self.requeue.stop()
        await self.queue.stop()
        try:
            async with self.db.transaction() as conn:
                released = await tickets_repo.release_unfinished(conn, self.router.owner)
            if released:
                log.info(
                    "Gave up %d unfinished ticket(s) for another replica or the next start",
                    released,
                )
        except Exception:  # the database may be what is failing; leases then run out instead
            log.warning("Could not release this process's tickets", exc_info=True)
        await self.commits.stop()
        await self.http.close()
        await self.db.close()


def routing_policy(settings: Settings) -> RoutingPolicy:
    """The routing rules from the settings."""
    return RoutingPolicy(
        support_channels=frozenset(settings.support_channels),
        confidence_threshold=settings.confidence_threshold,
        triage_channel=settings.triage_channel or None,
        shadow_mode=settings.shadow_mode,
        redact_pii=settings.redact_pii,
    )


def build_services(
    settings: Settings,
    slack_config: SlackConfig,
    taxonomy: Taxonomy,
    *,
    db: Database | None = None,
    loader: ModelLoader = load_model,
    workers: int = 16,
    requeue_interval: float = POLL_SECONDS,
    owner: str = "",
    policy: RoutingPolicy | None = None,
) -> Services:
    """Wire the bot's services (nothing is contacted until ``Services.start``).

    ``requeue_interval``: seconds between looks for tickets an admin requeued. ``owner``: this
    process's name in ticket leases (default host:pid). ``policy``: instead of the settings'.
    """
    db = db or Database(settings.database_url)
    http = aiohttp.ClientSession()
    slack = SlackGateway(create_slack_client(slack_config.bot_token, slack_config.api_url, http))
    model = ActiveModel(db, loader)
    policy = policy or routing_policy(settings)
    commits = GroupCommit(db)
    router = TicketRouter(commits, slack, model, taxonomy, policy, owner)
    queue = TicketQueue(router.process, workers=workers)
    return Services(
        settings=settings,
        slack_config=slack_config,
        taxonomy=taxonomy,
        policy=policy,
        db=db,
        http=http,
        slack=slack,
        model=model,
        queue=queue,
        router=router,
        intake=Intake(db, commits, queue, router, policy),
        commits=commits,
        corrections=CorrectionDesk(db, queue, slack, taxonomy, policy),
        requeue=RequeueWatcher(db, queue, router, requeue_interval),
    )
