from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from data.db import jobs
from data.db.database import Database, utcnow


async def _lock_holds(url: str) -> None:
    db = Database(url)
    await db.start()
    try:
        first = await jobs.start_job(
            db, kind="retrain", params={"learner": "tfidf"}, created_by="U1", owner="p1"
        )
        with pytest.raises(jobs.JobAlreadyRunningError) as refused:
            await jobs.start_job(db, kind="retrain", params={}, created_by="U2", owner="p2")
        assert refused.value.running is not None
        assert refused.value.running.id == first.id
        # Another kind is not blocked.
        other = await jobs.start_job(db, kind="report", params={}, created_by="U2", owner="p2")
        async with db.transaction() as conn:
            await jobs.finish_job(conn, first.id, jobs.SUCCEEDED, result={"promoted": True})
            await jobs.finish_job(conn, other.id, jobs.FAILED, error="boom")
        second = await jobs.start_job(db, kind="retrain", params={}, created_by="U2", owner="p2")
        async with db.transaction() as conn:
            assert (await jobs.get_job(conn, first.id)).result == {"promoted": True}
            assert (await jobs.running_job(conn, "retrain")) == await jobs.get_job(conn, second.id)
            assert [j.id for j in await jobs.list_jobs(conn)] == [second.id, other.id, first.id]
    finally:
        await db.close()


async def test_one_running_job_per_kind(database_url: str) -> None:
    await _lock_holds(database_url)


async def test_racing_starts_let_exactly_one_through(postgres_url: str) -> None:
    # Two "replicas" with their own engines race for the lock.
    replicas = [Database(postgres_url) for _ in range(2)]
    await replicas[0].start()
    try:
        outcomes = await asyncio.gather(
            *(
                jobs.start_job(db, kind="retrain", params={}, created_by="U", owner=f"p{i}")
                for i, db in enumerate(replicas * 3)
            ),
            return_exceptions=True,
        )
    finally:
        for db in replicas:
            await db.close()
    started = [o for o in outcomes if isinstance(o, jobs.Job)]
    refused = [o for o in outcomes if isinstance(o, jobs.JobAlreadyRunningError)]
    assert (len(started), len(refused)) == (1, 5)


async def test_cancel_state_and_orphan_claim(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        job = await jobs.start_job(db, kind="retrain", params={}, created_by="U1", owner="p1")
        async with db.transaction() as conn:
            await jobs.set_stage(conn, job.id, "train", {"openai_job": "ftjob-1"})
            assert await jobs.heartbeat(conn, job.id, "p1")
            assert not await jobs.heartbeat(conn, job.id, "someone-else")
            # A fresh lease cannot be claimed; a stale one can, by exactly one process.
            assert not await jobs.claim_orphaned(
                conn, job.id, "p2", utcnow() - timedelta(seconds=30)
            )
            later = utcnow() + timedelta(seconds=1)
            assert await jobs.claim_orphaned(conn, job.id, "p2", later)
            assert not await jobs.heartbeat(conn, job.id, "p1")
            cancelled = await jobs.request_cancel(conn, "retrain")
            assert cancelled is not None
            assert cancelled.cancel_requested
            assert (cancelled.stage, cancelled.state, cancelled.owner) == (
                "train",
                {"openai_job": "ftjob-1"},
                "p2",
            )
            await jobs.finish_job(conn, job.id, jobs.CANCELLED)
            assert await jobs.request_cancel(conn, "retrain") is None
            assert await jobs.running_jobs(conn) == []
    finally:
        await db.close()
