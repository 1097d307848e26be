"""The bot's dependencies in one small frozen object, and how they are wired.

``build_services`` wires them without contacting anything; ``bot.runtime.open_runtime`` is
the one place they are started and stopped. Listeners receive the ``Services`` and call one of
its services: tickets go to ``intake``, corrections to ``corrections``, slash commands to
``commands``, the Home tab to ``home``; ``jobs`` follows the retrains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import aiohttp

from admin.context import AdminContext
from admin.near_duplicates import CorrectionMemory
from admin.settings import Settings, SettingsError
from admin.triage_threshold import INTERVAL as TRIAGE_THRESHOLD_INTERVAL
from admin.triage_threshold import TriageThreshold
from bot.active_model import ActiveModel, ModelLoader
from bot.admin_commands import AdminAccess, AdminCommands
from bot.auto_retrainer import INTERVAL as AUTO_RETRAIN_INTERVAL
from bot.auto_retrainer import AutoRetrainer
from bot.config import SlackConfig
from bot.conversations import POLL_SECONDS as CLOSER_POLL_SECONDS
from bot.conversations import ConversationCloser
from bot.corrections import CorrectionDesk
from bot.desk import SYNC_SECONDS, TicketDesk
from bot.errors import PermanentSlackError, SampleChannelsError, SlackCallError
from bot.failure_notice import FailureNotices
from bot.group_commit import GroupCommit
from bot.home_tab import AppHome, HomeTab
from bot.inbox import SWEEP_SECONDS as INBOX_SWEEP_SECONDS
from bot.inbox import Inbox
from bot.intake import Grouping, Intake
from bot.job_follower import JobFollower
from bot.people import REFRESH_SECONDS, People
from bot.policy import RoutingPolicy
from bot.request_feedback import RequestFilterService
from bot.requests_in_flight import RequestsInFlight
from bot.requeue import POLL_SECONDS, RequeueWatcher
from bot.response_timers import SWEEP_SECONDS, ResponseTimers
from bot.routing import RequestCheck, TicketRouter
from bot.slack_gateway import SlackGateway, create_slack_client
from bot.work_queue import TicketQueue
from classifier.taxonomy import Taxonomy, load_taxonomy
from data import DEFAULT_TAXONOMY
from data.clock import Clock
from data.db.database import Database
from data.request_examples import shipped_filter_examples

log = logging.getLogger(__name__)


#: Seconds the Socket Mode connection may be down (Slack asks for routine reconnects) before
#: ``/healthz`` reports the bot unhealthy.
SOCKET_GRACE_SECONDS = 60.0


@dataclass
class SocketWatch:
    """Whether the Socket Mode connection is up, for ``/healthz`` (only when serving over it)."""

    clock: Clock
    grace_seconds: float = SOCKET_GRACE_SECONDS
    client: Any = None  # the SDK's Socket Mode client once connected
    down_since: float | None = None

    @property
    def in_use(self) -> bool:
        """Whether the bot serves over Socket Mode."""
        return self.client is not None

    async def report(self) -> dict[str, Any]:
        """``connected``, how long it has been down, and ``ok`` (up, or down only briefly)."""
        connected = self.client is not None and bool(await self.client.is_connected())
        now = self.clock.monotonic()
        if connected:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = now
        down = 0.0 if self.down_since is None else now - self.down_since
        return {
            "connected": connected,
            "down_seconds": round(down, 1),
            "ok": connected or down < self.grace_seconds,
        }


@dataclass(frozen=True)
class Intervals:
    """Seconds between the background tasks' looks (tests shorten them)."""

    #: Looks for tickets an admin requeued (one indexed count that is usually 0).
    requeue: float = POLL_SECONDS
    #: Looks at the registry's active model (one indexed id lookup).
    registry: float = 3.0
    #: Looks for retrains whose process died.
    jobs: float = 3.0
    #: Least time between two updates of one retrain progress message (chat.update is Tier 3).
    progress: float = 1.0
    #: Reloads of the agent channels' members and the agent user group (events keep them
    #: current in between).
    people: float = REFRESH_SECONDS
    #: Looks whether an automatic retrain is due (TRIAGE_AUTO_RETRAIN).
    auto_retrain: float = AUTO_RETRAIN_INTERVAL
    #: Fits of the triage threshold on recent outcomes (TRIAGE_ADAPTIVE_THRESHOLD).
    triage_threshold: float = TRIAGE_THRESHOLD_INTERVAL
    #: Looks for new request-filter feedback (None: TRIAGE_REQUEST_FILTER_REFIT_SECONDS).
    request_filter: float | None = None
    #: Sweeps of the first-response timers (a nudge is posted at most this long after due).
    response_timers: float = SWEEP_SECONDS
    #: Looks for desk changes whose Slack side (card, emoji, thread line) is missing.
    desk: float = SYNC_SECONDS
    #: Longest wait between looks for closed conversations (each process also wakes exactly
    #: when a conversation it stored closes).
    conversations: float = CLOSER_POLL_SECONDS
    #: Sweeps for received messages not placed yet (a failed placement, a stopped replica's).
    inbox: float = INBOX_SWEEP_SECONDS


