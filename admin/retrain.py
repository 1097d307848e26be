"""The retrain job: assemble data -> generate -> train -> evaluate -> decide.

One retrain runs at a time (the database refuses a second, see ``data.db.jobs``). The job
keeps its resumable state in ``jobs.state`` as it goes: the remote fine-tuning job id as soon
as it exists, the candidate's registry id once it is saved. A process that dies mid-retrain
leaves the job ``running`` with a lease that goes stale; ``resume_orphaned_retrains`` claims
it (exactly one process wins) and continues: it follows the stored remote job instead of
starting another, and it never trains a candidate it already saved.

Cancelling is cooperative across processes: ``cancel_retrain`` sets a flag in the database;
the process running the job sees it within ``poll_seconds``, stops the work (and the remote
job, if the learner can) and ends the job ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from admin.context import AdminContext
from admin.errors import AdminError, JobConflictError
from admin.promotion import STARTER_GUARD, PromotionDecision, decide_promotion, paired_noise
from admin.scoring import HoldoutResult, compare_on_holdout, score_on_holdout, score_predicted
from admin.taxonomy_training import (
    CrossValidation,
    cross_validate,
    learner_input,
    learner_input_with_tickets,
    unlabelled_tickets,
)
from admin.training_data import TrainingData, assemble_training_data, read_starter
from classifier.artifacts import unpack
from classifier.errors import ClassifierError
from classifier.examples import Example, Source
from classifier.learners import LOCAL_PREFERENCE
from classifier.protocols import (
    Classifier,
    Learner,
    ProgressCallback,
    ProgressEvent,
    RemoteTrainingLearner,
    TrainedModel,
    WarmStartLearner,
    no_progress,
)
from classifier.redaction import redact_pii
from data.clock import sleep_or_wake
from data.db import jobs
from data.db import model_registry as registry
from data.db.admin_actions import record_action
from data.db.auto_retrain import corrections_count
from data.db.training_set import (
    StoredExample,
    add_generated_examples,
    list_training_examples,
)

log = logging.getLogger(__name__)

KIND = "retrain"

#: The job parameter with the number of corrections there were when the retrain started.
CORRECTIONS_PARAM = "corrections"
#: What /retrain accepts as the learner argument, besides registered learner names.
LOCAL = "local"
#: Learners that train on this machine (and so can train in a child process).
LOCAL_NAMES = frozenset({"auto", *LOCAL_PREFERENCE})


@dataclass(frozen=True)
class RetrainRequest:
    """What an admin asked for."""

    learner: str = LOCAL
    generate: int = 0
    dry_run: bool = False
    requested_by: str = "cli"
    slack_channel: str | None = None

    def to_params(self) -> dict[str, Any]:
        """The job's stored parameters."""
        return {
            "learner": self.learner,
            "generate": self.generate,
            "dry_run": self.dry_run,
            "requested_by": self.requested_by,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any], slack_channel: str | None) -> RetrainRequest:
        """The request a stored job was started with."""
        return cls(
            learner=str(params.get("learner", LOCAL)),
            generate=int(params.get("generate", 0)),
            dry_run=bool(params.get("dry_run", False)),
            requested_by=str(params.get("requested_by", "cli")),
            slack_channel=slack_channel,
        )


class RetrainStatus(StrEnum):
    """How a retrain ended (stored in jobs.result as its value)."""

    PROMOTED = "promoted"
    KEPT = "kept"
    DRY_RUN = "dry-run"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Role(StrEnum):
    """Which model an evaluation on the holdout is of."""

    CANDIDATE = "candidate"
    ACTIVE = "active"
    BASELINE = "baseline"


class StopReason(StrEnum):
    """Why the watcher stopped a running retrain."""

    CANCEL = "cancel"
    LEASE_LOST = "lease-lost"


@dataclass(frozen=True)
class EvaluatedModel:
    """One model's result on the holdout."""

    role: Role
    model_id: str
    result: HoldoutResult


@dataclass(frozen=True)
class RetrainOutcome:
    """How a retrain ended, for the final message and the job's stored result."""

    job_id: int
    status: RetrainStatus
    message: str
    learner: str = ""
    candidate_id: int | None = None
    previous_active_id: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    evaluations: tuple[EvaluatedModel, ...] = ()
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)
    decision: PromotionDecision | None = None

    def to_result(self) -> dict[str, Any]:
        """The JSON stored in jobs.result."""
        return {
            "status": self.status.value,
            "message": self.message,
            "learner": self.learner,
            "candidate_id": self.candidate_id,
            "previous_active_id": self.previous_active_id,
            "counts": self.counts,
            "scores": {
                e.role: {
                    "model_id": e.model_id,
                    "macro_f1": e.result.score.macro_f1,
                    "accuracy": e.result.score.accuracy,
                }
                for e in self.evaluations
            },
            "comparisons": self.comparisons,
            "reasons": list(self.decision.reasons) if self.decision else [],
        }


