"""Long-running jobs (retrain, fine-tune): their status, stage, resumable state and lock.

One job of a kind runs at a time, enforced by the database (a unique ``lock_key`` that a
running job holds), so the rule holds across replicas. A running job's process renews a lease
(``owner`` + ``heartbeat_at``); when the lease goes stale the process is gone, and any process
may ``claim_orphaned`` the job (compare-and-set, so exactly one wins) and resume it from
``state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.database import Database, utcnow
from data.db.schema import jobs

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)


class JobNotFoundError(LookupError):
    """No job with that id."""


class JobAlreadyRunningError(Exception):
    """A job of this kind is already running; ``running`` is that job (None if it just ended)."""

    def __init__(self, kind: str, running: Job | None) -> None:
        super().__init__(f"A {kind} job is already running.")
        self.kind = kind
        self.running = running


@dataclass(frozen=True)
class Job:
    """One job as stored."""

    id: int
    kind: str
    status: str
    stage: str | None
    params: dict[str, Any]
    state: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_by: str | None
    slack_channel: str | None
    slack_ts: str | None
    cancel_requested: bool
    owner: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def finished(self) -> bool:
        """Whether the job has ended (succeeded, failed or cancelled)."""
        return self.status in FINISHED


_COLUMNS = (
    jobs.c.id,
    jobs.c.kind,
    jobs.c.status,
    jobs.c.stage,
    jobs.c.params,
    jobs.c.state,
    jobs.c.result,
    jobs.c.error,
    jobs.c.created_by,
    jobs.c.slack_channel,
    jobs.c.slack_ts,
    jobs.c.cancel_requested,
    jobs.c.owner,
    jobs.c.heartbeat_at,
    jobs.c.created_at,
    jobs.c.updated_at,
)


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        status=row.status,
        stage=row.stage,
        params=dict(row.params),
        state=dict(row.state),
        result=dict(row.result) if row.result is not None else None,
        error=row.error,
        created_by=row.created_by,
        slack_channel=row.slack_channel,
        slack_ts=row.slack_ts,
        cancel_requested=bool(row.cancel_requested),
        owner=row.owner,
        heartbeat_at=row.heartbeat_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def start_job(
    db: Database,
    *,
    kind: str,
    params: dict[str, Any],
    created_by: str | None,
    owner: str,
    slack_channel: str | None = None,
    now: datetime | None = None,
) -> Job:
    """Create a running job of ``kind`` held by ``owner``, or raise JobAlreadyRunningError.

    Runs in its own transaction: the insert either takes the kind's lock or fails on the
    unique constraint, and a failed statement must not poison a caller's transaction.
    ``now``: when its lease starts (the caller's clock; default the real time).
    """
    now = now or utcnow()
    try:
        async with db.transaction() as conn:
            result = await conn.execute(
                jobs.insert()
                .values(
                    kind=kind,
                    status=RUNNING,
                    stage=None,
                    params=params,
                    state={},
                    created_by=created_by,
                    slack_channel=slack_channel,
                    cancel_requested=False,
                    lock_key=kind,
                    owner=owner,
                    heartbeat_at=now,
                    created_at=now,
                    updated_at=now,
                )
                .returning(jobs.c.id)
            )
            job_id = int(result.scalar_one())
            return await get_job(conn, job_id)
    except IntegrityError:
        async with db.transaction() as conn:
            running = await running_job(conn, kind)
        raise JobAlreadyRunningError(kind, running) from None


async def get_job(conn: AsyncConnection, job_id: int) -> Job:
    """The job ``job_id``; raises JobNotFoundError."""
    row = (await conn.execute(select(*_COLUMNS).where(jobs.c.id == job_id))).first()
    if row is None:
        raise JobNotFoundError(f"No job with id {job_id}.")
    return _job(row)


async def running_job(conn: AsyncConnection, kind: str) -> Job | None:
    """The running job of ``kind``, or None."""
    row = (
        await conn.execute(
            select(*_COLUMNS).where(jobs.c.lock_key == kind, jobs.c.status == RUNNING)
        )
    ).first()
    return _job(row) if row is not None else None


async def running_jobs(conn: AsyncConnection) -> list[Job]:
    """Every running job, oldest first."""
    rows = await conn.execute(select(*_COLUMNS).where(jobs.c.status == RUNNING).order_by(jobs.c.id))
    return [_job(row) for row in rows]


async def list_jobs(conn: AsyncConnection, limit: int = 10, kind: str | None = None) -> list[Job]:
    """The newest ``limit`` jobs (of ``kind`` if given), newest first."""
    query = select(*_COLUMNS).order_by(jobs.c.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    return [_job(row) for row in await conn.execute(query)]


async def set_stage(
    conn: AsyncConnection, job_id: int, stage: str, state: dict[str, Any] | None = None
) -> None:
    """Record the stage a running job is in and, if given, its whole resumable state."""
    values: dict[str, Any] = {"stage": stage, "updated_at": utcnow()}
    if state is not None:
        values["state"] = state
    await conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


async def set_state(conn: AsyncConnection, job_id: int, state: dict[str, Any]) -> None:
    """Replace a job's resumable state (e.g. once a remote fine-tuning job id is known)."""
    await conn.execute(
        update(jobs).where(jobs.c.id == job_id).values(state=state, updated_at=utcnow())
    )


async def set_slack_message(conn: AsyncConnection, job_id: int, channel: str, ts: str) -> None:
    """Remember the Slack message that shows this job's progress (updated in place)."""
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(slack_channel=channel, slack_ts=ts, updated_at=utcnow())
    )


async def request_cancel(conn: AsyncConnection, kind: str) -> Job | None:
    """Ask the running job of ``kind`` to stop; returns it, or None when none runs."""
    job = await running_job(conn, kind)
    if job is None:
        return None
    await conn.execute(
        update(jobs).where(jobs.c.id == job.id).values(cancel_requested=True, updated_at=utcnow())
    )
    return await get_job(conn, job.id)


async def heartbeat(
    conn: AsyncConnection, job_id: int, owner: str, *, now: datetime | None = None
) -> bool:
    """Renew ``owner``'s lease on a running job; False when the job ended or changed hands.

    ``now``: the renewal time (the caller's clock; default the real time).
    """
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.owner == owner, jobs.c.status == RUNNING)
        .values(heartbeat_at=now or utcnow())
    )
    return result.rowcount == 1


async def claim_orphaned(
    conn: AsyncConnection,
    job_id: int,
    owner: str,
    stale_before: datetime,
    *,
    now: datetime | None = None,
) -> bool:
    """Take over a running job whose lease is older than ``stale_before``.

    Compare-and-set on the old lease, so of several processes racing for it exactly one wins.
    ``now``: when the new lease starts (the caller's clock; default the real time).
    """
    now = now or utcnow()
    result = await conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.status == RUNNING,
            or_(jobs.c.heartbeat_at.is_(None), jobs.c.heartbeat_at < stale_before),
        )
        .values(owner=owner, heartbeat_at=now, updated_at=now)
    )
    return result.rowcount == 1


async def finish_job(
    conn: AsyncConnection,
    job_id: int,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """End a job (succeeded, failed or cancelled) and release its kind's lock."""
    if status not in FINISHED:
        raise ValueError(f"not a final status: {status}")
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(status=status, result=result, error=error, lock_key=None, updated_at=utcnow())
    )