@dataclass(frozen=True)
class Services:
    """Everything a listener may use; built once per process by the runtime."""

    settings: Settings
    slack_config: SlackConfig
    taxonomy: Taxonomy
    policy: RoutingPolicy
    clock: Clock
    db: Database
    http: aiohttp.ClientSession
    slack: SlackGateway
    model: ActiveModel
    queue: TicketQueue
    router: TicketRouter
    intake: Intake
    #: Messages acknowledged and not yet placed in their conversation.
    inbox: Inbox
    closer: ConversationCloser
    corrections: CorrectionDesk
    requests: RequestFilterService
    people: People
    commits: GroupCommit
    requeue: RequeueWatcher
    admin: AdminContext
    commands: AdminCommands
    home: AppHome
    jobs: JobFollower
    auto_retrainer: AutoRetrainer
    triage_threshold: TriageThreshold
    socket: SocketWatch
    #: Nudges and escalations of tickets without a first response.
    response_timers: ResponseTimers
    #: Take it / Resolve / Reopen, by button or emoji, and first responses.
    desk: TicketDesk
    #: Requests from Slack being answered now (the desk's Slack side gives way to them).
    in_flight: RequestsInFlight

    async def check_channels(self) -> list[str]:
        """Name every configured channel the bot is not in (one log line); returns their ids.

        Not fatal, since tickets for a department whose channel is fixed later can be retried,
        except for the shipped taxonomy's sample channel ids that Slack does not know: then
        the departments were never configured, and start-up stops with SampleChannelsError.
        """
        channels = [*self.policy.support_channels, *(d.channel for d in self.taxonomy)]
        if self.policy.triage_channel:
            channels.append(self.policy.triage_channel)
        if self.settings.admin_channel:
            channels.append(self.settings.admin_channel)
        missing: dict[str, str] = {}  # id -> name
        unknown: list[str] = []
        for channel in dict.fromkeys(channels):
            try:
                name, member, shared = await self.slack.channel_membership(channel)
                self.router.note_shared(channel, shared)
            except PermanentSlackError as exc:
                missing[channel] = channel  # the gateway logged what is wrong and how to fix it
                if exc.error == "channel_not_found":
                    unknown.append(channel)
                continue
            except SlackCallError:
                missing[channel] = channel
                continue
            if not member:
                missing[channel] = name
        samples = [c for c in unknown if c in sample_channels()]
        if samples:
            raise SampleChannelsError(
                f"The taxonomy ({self.settings.taxonomy}) still has the sample channel id(s) "
                f"{', '.join(samples)}, which are not channels of this workspace: put your "
                "departments' channel ids in it (or point TRIAGE_TAXONOMY at your own file)."
            )
        if missing:
            named = ", ".join(
                f"#{name} ({channel})" if name != channel else channel
                for channel, name in missing.items()
            )
            log.error(
                "The bot is not in %d configured channel(s): %s. Invite it with /invite @bot "
                "in each (a private one too), or it cannot read tickets or post cards there.",
                len(missing),
                named,
                extra={"channels": list(missing)},
            )
        return list(missing)

    async def resume(self) -> int:
        """Place the messages acknowledged but not placed before the last stop, then queue
        every ticket stored but not yet routed; returns how many tickets.

        Tickets an admin requeued while no bot ran are claimed first (never just read: another
        replica may be claiming them at this moment), which makes them unfinished.
        """
        await self.inbox.place_waiting()
        await self.requeue.claim()
        # Only tickets no live replica holds: another one may be routing some right now.
        return len(await self.requeue.take_over(others_only=False))

    async def drain(self) -> None:
        """Wait until every received message has been placed, every queued ticket has been
        worked on, and every card the desk must redraw after it has been redrawn (tests and
        shutdown).

        Bound it with ``asyncio.timeout``; retries waiting on a delay count as unfinished.
        """
        await self.inbox.drain()
        await self.queue.drain()
        await self.desk.drain()


