from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from admin import registry as admin_registry
from admin.context import AdminContext
from admin.errors import AdminError, JobConflictError
from admin.retrain import (
    RetrainRequest,
    cancel_retrain,
    resume_orphaned_retrains,
    retrain,
    run_retrain,
    start_retrain,
)
from admin.settings import load_settings
from bot.active_model import ActiveModel
from classifier.examples import Example, Source
from classifier.protocols import ProgressCallback, ProgressEvent, TrainedModel, no_progress
from classifier.taxonomy import Taxonomy
from data.db import jobs
from data.db import model_registry as store
from data.db.admin_actions import list_actions
from data.db.database import Database
from data.db.routings import CARD, record_routing
from tests.admin.conftest import (
    STARTER_TEST,
    STARTER_TRAIN,
    T0,
    add_labelled_ticket,
    add_routed_ticket,
    learner_factory,
    write_jsonl,
)
from tests.admin.keyword_learner import (
    BlockingLearner,
    FakeRemoteService,
    KeywordLearner,
    RemoteJobLearner,
    load_keyword_model,
    load_test_model,
)
from tests.fakes.clock import FakeClock


async def test_corrections_promote_a_better_model_and_the_next_ticket_uses_it(
    make_context: Callable[..., AdminContext],
) -> None:
    swapped: list[int] = []
    ctx = make_context(on_model_activated=lambda rid, _m: swapped.append(rid))
    first = await retrain(ctx, RetrainRequest(requested_by="UADMIN"))
    assert (first.status, first.candidate_id) == ("promoted", 1)
    assert "no active model" in first.message

    # A running bot replica follows the registry.
    replica = ActiveModel(ctx.db, load_keyword_model)
    await replica.refresh()
    before = (await replica.current().predict(["our okta sso sign in fails"]))[0]
    assert before.label != "Account"

    async with ctx.db.transaction() as conn:
        # Agents corrected these tickets; one of them falls in the fixed holdout.
        await add_labelled_ticket(conn, "okta sso sign in broken", "Account", holdout=False)
        await add_labelled_ticket(conn, "saml sso via okta fails", "Account", holdout=False)
        await add_labelled_ticket(conn, "sso okta saml login", "Account", holdout=True)

    events: list[ProgressEvent] = []
    second = await retrain(ctx, RetrainRequest(requested_by="UADMIN"), events.append)
    assert second.status == "promoted", second.message
    assert second.counts["by_source"] == {"correction": 2, "starter": 10}
    assert second.counts["holdout"] == len(first.evaluations[0].result.predicted) + 1
    scores = {e.role: e.result.score for e in second.evaluations}
    assert scores["candidate"].macro_f1 > scores["active"].macro_f1
    assert second.comparisons["active"]["only_a_right"] >= 2
    assert second.comparisons["active"]["only_b_right"] == 0
    assert [e.stage for e in events if e.fraction == 1.0] == [
        "assemble",
        "train",
        "evaluate",
        "decide",
    ]
    assert swapped == [1, 2]

    assert await replica.refresh()
    assert replica.status()["registry_id"] == second.candidate_id
    after = (await replica.current().predict(["our okta sso sign in fails"]))[0]
    assert after.label == "Account"
    async with ctx.db.transaction() as conn:
        entry = await store.get_model(conn, 2)
        job = await jobs.get_job(conn, second.job_id)
        actions = await list_actions(conn)
    assert entry.metrics["holdout"]["macro_f1"] == scores["candidate"].macro_f1
    assert entry.metrics["compared_with"]["active"]["model_id"] == first.evaluations[0].model_id
    assert (entry.created_by, entry.job_id, entry.status) == ("UADMIN", second.job_id, "active")
    assert (job.status, job.result and job.result["status"]) == ("succeeded", "promoted")
    assert [(a.action, a.outcome) for a in actions] == [
        ("retrain", "promoted"),
        ("retrain", "promoted"),
    ]


async def test_a_worse_candidate_is_not_promoted_and_says_why(
    make_context: Callable[..., AdminContext],
) -> None:
    ctx = make_context()
    good = await retrain(ctx, RetrainRequest())
    worse = await retrain(ctx, RetrainRequest(learner="constant"))
    assert worse.status == "kept"
    # No team ticket is held out: the starter test set's guard refuses the broken model.
    assert worse.message.startswith(
        "Kept the active model: macro-F1 on the starter test set would fall from"
    )
    async with ctx.db.transaction() as conn:
        assert await store.get_active_model_id(conn) == good.candidate_id
        assert (await store.get_model(conn, worse.candidate_id or 0)).status == "rejected"