def resolve_learner(ctx: AdminContext, requested: str) -> str:
    """The registered learner name for /retrain's argument ("local" = the configured local)."""
    if requested in ("", LOCAL):
        configured = ctx.settings.learner
        return configured if configured in (*LOCAL_PREFERENCE, "auto") else "auto"
    return requested


async def start_retrain(ctx: AdminContext, request: RetrainRequest) -> jobs.Job:
    """Create the retrain job, or raise JobConflictError naming the one already running.

    Checks what can be checked up front (a known learner, a generator when generate=N), so a
    request that cannot succeed never takes the lock.
    """
    if request.generate < 0:
        raise AdminError("generate=N needs a number of examples of 0 or more.")
    if request.generate and ctx.generate is None:
        raise AdminError(
            "Generating examples needs an LLM: set OPENAI_API_KEY (or OPENAI_BASE_URL for a "
            "compatible server), or retrain without generate=N."
        )
    try:
        ctx.learners(resolve_learner(ctx, request.learner))
    except ClassifierError as exc:
        raise AdminError(str(exc)) from None
    async with ctx.db.transaction() as conn:
        # How many corrections this retrain starts from: automatic retrains count from it.
        corrections = await corrections_count(conn)
    try:
        return await jobs.start_job(
            ctx.db,
            kind=KIND,
            params={**request.to_params(), CORRECTIONS_PARAM: corrections},
            created_by=request.requested_by,
            owner=ctx.owner,
            slack_channel=request.slack_channel,
            now=ctx.clock.now(),
        )
    except jobs.JobAlreadyRunningError as exc:
        raise JobConflictError(describe_running(exc.running)) from None


def describe_running(job: jobs.Job | None) -> str:
    """Why a second retrain was refused, naming the one that runs."""
    if job is None:
        return "A retrain was running a moment ago; try again in a few seconds."
    started = job.created_at.strftime("%H:%M UTC")
    stage = f", now at {job.stage}" if job.stage else ""
    learner = job.params.get("learner", LOCAL)
    return (
        f"A retrain is already running: job #{job.id} ({learner}), started by "
        f"{job.created_by or 'someone'} at {started}{stage}. Wait for it, or cancel it with "
        "`/retrain cancel`."
    )


async def cancel_retrain(ctx: AdminContext) -> jobs.Job | None:
    """Ask the running retrain to stop; returns it, or None when no retrain runs."""
    async with ctx.db.transaction() as conn:
        return await jobs.request_cancel(conn, KIND)


async def retrain(
    ctx: AdminContext, request: RetrainRequest, progress: ProgressCallback = no_progress
) -> RetrainOutcome:
    """Start a retrain and run it to the end in this process (the command line's path)."""
    job = await start_retrain(ctx, request)
    return await run_retrain(ctx, job.id, progress)


async def run_retrain(
    ctx: AdminContext, job_id: int, progress: ProgressCallback = no_progress
) -> RetrainOutcome:
    """Run (or resume) the retrain job ``job_id``, which this process must own.

    Ends the job succeeded, failed or cancelled. If this coroutine itself is cancelled (the
    process is shutting down) the job stays running, so a restarted process resumes it.
    """
    async with ctx.db.transaction() as conn:
        job = await jobs.get_job(conn, job_id)
    run = _RetrainRun(ctx, job, progress)
    body = asyncio.create_task(run.execute())
    # The watcher is told to stop, never cancelled: cancelled in the middle of a heartbeat it
    # would leave that write's transaction to finish behind the next job's back (SQLite: "database
    # is locked" for whoever writes next).
    stop_watching = asyncio.Event()
    watcher = asyncio.create_task(_watch(ctx, job_id, body, run, stop_watching))
    try:
        outcome = await asyncio.shield(body)
    except asyncio.CancelledError:
        if body.done() and run.stop_reason is StopReason.CANCEL:
            outcome = await run.finish_cancelled()
        elif body.done() and run.stop_reason is StopReason.LEASE_LOST:
            raise AdminError(f"Retrain job #{job_id} was taken over by another process.") from None
        else:
            # This process is stopping: leave the job running for a restart to resume.
            body.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await body
            raise
    except Exception as exc:
        outcome = await run.finish_failed(exc)
    finally:
        stop_watching.set()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return outcome


