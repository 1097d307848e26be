"""Automatic retrains: the same job as /retrain, started by the schedule instead of a person.

``start_auto_retrain`` checks whether one is due (``admin.retrain_schedule``; counted from the
newest retrain of any kind, so an admin's /retrain also resets the count) and, if it is, starts
a local retrain job requested by ``auto``. The job lock of ``data.db.jobs`` keeps it to one at
a time across replicas: a replica that loses the race simply finds the job running. The run
itself is ``admin.retrain.run_retrain`` (child process, gated promotion, resumable), and
``auto_retrain_line`` is the one line the admin channel gets about it.

Admins pause and resume it (``set_auto_retrain``); the switch is shared by every replica.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from admin.context import AdminContext
from admin.errors import AdminError, JobConflictError
from admin.retrain import (
    CORRECTIONS_PARAM,
    KIND,
    LOCAL,
    RetrainOutcome,
    RetrainRequest,
    start_retrain,
)
from admin.retrain_schedule import RetrainSchedule
from data.clock import as_utc
from data.db import jobs
from data.db import model_registry as registry
from data.db.admin_actions import record_action
from data.db.auto_retrain import SWITCH_ACTION, auto_retrain_paused, corrections_count

log = logging.getLogger(__name__)

#: Who requests automatic retrains (the job's ``created_by`` and the audit log's user).
AUTO = "auto"


@dataclass(frozen=True)
class AutoRetrainStarted:
    """A retrain the schedule started: the job and why it was due."""

    job: jobs.Job
    reason: str


async def auto_retrain_due(
    ctx: AdminContext, schedule: RetrainSchedule, now: datetime
) -> str | None:
    """Why an automatic retrain is due now, or None (also None while paused)."""
    async with ctx.db.transaction() as conn:
        if await auto_retrain_paused(conn):
            return None
        if await jobs.running_job(conn, KIND) is not None:
            return None
        corrections = await corrections_count(conn)
        newest = await jobs.list_jobs(conn, 1, kind=KIND)
        seen, last = 0, None
        if newest:
            last = newest[0].created_at
            recorded = newest[0].params.get(CORRECTIONS_PARAM)
            seen = int(recorded) if isinstance(recorded, int) else corrections
        else:
            active = await registry.get_active_model(conn)
            last = active.created_at if active is not None else None
    last = as_utc(last) if last is not None else None
    return schedule.due(corrections, seen=seen, last_retrain_at=last, now=now)


async def start_auto_retrain(
    ctx: AdminContext,
    schedule: RetrainSchedule,
    now: datetime,
    *,
    slack_channel: str | None = None,
) -> AutoRetrainStarted | None:
    """Start the automatic retrain if one is due and none runs anywhere; else None."""
    reason = await auto_retrain_due(ctx, schedule, now)
    if reason is None:
        return None
    try:
        job = await start_retrain(
            ctx, RetrainRequest(learner=LOCAL, requested_by=AUTO, slack_channel=slack_channel)
        )
    except JobConflictError:
        return None  # another replica (or an admin) started one a moment ago
    except AdminError as exc:
        log.warning("automatic retrain not started: %s", exc)
        return None
    log.info("automatic retrain #%s started: %s", job.id, reason)
    return AutoRetrainStarted(job, reason)


async def set_auto_retrain(ctx: AdminContext, user: str, *, on: bool) -> None:
    """Pause (``on=False``) or resume automatic retrains, for every replica; audited."""
    async with ctx.db.transaction() as conn:
        await record_action(
            conn, user=user, action=SWITCH_ACTION, outcome="on" if on else "off", detail={}
        )


async def auto_retrain_on(ctx: AdminContext) -> bool:
    """Whether automatic retrains run (the setting is on and no admin paused them)."""
    if not ctx.settings.auto_retrain:
        return False
    async with ctx.db.transaction() as conn:
        return not await auto_retrain_paused(conn)


def auto_retrain_line(started: AutoRetrainStarted, outcome: RetrainOutcome) -> str:
    """The one line the admin channel gets: what happened and why."""
    head = f"Automatic retrain #{started.job.id} ({started.reason})"
    if outcome.status == "promoted":
        return f"{head}: promoted model #{outcome.candidate_id}. {outcome.message}"
    if outcome.status == "kept":
        return f"{head}: not promoted. {outcome.message}"
    return f"{head}: {outcome.status}. {outcome.message}"