def sample_channels() -> frozenset[str]:
    """The channel ids of the shipped sample taxonomy (placeholders, not real channels)."""
    return frozenset(d.channel for d in load_taxonomy(DEFAULT_TAXONOMY))


def routing_policy(settings: Settings) -> RoutingPolicy:
    """The routing rules from the settings."""
    return RoutingPolicy(
        support_channels=frozenset(settings.support_channels),
        confidence_threshold=settings.confidence_threshold,
        triage_channel=settings.triage_channel or None,
        shadow_mode=settings.shadow_mode,
        redact_pii=settings.redact_pii,
        lease_seconds=settings.ticket_lease_seconds,
        public_reply=settings.public_reply,
    )


def agents(
    settings: Settings,
    taxonomy: Taxonomy,
    slack: SlackGateway,
    clock: Clock,
    refresh_seconds: float = REFRESH_SECONDS,
) -> People:
    """Who the agents are: members of the department, triage and admin channels and of
    TRIAGE_AGENT_USERGROUP (the support channels are where requesters post, so not them)."""
    channels = [d.channel for d in taxonomy]
    channels += [c for c in (settings.triage_channel, settings.admin_channel) if c]
    return People(
        slack, channels, settings.agent_usergroup, clock=clock, refresh_seconds=refresh_seconds
    )