async def _watch(
    ctx: AdminContext,
    job_id: int,
    body: asyncio.Task[RetrainOutcome],
    run: _RetrainRun,
    stop: asyncio.Event,
) -> None:
    """Renew the lease and stop ``body`` on a cancel request (or when the lease is lost),
    until ``stop`` is set; a heartbeat under way when it is set finishes first."""
    while not body.done() and not stop.is_set():
        await sleep_or_wake(ctx.clock, ctx.poll_seconds, stop, clear=False)
        if body.done() or stop.is_set():
            return
        try:
            async with ctx.db.transaction() as conn:
                kept = await jobs.heartbeat(conn, job_id, ctx.owner, now=ctx.clock.now())
                job = await jobs.get_job(conn, job_id)
        except Exception:
            log.warning("retrain %s: heartbeat failed", job_id, exc_info=True)
            continue
        if job.cancel_requested and not run.deciding:
            run.stop_reason = StopReason.CANCEL
            body.cancel()
            return
        if not kept and not job.finished:
            run.stop_reason = StopReason.LEASE_LOST
            body.cancel()
            return


async def resume_orphaned_retrains(
    ctx: AdminContext,
    progress_for: Callable[[jobs.Job], ProgressCallback] = lambda _job: no_progress,
) -> list[asyncio.Task[RetrainOutcome]]:
    """Claim every running retrain whose process died and run it on in this process.

    A job is orphaned when its lease is older than TRIAGE_JOB_LEASE_SECONDS. Returns the
    started tasks (the bot keeps them; the terminal awaits them).
    """
    stale_before = ctx.clock.now() - timedelta(seconds=ctx.settings.job_lease_seconds)
    tasks: list[asyncio.Task[RetrainOutcome]] = []
    async with ctx.db.transaction() as conn:
        candidates = [j for j in await jobs.running_jobs(conn) if j.kind == KIND]
    for job in candidates:
        if job.owner == ctx.owner:
            continue
        async with ctx.db.transaction() as conn:
            claimed = await jobs.claim_orphaned(
                conn, job.id, ctx.owner, stale_before, now=ctx.clock.now()
            )
        if claimed:
            log.info("retrain %s: resuming job orphaned by %s", job.id, job.owner)
            tasks.append(asyncio.create_task(run_retrain(ctx, job.id, progress_for(job))))
    return tasks