async def test_dry_run_evaluates_but_never_promotes(
    make_context: Callable[..., AdminContext],
) -> None:
    ctx = make_context()
    outcome = await retrain(ctx, RetrainRequest(dry_run=True))
    assert outcome.status == "dry-run"
    assert "would be promoted" in outcome.message
    async with ctx.db.transaction() as conn:
        assert await store.get_active_model_id(conn) is None


async def test_a_second_retrain_is_refused_and_cancel_stops_the_first(
    make_context: Callable[..., AdminContext],
) -> None:
    blocking = BlockingLearner()
    ctx = make_context(learners={"blocking": blocking})
    job = await start_retrain(ctx, RetrainRequest(learner="blocking", requested_by="UADMIN"))
    running = asyncio.create_task(run_retrain(ctx, job.id))
    await asyncio.wait_for(blocking.started.wait(), 5)

    # Another replica (its own context, same database) is refused and told which job runs.
    other = make_context(learners={"blocking": blocking})
    with pytest.raises(JobConflictError, match=rf"job #{job.id} \(blocking\), started by UADMIN"):
        await start_retrain(other, RetrainRequest(requested_by="U2"))

    cancelled = await cancel_retrain(other)
    assert cancelled is not None
    assert cancelled.id == job.id
    outcome = await asyncio.wait_for(running, 5)
    assert outcome.status == "cancelled"
    async with ctx.db.transaction() as conn:
        stored = await jobs.get_job(conn, job.id)
        assert stored.status == "cancelled"
        assert await store.count_models(conn) == 0
    # The lock is free again.
    assert await cancel_retrain(ctx) is None
    assert (await retrain(ctx, RetrainRequest())).status == "promoted"


async def test_a_restart_mid_retrain_follows_the_same_remote_job(
    make_context: Callable[..., AdminContext],
) -> None:
    service = FakeRemoteService()
    settings = load_settings(learner="auto")
    clock = FakeClock()
    first_process = make_context(
        settings=settings, learners={"remote": RemoteJobLearner(service)}, owner="p1", clock=clock
    )
    job = await start_retrain(first_process, RetrainRequest(learner="remote"))
    running = asyncio.create_task(run_retrain(first_process, job.id))
    await service.followed(1)
    assert service.follows == ["ftjob-1"]
    running.cancel()  # the process dies while the remote job runs
    with pytest.raises(asyncio.CancelledError):
        await running
    async with first_process.db.transaction() as conn:
        orphan = await jobs.get_job(conn, job.id)
    assert (orphan.status, orphan.state["remote_job_id"]) == ("running", "ftjob-1")

    # While the lease is fresh nobody takes the job over; once stale, exactly one process does.
    restarted = make_context(
        settings=settings, learners={"remote": RemoteJobLearner(service)}, owner="p2", clock=clock
    )
    assert await resume_orphaned_retrains(restarted) == []
    await clock.advance(settings.job_lease_seconds + 1)
    replica = make_context(
        settings=settings, learners={"remote": RemoteJobLearner(service)}, owner="p3", clock=clock
    )
    resumed = await resume_orphaned_retrains(restarted)
    assert len(resumed) == 1
    assert await resume_orphaned_retrains(replica) == []
    with pytest.raises(JobConflictError):
        await start_retrain(replica, RetrainRequest(learner="remote"))

    await service.followed(2)
    service.finished.set()
    outcome = await asyncio.wait_for(resumed[0], 5)
    assert outcome.status == "promoted"
    assert list(service.jobs) == ["ftjob-1"]  # never a second remote job
    assert service.follows == ["ftjob-1", "ftjob-1"]


async def test_cancelling_a_remote_retrain_cancels_the_remote_job(
    make_context: Callable[..., AdminContext],
) -> None:
    service = FakeRemoteService()
    ctx = make_context(learners={"remote": RemoteJobLearner(service)})
    job = await start_retrain(ctx, RetrainRequest(learner="remote"))
    running = asyncio.create_task(run_retrain(ctx, job.id))
    await service.followed(1)
    await cancel_retrain(ctx)
    assert (await asyncio.wait_for(running, 5)).status == "cancelled"
    assert service.cancelled == ["ftjob-1"]