def build_services(
    settings: Settings,
    slack_config: SlackConfig,
    taxonomy: Taxonomy,
    *,
    db: Database,
    clock: Clock,
    loader: ModelLoader,
    admin: AdminContext,
    workers: int = 16,
    intervals: Intervals | None = None,
    owner: str = "",
    policy: RoutingPolicy | None = None,
    is_request: RequestCheck | None = None,
) -> Services:
    """Wire the bot's services (nothing is contacted; ``bot.runtime`` starts them).

    ``owner``: this process's name in ticket leases (default host:pid). ``policy``: instead of
    the settings'. ``admin``: the admin jobs' context; its ``on_model_activated`` is set here
    so a promotion in this process is used at once. ``is_request``: the request filter's
    check (None: every conversation is a request).
    """
    intervals = intervals or Intervals()
    check_emoji(settings, taxonomy)
    http = aiohttp.ClientSession()
    slack = SlackGateway(
        create_slack_client(slack_config.bot_token, slack_config.api_url, http, sleep=clock.sleep)
    )
    model = ActiveModel(db, loader)
    policy = policy or routing_policy(settings)
    triage_threshold = TriageThreshold(
        db,
        clock,
        fallback=policy.confidence_threshold,
        target=settings.triage_target,
        interval=intervals.triage_threshold,
    )
    if settings.adaptive_threshold:
        policy = replace(policy, adaptive_threshold=triage_threshold.value)
    commits = GroupCommit(db)
    people = agents(settings, taxonomy, slack, clock, intervals.people)
    notices = FailureNotices(slack, settings.admin_channel or policy.triage_channel)
    near_duplicates = (
        CorrectionMemory(
            db,
            lambda: str(getattr(model.current(), "learner", "")) if model.ready else "",
            monotonic=clock.monotonic,
            confirm_after=timedelta(hours=settings.confirm_after_hours)
            if settings.confirm_after_hours > 0
            else None,
            exclude_channels=[policy.triage_channel] if policy.triage_channel else [],
            now=clock.now,
        )
        if settings.near_duplicates
        else None
    )

    async def filter_says_request(text: str) -> bool:
        # The request filter judges each conversation once it closes (bot.routing); it is
        # built below, as it needs the queue, which needs the router.
        decision = await requests.judge(text)
        return decision is None or decision.is_request

    router = TicketRouter(
        commits,
        slack,
        model,
        taxonomy,
        policy,
        owner,
        clock,
        notices,
        near_duplicates=near_duplicates,
        is_request=is_request or filter_says_request,
        is_member=people.in_channel,
        desk_changed=lambda ticket_id: desk.changed(ticket_id),
        status_emoji=(settings.take_emoji, settings.resolve_emoji),
    )
    queue = TicketQueue(router.process, workers=workers, clock=clock)
    closer = ConversationCloser(commits, queue, router, clock, intervals.conversations)
    requeue = RequeueWatcher(db, queue, router, intervals.requeue)
    in_flight = RequestsInFlight(clock)
    desk = TicketDesk(
        db,
        commits,
        slack,
        router,
        people,
        taxonomy,
        clock,
        take_emoji=settings.take_emoji,
        resolve_emoji=settings.resolve_emoji,
        owner=router.owner,
        interval=intervals.desk,
        in_flight=in_flight,
    )
    inbox = Inbox(
        db,
        commits,
        queue,
        router,
        closer,
        clock,
        window=settings.group_seconds,
        sweep_seconds=intervals.inbox,
        desk=desk,
    )
    requests = RequestFilterService(
        db,
        queue,
        people,
        policy,
        clock,
        shipped_filter_examples,
        emoji=settings.not_a_ticket_emoji,
        enabled=settings.request_filter,
        refit_seconds=intervals.request_filter or settings.request_filter_refit_seconds,
        seed=settings.seed,
        cache_dir=settings.vector_cache_dir,
    )
    admin = replace(admin, on_model_activated=lambda registry_id, m: model.use(m, registry_id))
    access = AdminAccess(admin, slack)
    tab = HomeTab(admin, slack, access, is_agent=lambda user: _is_agent(people, user))
    jobs = JobFollower(
        admin,
        slack,
        clock,
        on_retrain_finished=tab.publish,
        update_interval=intervals.progress,
        poll_interval=intervals.jobs,
    )
    commands = AdminCommands(admin, slack, access, jobs)
    auto_retrainer = AutoRetrainer(admin, slack, clock, jobs, interval=intervals.auto_retrain)
    return Services(
        settings=settings,
        slack_config=slack_config,
        taxonomy=taxonomy,
        policy=policy,
        clock=clock,
        db=db,
        http=http,
        slack=slack,
        model=model,
        queue=queue,
        router=router,
        intake=Intake(
            db,
            commits,
            queue,
            router,
            policy,
            people=people,
            slack=slack,
            inbox=inbox,
            clock=clock,
            requests=requests,
            grouping=Grouping(
                agent_posts_are_tickets=settings.agent_posts == "tickets",
            ),
        ),
        inbox=inbox,
        closer=closer,
        requests=requests,
        commits=commits,
        corrections=CorrectionDesk(
            db, queue, people, taxonomy, policy, clock, per_hour=settings.corrections_per_hour
        ),
        people=people,
        requeue=requeue,
        admin=admin,
        commands=commands,
        home=AppHome(tab, commands, slack, requeue),
        jobs=jobs,
        auto_retrainer=auto_retrainer,
        triage_threshold=triage_threshold,
        socket=SocketWatch(clock),
        response_timers=ResponseTimers(
            db,
            slack,
            taxonomy,
            clock,
            owner=router.owner,
            triage_channel=policy.triage_channel,
            interval=intervals.response_timers,
        ),
        desk=desk,
        in_flight=in_flight,
    )


def check_emoji(settings: Settings, taxonomy: Taxonomy) -> None:
    """Stop start-up (before anything is opened) when the not-a-ticket, take or resolve emoji
    is a department's emoji or another of the three: a reaction would mean two things."""
    named = {
        "TRIAGE_NOT_A_TICKET_EMOJI": settings.not_a_ticket_emoji,
        "TRIAGE_TAKE_EMOJI": settings.take_emoji,
        "TRIAGE_RESOLVE_EMOJI": settings.resolve_emoji,
    }
    seen: dict[str, str] = {}
    for setting, emoji in named.items():
        dept = taxonomy.by_emoji(emoji)
        if dept is not None:
            raise SettingsError(
                f"{setting}: :{emoji}: is the {dept.name} department's emoji; choose another one."
            )
        if emoji in seen:
            raise SettingsError(
                f"{setting}: :{emoji}: is also {seen[emoji]}; each needs its own emoji."
            )
        seen[emoji] = setting


async def _is_agent(people: People, user: str) -> bool:
    return (await people.who(user)).is_agent
