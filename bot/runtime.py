"""The bot's one runtime: everything it owns, built and torn down in one lifespan.

``open_runtime(settings)`` is an ``async with`` that opens, in order: the settings check, the
database (migrated), the one HTTP session and Slack client (auth.test), the one OpenAI client
(when a key is set), the active model, and then every background task under one
``Supervisor``::

    group-commit -> ticket-workers -> inbox -> requeue-watcher -> registry-follower
    -> retrain-follower -> people-refresher -> request-filter -> conversation-closer
    -> (auto-retrain, triage-threshold, response-timers when configured)

On the way out the tasks stop in the reverse order, this process's ticket leases are given up,
and the clients and the database are closed. ``triage serve`` (``bot.server.run_bot``), the
test harnesses and the benchmarks all build the bot with it; what they may change is passed
as parameters (a classifier to start with instead of the registry's, a clock, intervals, the
admin jobs' learners), never by replacing a part afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial

from slack_bolt.async_app import AsyncApp

from admin.context import AdminContext, build_admin_context
from admin.learner_setup import learner_context
from admin.settings import Settings
from admin.startup_model import ensure_model_for_taxonomy
from bot.app import create_app
from bot.config import slack_config
from bot.policy import RoutingPolicy
from bot.routing import RequestCheck
from bot.services import Intervals, Services, build_services
from bot.supervisor import Supervisor
from classifier.artifacts import load_model
from classifier.learners import LearnerContext
from classifier.protocols import Classifier
from classifier.taxonomy import Taxonomy, load_taxonomy
from data.clock import Clock, SystemClock
from data.db import tickets as tickets_repo
from data.db.database import Database

log = logging.getLogger(__name__)

#: Changes the admin jobs' context before the bot uses it (tests: small learners and data).
AdminCustomiser = Callable[[AdminContext], AdminContext]


@dataclass(frozen=True)
class Runtime:
    """A running bot: its app, its services and the supervisor of its background tasks."""

    settings: Settings
    services: Services
    app: AsyncApp
    supervisor: Supervisor
    clock: Clock
    learners: LearnerContext


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    taxonomy: Taxonomy | None = None,
    clock: Clock | None = None,
    classifier: Classifier | None = None,
    admin: AdminCustomiser | None = None,
    intervals: Intervals | None = None,
    workers: int = 16,
    owner: str = "",
    policy: RoutingPolicy | None = None,
    is_request: RequestCheck | None = None,
) -> AsyncIterator[Runtime]:
    """Build, start and (on exit) stop the bot; see the module docstring.

    ``classifier``: route with it instead of the registry's active model (no first model is
    trained). ``owner``: this process's name in ticket leases. ``policy``: instead of the
    settings' routing rules. ``is_request``: the request filter's check instead of the
    configured one (tests).
    """
    config = slack_config(settings)  # a bad token setting stops start-up before any contact
    taxonomy = taxonomy or load_taxonomy(settings.taxonomy)
    clock = clock or SystemClock()
    async with AsyncExitStack() as stack:
        context = learner_context(settings, taxonomy)  # the process's one OpenAI client
        if context.openai is not None:
            stack.push_async_callback(context.openai.aclose)
        db = Database(settings.database_url)
        stack.push_async_callback(db.close)
        admin_context = build_admin_context(settings, db, taxonomy, context, clock=clock)
        if admin is not None:
            admin_context = admin(admin_context)
        services = build_services(
            settings,
            config,
            taxonomy,
            db=db,
            clock=clock,
            loader=partial(load_model, context=context),
            admin=admin_context,
            workers=workers,
            intervals=intervals,
            owner=owner,
            policy=policy,
            is_request=is_request,
        )
        stack.push_async_callback(services.http.close)
        await db.start()
        identity = await services.slack.connect()  # a bad token stops start-up before training
        log.info("Connected to Slack as %s (team %s)", identity.user_id, identity.team_id)
        if classifier is not None:
            services.model.use(classifier)
        else:
            # First start, or the taxonomy changed: a model for exactly these departments.
            startup = await ensure_model_for_taxonomy(
                db,
                settings.learner,
                taxonomy,
                context,
                seed=settings.seed,
                starter_train=admin_context.starter_train,
                learners=admin_context.learners,
            )
            if startup.message and settings.admin_channel:
                try:
                    await services.slack.post_message(settings.admin_channel, startup.message)
                except Exception:
                    log.warning(
                        "Could not tell the admin channel about the new model", exc_info=True
                    )
            await services.model.reload()
        await services.check_channels()
        await services.people.refresh()  # who the agents are, before the first correction
        await services.resume()  # queued now, worked on once the workers start
        supervisor = Supervisor(clock)
        supervisor.add("group-commit", services.commits.run_commits)
        supervisor.add("ticket-workers", services.queue.run_workers)
        supervisor.add("inbox", services.inbox.run)
        supervisor.add("requeue-watcher", services.requeue.run)
        every = intervals or Intervals()
        supervisor.add("registry-follower", partial(services.model.follow, clock, every.registry))
        supervisor.add("retrain-follower", services.jobs.follow)
        supervisor.add("people-refresher", services.people.run)
        if settings.request_filter:
            supervisor.add("request-filter", services.requests.run)
        supervisor.add("conversation-closer", services.closer.run)
        if settings.auto_retrain:
            supervisor.add("auto-retrain", services.auto_retrainer.run)
        if settings.adaptive_threshold:
            supervisor.add("triage-threshold", services.triage_threshold.run)
        if services.response_timers.active:
            supervisor.add("response-timers", services.response_timers.run)
        supervisor.add("desk-sync", services.desk.run)
        stack.push_async_callback(_release_leases, services)
        stack.push_async_callback(supervisor.stop)
        supervisor.start()
        yield Runtime(
            settings=settings,
            services=services,
            app=create_app(settings, services),
            supervisor=supervisor,
            clock=clock,
            learners=context,
        )


async def _release_leases(services: Services) -> None:
    """Give up this process's unfinished tickets, so another replica need not wait for the
    leases to run out (the database may be what is failing: then they run out instead)."""
    try:
        async with services.db.transaction() as conn:
            released = await tickets_repo.release_unfinished(conn, services.router.owner)
        if released:
            log.info(
                "Gave up %d unfinished ticket(s) for another replica or the next start", released
            )
    except Exception:
        log.warning("Could not release this process's tickets", exc_info=True)
    if services.response_timers.active:
        try:
            await services.response_timers.release()
        except Exception:
            log.warning("Could not hand on the response-timer lease", exc_info=True)
    try:
        await services.desk.release()
    except Exception:
        log.warning("Could not hand on the desk-sync lease", exc_info=True)