async def test_bad_requests_never_take_the_lock_and_failures_release_it(
    make_context: Callable[..., AdminContext], tmp_path: object
) -> None:
    ctx = make_context()
    with pytest.raises(AdminError, match="Unknown learner"):
        await start_retrain(ctx, RetrainRequest(learner="nope"))
    with pytest.raises(AdminError, match="needs an LLM"):
        await start_retrain(ctx, RetrainRequest(generate=10))
    # No data at all: day one trains from the taxonomy; there is nothing to evaluate on, and
    # no model to keep, so it is promoted and says it could not be evaluated.
    empty = make_context(starter_train=(), starter_test=())
    first = await retrain(empty, RetrainRequest())
    assert first.status == "promoted", first.message
    assert "could not be evaluated" in first.message


async def test_an_unevaluable_candidate_fails_and_releases_the_lock(
    make_context: Callable[..., AdminContext],
) -> None:
    empty = make_context(starter_train=(), starter_test=())
    # An active model (stored directly: one retrain per test keeps SQLite's lock out of it).
    model = await KeywordLearner().train(
        [Example("refund", "Billing"), Example("crash", "Technical")], ("Billing", "Technical")
    )
    async with empty.db.transaction() as conn:
        stored = await store.save_model(
            conn,
            model_id=model.model_id,
            learner=model.learner,
            artefact=model.to_bytes(),
            data_hash="h",
            counts={},
            metrics={},
            created_by="test",
        )
        await store.activate_model(conn, stored)
    failed = await retrain(empty, RetrainRequest())
    assert failed.status == "failed"
    assert "nothing to compare the candidate with the active model on" in failed.message
    async with empty.db.transaction() as conn:
        assert await jobs.running_jobs(conn) == []


async def test_generated_examples_are_stored_once_and_reused(
    make_context: Callable[..., AdminContext],
) -> None:
    calls: list[tuple[int, tuple[str, ...]]] = []

    async def generate(
        count: int, labels: Sequence[str], seeds: Sequence[Example], progress: ProgressCallback
    ) -> list[Example]:
        calls.append((count, tuple(labels)))
        progress(ProgressEvent("generate", "writing", 0.5))
        return [Example(f"okta sso problem number {i}", "Account") for i in range(count)]

    ctx = make_context(generate=generate)
    outcome = await retrain(ctx, RetrainRequest(generate=3))
    assert outcome.counts["by_source"] == {"generated": 3, "starter": 10}
    assert calls == [(3, ("Technical", "Billing", "Account", "Product", "Other"))]
    # The next retrain reuses them without asking the LLM again.
    again = await retrain(ctx, RetrainRequest())
    assert again.counts["by_source"] == {"generated": 3, "starter": 10}
    assert len(calls) == 1


async def test_retrain_and_rollback(database_url: str, taxonomy: Taxonomy, tmp_path: Path) -> None:
    db = Database(database_url)
    await db.start()
    try:
        ctx = AdminContext(
            db=db,
            settings=load_settings(learner="auto"),
            taxonomy=taxonomy,
            learners=learner_factory(),
            load_model=load_test_model,
            starter_train=(write_jsonl(tmp_path / "train.jsonl", STARTER_TRAIN),),
            starter_test=(write_jsonl(tmp_path / "test.jsonl", STARTER_TEST),),
            poll_seconds=0.02,
        )
        first = await retrain(ctx, RetrainRequest())
        async with db.transaction() as conn:
            await add_labelled_ticket(conn, "okta sso sign in broken", "Account", holdout=False)
        second = await retrain(ctx, RetrainRequest())
        assert (first.status, second.status) == ("promoted", "promoted")
        back = await admin_registry.rollback(ctx, "UADMIN")
        assert back.id == first.candidate_id
    finally:
        await db.close()


class RecordingLearner(KeywordLearner):
    """The keyword learner, keeping what it was trained on."""

    def __init__(self) -> None:
        self.trained_on: list[Example] = []

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> TrainedModel:
        self.trained_on = list(examples)
        return await super().train(examples, labels, seed=seed, progress=progress)


async def test_confirmed_tickets_train_redacted_and_the_triage_channel_does_not_confirm(
    make_context: Callable[..., AdminContext],
) -> None:
    recording = RecordingLearner()
    settings = load_settings(admin_users="UADMIN", learner="auto", triage_channel="C0TRIAGE")
    clock = FakeClock(T0 + timedelta(hours=3))
    ctx = make_context(settings=settings, learners={"auto": recording}, clock=clock)
    async with ctx.db.transaction() as conn:
        for text, channel in (
            ("invoice overdue, mail me at jane@example.com", "C0BILLING"),
            ("which plan is this, please advise", "C0TRIAGE"),
        ):
            ticket_id = await add_routed_ticket(conn, text, holdout=False)
            await record_routing(
                conn, ticket_id, kind=CARD, label="Billing", channel=channel, ts="1.2"
            )
    outcome = await retrain(ctx, RetrainRequest())
    assert outcome.counts["by_source"]["ticket"] == 1
    texts = [e.text for e in recording.trained_on if e.source is Source.TICKET]
    assert texts == ["invoice overdue, mail me at [email]"]
    # Off: no ticket trains unless a person labelled it.
    off = make_context(
        settings=load_settings(admin_users="UADMIN", learner="auto", confirm_after_hours=0),
        learners={"auto": recording},
        clock=clock,
    )
    assert "ticket" not in (await retrain(off, RetrainRequest())).counts["by_source"]


