"""The retrain job with the OpenAI learners, against the fake OpenAI API (real SDK client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from admin.context import AdminContext, build_admin_context
from admin.learner_setup import learner_context
from admin.retrain import (
    RetrainRequest,
    resume_orphaned_retrains,
    retrain,
    run_retrain,
    start_retrain,
)
from admin.settings import Settings, load_settings
from classifier.llm.client import OpenAIClient
from classifier.taxonomy import Taxonomy, parse_taxonomy
from data import STARTER_TEST, STARTER_TRAIN
from data.clock import Clock
from data.db import jobs
from data.db.database import Database
from tests.admin.test_day_one import SHOP
from tests.fakes.clock import FakeClock
from tests.fakes.openai_api import API_KEY, FakeOpenAI


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


def _settings(fake: FakeOpenAI, **overrides: object) -> Settings:
    return load_settings(
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=fake.base_url,
        openai_finetune_poll_seconds=0.01,
        openai_timeout_seconds=5.0,
        learner="tfidf",
        **overrides,
    )


OpenContext = Callable[..., AdminContext]


@pytest.fixture
async def open_context() -> AsyncIterator[OpenContext]:
    """Builds the admin context as the bot does, each with its own OpenAI client (a process's
    one), and closes those clients when the test ends."""
    clients: list[OpenAIClient] = []

    def build(
        settings: Settings, db: Database, taxonomy: Taxonomy, clock: Clock | None = None
    ) -> AdminContext:
        learners = learner_context(settings, taxonomy)
        if learners.openai is not None:
            clients.append(learners.openai)
        ctx = build_admin_context(settings, db, taxonomy, learners, clock=clock)
        # The real starter data; a slice keeps the fake's fine-tune and the evaluation quick.
        return replace(
            ctx, starter_train=(STARTER_TRAIN,), starter_test=(STARTER_TEST,), poll_seconds=0.02
        )

    yield build
    for client in clients:
        await client.aclose()


async def test_finetune_retrain_reports_the_baseline_and_uses_generated_data(
    fake_openai: FakeOpenAI, db: Database, taxonomy: Taxonomy, open_context: OpenContext
) -> None:
    ctx = open_context(_settings(fake_openai), db, taxonomy)
    outcome = await retrain(
        ctx, RetrainRequest(learner="openai-finetune", generate=10, requested_by="UADMIN")
    )
    assert outcome.status == "promoted", outcome.message
    assert outcome.learner == "openai-finetune"
    assert outcome.counts["by_source"]["generated"] == 10
    roles = [e.role for e in outcome.evaluations]
    assert roles == ["candidate", "baseline"]
    # The seed's "baseline -> fine-tuned" comparison, on the holdout with the paired test.
    baseline = outcome.comparisons["baseline"]
    assert baseline["n_test"] == outcome.counts["holdout"] == 126
    assert 0.0 <= baseline["p_value"] <= 1.0
    assert len(fake_openai.jobs) == 1
    async with db.transaction() as conn:
        job = await jobs.get_job(conn, outcome.job_id)
    assert job.state["remote_job_id"] == next(iter(fake_openai.jobs))


async def test_a_restart_follows_the_stored_fine_tuning_job_and_never_starts_another(
    fake_openai: FakeOpenAI, db: Database, taxonomy: Taxonomy, open_context: OpenContext
) -> None:
    fake_openai.polls_per_state = 40  # the job takes a while: time to "crash" mid-way
    settings = _settings(fake_openai)
    clock = FakeClock()
    first = open_context(settings, db, taxonomy, clock)
    job = await start_retrain(first, RetrainRequest(learner="openai-finetune"))
    running = asyncio.create_task(run_retrain(first, job.id))
    for _ in range(500):
        async with db.transaction() as conn:
            if "remote_job_id" in (await jobs.get_job(conn, job.id)).state:
                break
        await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    restarted = open_context(settings, db, taxonomy, clock)
    assert await resume_orphaned_retrains(restarted) == []  # the lease is still fresh
    await clock.advance(settings.job_lease_seconds + 1)  # now it is stale

    (resumed,) = await resume_orphaned_retrains(restarted)
    outcome = await asyncio.wait_for(resumed, 60)
    assert outcome.status == "promoted", outcome.message
    assert len(fake_openai.jobs) == 1
    assert len(fake_openai.requests_to("POST", "/v1/fine_tuning/jobs")) == 1


async def test_retrain_openai_needs_no_labelled_tickets(
    fake_openai: FakeOpenAI, db: Database, open_context: OpenContext
) -> None:
    shop = parse_taxonomy(SHOP)
    ctx = replace(open_context(_settings(fake_openai), db, shop), starter_train=(), starter_test=())
    outcome = await retrain(ctx, RetrainRequest(learner="openai"))
    assert outcome.status == "promoted", outcome.message
    assert outcome.counts["train"] == 0
    # Evaluated by cross-validation over the taxonomy's 12 example tickets, through the API.
    assert outcome.evaluations[0].result.report.n_test == 12
    assert "cross-validation on 12 tickets" in outcome.message
    assert len(fake_openai.requests_to("POST", "/v1/chat/completions")) >= 12