class _RetrainRun:
    """One execution of a retrain job (fresh or resumed)."""

    def __init__(self, ctx: AdminContext, job: jobs.Job, progress: ProgressCallback) -> None:
        self.ctx = ctx
        self.job = job
        self.request = RetrainRequest.from_params(job.params, job.slack_channel)
        self.state: dict[str, Any] = dict(job.state)
        self.progress = progress
        self.learner_name = resolve_learner(ctx, self.request.learner)
        self.stop_reason: StopReason | None = None
        #: Once promotion starts it finishes: a cancel then would leave a half-made decision.
        self.deciding = False
        self.remote_learner: RemoteTrainingLearner | None = None
        #: Holdout predictions made by the training child, by role, and which active model.
        self.child_predictions: dict[str, list[str]] = {}
        self.child_active_id: int | None = None
        #: Set when the candidate was evaluated by cross-validation (no holdout).
        self.cross_validation: CrossValidation | None = None
        self.active_labels: tuple[str, ...] | None = None
        self.cross_validated_score = ""

    def emit(self, stage: str, message: str = "", fraction: float | None = None) -> None:
        try:
            self.progress(ProgressEvent(stage, message, fraction))
        except Exception:  # a broken progress display must not break the job
            log.warning("retrain %s: progress callback failed", self.job.id, exc_info=True)

    async def enter(self, stage: str, message: str = "") -> None:
        async with self.ctx.db.transaction() as conn:
            await jobs.set_stage(conn, self.job.id, stage, self.state)
        self.emit(stage, message, 0.0)

    async def save_state(self) -> None:
        async with self.ctx.db.transaction() as conn:
            await jobs.set_state(conn, self.job.id, self.state)

    # The stages ------------------------------------------------------------------------

    async def execute(self) -> RetrainOutcome:
        data = await self.assemble()
        data = await self.generate(data)
        candidate_id, candidate = await self.train(data)
        evaluations, comparisons, active_id = await self.evaluate(data, candidate_id, candidate)
        return await self.decide(data, candidate_id, candidate, evaluations, comparisons, active_id)

    async def assemble(self) -> TrainingData:
        await self.enter("assemble", "reading starter data and corrections")
        starter_train = await asyncio.to_thread(read_starter, self.ctx.starter_train)
        starter_test = await asyncio.to_thread(read_starter, self.ctx.starter_test)
        stored = await self.stored_examples()
        data = await asyncio.to_thread(
            partial(
                assemble_training_data,
                self.ctx.taxonomy,
                starter_train=starter_train,
                starter_test=starter_test,
                stored=stored,
            )
        )
        self.emit("assemble", _describe_counts(data), 1.0)
        return data

    async def stored_examples(self) -> list[StoredExample]:
        """The stored labelled tickets (corrections and confirmed tickets) under the settings'
        holdout rules; confirmed tickets' text is redacted like a correction's."""
        settings, now = self.ctx.settings, self.ctx.clock.now()
        confirmed_before = (
            now - timedelta(hours=settings.confirm_after_hours)
            if settings.confirm_after_hours > 0
            else None
        )
        triage = [settings.triage_channel] if settings.triage_channel else []
        async with self.ctx.db.transaction() as conn:
            stored = await list_training_examples(
                conn,
                now=now,
                holdout_cap=settings.holdout_cap,
                confirmed_before=confirmed_before,
                exclude_channels=triage,
            )
        if not settings.redact_pii:
            return stored
        return [
            replace(e, text=redact_pii(e.text)) if e.source == Source.TICKET.value else e
            for e in stored
        ]

    async def generate(self, data: TrainingData) -> TrainingData:
        wanted = self.request.generate
        if not wanted:
            self.emit("generate", "skipped (generate=0)")
            return data
        if self.state.get("generated"):
            self.emit("generate", f"{self.state['generated']} examples generated earlier", 1.0)
            return data
        assert self.ctx.generate is not None  # checked by start_retrain
        await self.enter("generate", f"asking the LLM for {wanted} examples")
        # Every department, including those with no example yet (what generation is for).
        labels = self.ctx.taxonomy.labels
        made = await self.ctx.generate(
            wanted, labels, data.train, lambda e: self.emit("generate", e.message, e.fraction)
        )
        made = [Example(e.text, e.label, Source.GENERATED) for e in made]
        if not self.request.dry_run:
            async with self.ctx.db.transaction() as conn:
                await add_generated_examples(conn, [(e.text, e.label) for e in made])
            self.state["generated"] = len(made)
            await self.save_state()
        stored = await self.stored_examples()
        data = assemble_training_data(
            self.ctx.taxonomy,
            starter_train=read_starter(self.ctx.starter_train),
            starter_test=read_starter(self.ctx.starter_test),
            stored=stored,
            generated=made if self.request.dry_run else (),
        )
        self.emit("generate", f"{len(made)} examples generated; {_describe_counts(data)}", 1.0)
        return data

    def labels(self, data: TrainingData) -> tuple[str, ...]:
        return learner_input(self.learner_name, data.train, self.ctx.taxonomy).labels

    async def train(self, data: TrainingData) -> tuple[int, TrainedModel]:
        saved = self.state.get("candidate_id")
        if isinstance(saved, int):
            async with self.ctx.db.transaction() as conn:
                artefact = await registry.get_artefact(conn, saved)
            self.emit("train", f"candidate #{saved} was trained before the restart", 1.0)
            return saved, await asyncio.to_thread(self.ctx.load_model, artefact)

        learner = self.ctx.learners(self.learner_name)
        elsewhere = (
            self.ctx.train_out_of_process is not None
            and self.learner_name in LOCAL_NAMES
            and not isinstance(learner, RemoteTrainingLearner)
        )
        blend: list[str] | None = None
        if elsewhere:
            # The child blends the taxonomy in: self-labelling encodes thousands of texts, and
            # here it would hold the encoder live tickets are routed with. What is read here is
            # the taxonomy's own examples (for the labels and the message), no encoding.
            blend = await unlabelled_tickets(self.ctx.db, data.holdout)
            given = await asyncio.to_thread(
                learner_input, self.learner_name, data.train, self.ctx.taxonomy
            )
        else:
            given = await learner_input_with_tickets(
                self.ctx.db, learner, self.learner_name, data.train, self.ctx.taxonomy, data.holdout
            )
        labels = given.labels
        if len(labels) < 2:
            raise AdminError(
                "There is too little data to train: the training set covers "
                f"{len(labels)} department(s); at least two are needed."
            )
        added = len(given.examples) - len(data.train)
        from_taxonomy = f" (+{added} from the taxonomy)" if added else ""
        await self.enter(
            "train", f"{self.learner_name} on {len(data.train)} examples{from_taxonomy}"
        )

        def report(event: ProgressEvent) -> None:
            self.emit("train", event.message, event.fraction)

        if isinstance(learner, RemoteTrainingLearner):
            self.remote_learner = learner
            remote_id = self.state.get("remote_job_id")
            if not isinstance(remote_id, str):
                remote_id = await learner.start(given.examples, labels, seed=self.ctx.settings.seed)
                # Stored before following, so a restart follows this job, never starts another.
                self.state["remote_job_id"] = remote_id
                await self.save_state()
                self.emit("train", f"fine-tuning job {remote_id} created")
            else:
                self.emit("train", f"following fine-tuning job {remote_id} after a restart")
            model = await learner.follow(remote_id, labels, progress=report)
            artefact = await asyncio.to_thread(model.to_bytes)
        elif elsewhere and self.ctx.train_out_of_process is not None:
            # The child also predicts the holdout with the new and the active model, so the
            # bot's process only scores labels (inference is the other heavy part).
            async with self.ctx.db.transaction() as conn:
                active_entry = await registry.get_active_model(conn)
                active_artefact = (
                    await registry.get_artefact(conn, active_entry.id) if active_entry else None
                )
            child = await self.ctx.train_out_of_process(
                self.learner_name,
                data.train,
                labels,
                self.ctx.settings.seed,
                report,
                data.holdout,
                active_artefact,
                blend,
            )
            artefact = child.artefact
            self.child_predictions = child.predictions
            self.child_active_id = active_entry.id if active_entry else None
            model = await asyncio.to_thread(self.ctx.load_model, artefact)
        else:
            learner = await self.warm_started(learner)
            model = await learner.train(
                given.examples, labels, seed=self.ctx.settings.seed, progress=report
            )
            artefact = await asyncio.to_thread(model.to_bytes)

        content_hash = await asyncio.to_thread(lambda: data.data_hash)
        async with self.ctx.db.transaction() as conn:
            candidate_id = await registry.save_model(
                conn,
                model_id=model.model_id,
                learner=model.learner,
                artefact=artefact,
                data_hash=content_hash,
                counts=data.counts(),
                metrics={},
                created_by=self.request.requested_by,
                job_id=self.job.id,
            )
            self.state["candidate_id"] = candidate_id
            await jobs.set_state(conn, self.job.id, self.state)
        self.emit("train", f"candidate #{candidate_id} ({model.model_id}) trained", 1.0)
        return candidate_id, model

    async def warm_started(self, learner: Learner) -> Learner:
        """``learner`` warm-started from the active model when it can be (the training child
        does the same with the active artefact it is given)."""
        if not isinstance(learner, WarmStartLearner):
            return learner
        async with self.ctx.db.transaction() as conn:
            active_entry = await registry.get_active_model(conn)
            if active_entry is None:
                return learner
            artefact = await registry.get_artefact(conn, active_entry.id)
        try:
            previous = unpack(artefact).meta
        except ClassifierError:
            return learner
        return learner.warm_started(previous)

    async def evaluate(
        self, data: TrainingData, candidate_id: int, candidate: TrainedModel
    ) -> tuple[list[EvaluatedModel], dict[str, dict[str, Any]], int | None]:
        holdout = data.holdout
        if not holdout:
            return await self.cross_validate(data, candidate_id, candidate)
        await self.enter("evaluate", f"{len(holdout)} held-out tickets")
        labels = self.ctx.taxonomy.labels
        async with self.ctx.db.transaction() as conn:
            active_entry = await registry.get_active_model(conn)
        evaluations: list[EvaluatedModel] = []

        async def add(role: Role, classifier: Classifier) -> None:
            self.emit("evaluate", f"scoring the {role} model", len(evaluations) / 3)
            result = await score_on_holdout(classifier, holdout, labels)
            evaluations.append(EvaluatedModel(role, classifier.model_id, result))

        def predicted_in_child(role: Role, model_id: str, learner: str) -> bool:
            labels_of_role = self.child_predictions.get(role)
            if labels_of_role is None or len(labels_of_role) != len(holdout):
                return False
            result = score_predicted(model_id, learner, holdout, labels_of_role, labels)
            evaluations.append(EvaluatedModel(role, model_id, result))
            return True

        if not predicted_in_child(Role.CANDIDATE, candidate.model_id, candidate.learner):
            await add(Role.CANDIDATE, candidate)
        if active_entry is not None:
            same_active = self.child_active_id == active_entry.id
            if not (
                same_active
                and predicted_in_child(Role.ACTIVE, active_entry.model_id, active_entry.learner)
            ):
                async with self.ctx.db.transaction() as conn:
                    active_artefact = await registry.get_artefact(conn, active_entry.id)
                await add(
                    Role.ACTIVE, await asyncio.to_thread(self.ctx.load_model, active_artefact)
                )
        baseline = self.ctx.baseline()
        if baseline is not None:
            await add(Role.BASELINE, baseline)

        by_role = {e.role: e for e in evaluations}
        comparisons: dict[str, dict[str, Any]] = {
            role: compare_on_holdout(by_role[Role.CANDIDATE].result, by_role[role].result, holdout)
            for role in (Role.ACTIVE, Role.BASELINE)
            if role in by_role
        }
        metrics = {
            "holdout": by_role[Role.CANDIDATE].result.metrics,
            "evaluation": f"a holdout of {len(holdout)} tickets",
            "holdout_hash": data.holdout_hash,
            "holdout_size": len(holdout),
            "compared_with": {
                role: {"model_id": by_role[Role(role)].model_id, **comparison}
                for role, comparison in comparisons.items()
            },
        }
        async with self.ctx.db.transaction() as conn:
            await registry.update_metrics(conn, candidate_id, metrics)
            if active_entry is not None:
                # The active model's figures on today's holdout, for the report and App Home.
                await registry.update_metrics(
                    conn,
                    active_entry.id,
                    {
                        **active_entry.metrics,
                        "holdout": by_role[Role.ACTIVE].result.metrics,
                        "holdout_hash": data.holdout_hash,
                        "holdout_size": len(holdout),
                    },
                )
        self.emit("evaluate", _describe_scores(evaluations), 1.0)
        return evaluations, comparisons, active_entry.id if active_entry else None

    async def cross_validate(
        self, data: TrainingData, candidate_id: int, candidate: TrainedModel
    ) -> tuple[list[EvaluatedModel], dict[str, dict[str, Any]], int | None]:
        """No holdout: score the learner by cross-validation instead (candidate only)."""
        await self.enter("evaluate", "no held-out tickets for these departments: cross-validating")
        learner = self.ctx.learners(self.learner_name)
        result = await cross_validate(
            learner, self.learner_name, data.train, self.ctx.taxonomy, seed=self.ctx.settings.seed
        )
        async with self.ctx.db.transaction() as conn:
            active_entry = await registry.get_active_model(conn)
        if result is None:
            if active_entry is not None:
                raise AdminError(
                    "There is nothing to compare the candidate with the active model on: no "
                    "held-out tickets and too few examples to cross-validate. Add examples to "
                    "the taxonomy, import labelled tickets (`triage import`), or let agents "
                    "correct a few tickets first."
                )
            # Day one: nothing to evaluate on, and nothing to route with either.
            self.cross_validation = CrossValidation((), (), 0)
            self.emit("evaluate", "not evaluated: no held-out tickets and no examples", 1.0)
            return [], {}, None
        self.cross_validation = result
        scored = score_predicted(
            candidate.model_id,
            candidate.learner,
            result.examples,
            result.predicted,
            self.ctx.taxonomy.labels,
        )
        low, high = scored.report.accuracy_ci
        self.cross_validated_score = (
            f"accuracy {scored.report.accuracy:.0%} (95 % CI {low:.0%}-{high:.0%}), macro-F1 "
            f"{scored.report.macro_f1:.3f}"
        )
        async with self.ctx.db.transaction() as conn:
            metrics = {
                "holdout": scored.metrics,
                "evaluation": result.describe(),
                "holdout_size": len(result.examples),
            }
            await registry.update_metrics(conn, candidate_id, metrics)
        evaluations = [EvaluatedModel(Role.CANDIDATE, candidate.model_id, scored)]
        self.emit(
            "evaluate",
            f"{result.describe()}: candidate macro-F1 {scored.report.macro_f1:.3f}, accuracy "
            f"{scored.report.accuracy:.1%} (95% CI {low:.1%}-{high:.1%})",
            1.0,
        )
        self.active_labels = (
            await self._labels_of(active_entry.id) if active_entry is not None else None
        )
        return evaluations, {}, active_entry.id if active_entry else None

    async def _labels_of(self, registry_id: int) -> tuple[str, ...] | None:
        try:
            async with self.ctx.db.transaction() as conn:
                artefact = await registry.get_artefact(conn, registry_id)
            model = await asyncio.to_thread(self.ctx.load_model, artefact)
        except Exception:
            log.warning("retrain %s: cannot load the active model", self.job.id, exc_info=True)
            return None
        return tuple(model.labels)

    def cross_validated_decision(self) -> PromotionDecision:
        """The gate without a shared holdout: the active model cannot be scored on the same
        tickets, so a candidate replaces it only when it routes to departments it cannot."""
        assert self.cross_validation is not None
        how = f"{self.cross_validation.describe()}: {self.cross_validated_score}"
        if not self.cross_validation.examples:
            return PromotionDecision(
                True,
                (
                    "there is no active model yet; the candidate could not be evaluated (no "
                    "held-out tickets, no example tickets in the taxonomy)",
                ),
            )
        if self.active_labels is None:
            return PromotionDecision(True, (f"there is no usable active model ({how})",))
        missing = [label for label in self.ctx.taxonomy.labels if label not in self.active_labels]
        removed = [label for label in self.active_labels if label not in self.ctx.taxonomy]
        if missing or removed:
            change = ", ".join(
                [*(f"+{label}" for label in missing), *(f"-{label}" for label in removed)]
            )
            return PromotionDecision(
                True, (f"the departments changed ({change}); evaluated by {how}",)
            )
        return PromotionDecision(
            False,
            (
                f"no held-out tickets to compare it with the active model on (evaluated by "
                f"{how}); activate it by hand if you want it",
            ),
        )

    def holdout_decision(
        self, holdout: Sequence[Example], candidate: HoldoutResult, active: HoldoutResult
    ) -> PromotionDecision:
        """The gate on the holdout: decided on the team's own held-out tickets, allowing for
        chance; the starter test set only guards against a broken model (see
        ``admin.promotion``)."""
        settings = self.ctx.settings
        team = [i for i, e in enumerate(holdout) if e.source is not Source.STARTER]
        starter = [i for i, e in enumerate(holdout) if e.source is Source.STARTER]
        labels = self.ctx.taxonomy.labels

        def part(result: HoldoutResult, rows: list[int]) -> HoldoutResult:
            return score_predicted(
                result.model_id,
                result.report.learner,
                [holdout[i] for i in rows],
                [result.predicted[i] for i in rows],
                labels,
            )

        failures: list[str] = []
        reasons: tuple[str, ...] = ()
        where = f"on {len(team)} of the team's held-out tickets"
        if team:
            noise = paired_noise(
                [holdout[i].label for i in team],
                [candidate.predicted[i] for i in team],
                [active.predicted[i] for i in team],
                seed=settings.seed,
            )
            on_team = decide_promotion(
                part(candidate, team).held_score(),
                part(active, team).held_score(),
                tolerance=settings.promote_tolerance,
                max_recall_drop=settings.max_recall_drop,
                min_lost_tickets=settings.recall_drop_min_tickets,
                noise=noise,
            )
            reasons = tuple(f"{where}: {r}" for r in on_team.reasons)
            if not on_team.promote:
                failures.extend(reasons)
        if starter:
            before = part(active, starter).report.macro_f1
            after = part(candidate, starter).report.macro_f1
            if after < before - STARTER_GUARD - 1e-12:
                failures.append(
                    f"macro-F1 on the starter test set would fall from {before:.3f} to "
                    f"{after:.3f} (more than the {STARTER_GUARD:.2f} a model may lose there "
                    "by learning the team's tickets)"
                )
            elif not team:
                reasons = (
                    "no team tickets held out yet; macro-F1 on the starter test set "
                    f"{before:.3f} → {after:.3f} (within the {STARTER_GUARD:.2f} it guards)",
                )
        if failures:
            return PromotionDecision(False, tuple(failures))
        return PromotionDecision(True, reasons)

    async def decide(
        self,
        data: TrainingData,
        candidate_id: int,
        candidate: TrainedModel,
        evaluations: list[EvaluatedModel],
        comparisons: dict[str, dict[str, Any]],
        active_id: int | None,
    ) -> RetrainOutcome:
        self.deciding = True
        await self.enter("decide")
        by_role = {e.role: e for e in evaluations}
        if self.cross_validation is not None:
            decision = self.cross_validated_decision()
        elif Role.ACTIVE in by_role:
            decision = self.holdout_decision(
                data.holdout, by_role[Role.CANDIDATE].result, by_role[Role.ACTIVE].result
            )
        else:
            decision = decide_promotion(
                by_role[Role.CANDIDATE].result.score,
                None,
                tolerance=self.ctx.settings.promote_tolerance,
                max_recall_drop=self.ctx.settings.max_recall_drop,
            )
        status = RetrainStatus.PROMOTED if decision.promote else RetrainStatus.KEPT
        message = decision.summary
        # One transaction: the activation, the job's end and the audit entry happen together,
        # so a crash can never leave a promoted model with a job that looks unfinished.
        async with self.ctx.db.transaction() as conn:
            current = await registry.get_active_model_id(conn)
            if self.request.dry_run:
                status = RetrainStatus.DRY_RUN
                verdict = "would be promoted" if decision.promote else "would not be promoted"
                message = f"Dry run: candidate #{candidate_id} {verdict} ({decision.summary})"
            elif current != active_id:
                # Someone activated another model while we evaluated: do not overrule them.
                status = RetrainStatus.KEPT
                message = (
                    "Kept the active model: it changed while the candidate was evaluated; "
                    f"compare again or activate #{candidate_id} by hand."
                )
                await registry.set_status(conn, candidate_id, registry.REJECTED)
            elif decision.promote:
                await registry.activate_model(conn, candidate_id)
            else:
                await registry.set_status(conn, candidate_id, registry.REJECTED)
            outcome = RetrainOutcome(
                job_id=self.job.id,
                status=status,
                message=message,
                learner=self.learner_name,
                candidate_id=candidate_id,
                previous_active_id=active_id,
                counts=data.counts(),
                evaluations=tuple(evaluations),
                comparisons=comparisons,
                decision=decision,
            )
            await jobs.finish_job(conn, self.job.id, jobs.SUCCEEDED, result=outcome.to_result())
            await record_action(
                conn,
                user=self.request.requested_by,
                action="retrain",
                outcome=status,
                detail={"job_id": self.job.id, "candidate_id": candidate_id, "message": message},
            )
        if status is RetrainStatus.PROMOTED and self.ctx.on_model_activated is not None:
            self.ctx.on_model_activated(candidate_id, candidate)
        self.emit("decide", message, 1.0)
        return outcome

    # Endings ---------------------------------------------------------------------------

    async def finish_cancelled(self) -> RetrainOutcome:
        remote_id = self.state.get("remote_job_id")
        if self.remote_learner is not None and isinstance(remote_id, str):
            try:
                await self.remote_learner.cancel(remote_id)
            except Exception:
                log.warning(
                    "retrain %s: could not cancel %s", self.job.id, remote_id, exc_info=True
                )
        candidate_id = self.state.get("candidate_id")
        async with self.ctx.db.transaction() as conn:
            if isinstance(candidate_id, int):
                await registry.set_status(conn, candidate_id, registry.REJECTED)
            message = "Cancelled; the active model is unchanged."
            await jobs.finish_job(
                conn,
                self.job.id,
                jobs.CANCELLED,
                result={"status": RetrainStatus.CANCELLED.value, "message": message},
            )
        await self.audit("cancelled", {})
        return RetrainOutcome(
            self.job.id, RetrainStatus.CANCELLED, message, learner=self.learner_name
        )

    async def finish_failed(self, exc: BaseException) -> RetrainOutcome:
        if isinstance(exc, AdminError | ClassifierError):
            message = str(exc)
        else:
            log.exception("retrain %s failed", self.job.id, exc_info=exc)
            message = "The retrain failed unexpectedly; the logs have the details."
        async with self.ctx.db.transaction() as conn:
            await jobs.finish_job(
                conn,
                self.job.id,
                jobs.FAILED,
                result={"status": RetrainStatus.FAILED.value, "message": message},
                error=repr(exc),
            )
        await self.audit("failed", {"message": message})
        return RetrainOutcome(self.job.id, RetrainStatus.FAILED, message, learner=self.learner_name)

    async def audit(self, outcome: str, detail: dict[str, Any]) -> None:
        async with self.ctx.db.transaction() as conn:
            await record_action(
                conn,
                user=self.request.requested_by,
                action="retrain",
                outcome=outcome,
                detail={"job_id": self.job.id, **self.request.to_params(), **detail},
            )


def _describe_counts(data: TrainingData) -> str:
    counts = data.counts()
    by_label = ", ".join(f"{k} {v}" for k, v in counts["by_label"].items())
    by_source = ", ".join(f"{k} {v}" for k, v in counts["by_source"].items())
    return (
        f"{counts['train']} training examples ({by_label}; from {by_source}); "
        f"{counts['holdout']} held out"
    )


def _describe_scores(evaluations: Sequence[EvaluatedModel]) -> str:
    return "; ".join(
        f"{e.role} macro-F1 {e.result.score.macro_f1:.3f}, accuracy {e.result.score.accuracy:.1%}"
        for e in evaluations
    )


__all__ = [
    "KIND",
    "EvaluatedModel",
    "RetrainOutcome",
    "RetrainRequest",
    "RetrainStatus",
    "Role",
    "StopReason",
    "cancel_retrain",
    "resume_orphaned_retrains",
    "retrain",
    "run_retrain",
    "start_retrain",
]