TEAM_TICKETS = 20


async def test_with_team_tickets_held_out_the_gate_compares_on_them(
    make_context: Callable[..., AdminContext],
) -> None:
    ctx = make_context()
    first = await retrain(ctx, RetrainRequest())
    assert first.status == "promoted"
    async with ctx.db.transaction() as conn:
        # The team's own kind of ticket, which the starter data never taught.
        for n in range(TEAM_TICKETS):
            await add_labelled_ticket(conn, f"zebra quux request {n}", "Account", holdout=True)
        for n in range(3):
            await add_labelled_ticket(conn, f"zebra quux again {n}", "Account", holdout=False)
    better = await retrain(ctx, RetrainRequest())
    assert better.status == "promoted", better.message
    assert f"on {TEAM_TICKETS} of the team's held-out tickets" in better.message
    # A broken model is refused on the team's tickets and by the starter set's guard.
    worse = await retrain(ctx, RetrainRequest(learner="constant"))
    assert worse.status == "kept"
    assert f"on {TEAM_TICKETS} of the team's held-out tickets: macro-F1" in worse.message
    assert "macro-F1 on the starter test set would fall" in worse.message


async def test_a_young_model_is_not_refused_for_a_small_fall_on_the_starter_test_set(
    make_context: Callable[..., AdminContext], tmp_path: Path
) -> None:
    # No team ticket is held out yet: the starter test set (SaaS tickets) only guards against a
    # broken model. Before, any fall there refused the candidate, however much it had learnt of
    # the team's tickets (bench/loop.py: BANKING77 models refused for 0.913 -> 0.896).
    bigger = [
        *STARTER_TEST,
        *(
            (f"{text} {n}", label)
            for n in range(10)
            for text, label in STARTER_TRAIN[1::2]  # one phrase per department
        ),
    ]
    ctx = make_context(starter_test=(write_jsonl(tmp_path / "bigger.jsonl", bigger),))
    first = await retrain(ctx, RetrainRequest())
    assert first.status == "promoted"
    async with ctx.db.transaction() as conn:
        # The team shares seats; learning it moves a starter ticket ("how do I share a
        # dashboard", Product) to Account.
        for n in range(3):
            await add_labelled_ticket(conn, f"how do i share a seat {n}", "Account", holdout=False)
    learnt = await retrain(ctx, RetrainRequest())
    by_role = {e.role: e.result.report.macro_f1 for e in learnt.evaluations}
    assert 0 < by_role["active"] - by_role["candidate"] < 0.05
    assert learnt.status == "promoted", learnt.message
    assert "no team tickets held out yet; macro-F1 on the starter test set" in learnt.message


async def test_a_fall_within_chance_on_the_team_tickets_does_not_keep_the_active_model(
    make_context: Callable[..., AdminContext],
) -> None:
    ctx = make_context()
    async with ctx.db.transaction() as conn:
        for n in range(TEAM_TICKETS):
            await add_labelled_ticket(conn, f"zebra quux request {n}", "Account", holdout=True)
        for n in range(3):
            await add_labelled_ticket(conn, f"zebra quux again {n}", "Account", holdout=False)
    assert (await retrain(ctx, RetrainRequest())).status == "promoted"
    async with ctx.db.transaction() as conn:
        # New corrections move one held-out team ticket (request 7) to Billing: one ticket of
        # twenty, which two equally good models differ on by chance.
        for n in range(4):
            await add_labelled_ticket(conn, f"request 7 billing {n}", "Billing", holdout=False)
    outcome = await retrain(ctx, RetrainRequest())
    scores = {e.role: e.result.score for e in outcome.evaluations}
    assert scores["candidate"].macro_f1 < scores["active"].macro_f1
    assert outcome.status == "promoted", outcome.message
    assert f"on {TEAM_TICKETS} of the team's held-out tickets: macro-F1" in outcome.message
    assert "within chance" in outcome.message
