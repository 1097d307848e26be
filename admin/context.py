"""What the admin jobs need, in one frozen object the bot or the terminal builds once.

Everything external is injected here (learners, model loading, the prompted baseline, the
synthetic data generator, the in-process hot swap), so tests pass real small implementations
instead of patching, and the jobs never import Slack.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from admin.llm_jobs import SyntheticGenerator, prompted_baseline, synthetic_generator
from admin.settings import Settings
from admin.training_process import ChildTraining, train_in_subprocess
from classifier.artifacts import load_model
from classifier.examples import Example
from classifier.learners import LearnerContext, get_learner
from classifier.protocols import Classifier, Learner, ProgressCallback, TrainedModel
from classifier.taxonomy import Taxonomy
from data import STARTER_TEST, STARTER_TRAIN
from data.clock import Clock, SystemClock
from data.db.database import Database

#: Builds a learner by name ("tfidf", "openai-finetune", ...).
LearnerFactory = Callable[[str], Learner]
#: Loads a model artefact from the registry.
ModelLoader = Callable[[bytes], TrainedModel]
#: Called after a model becomes active in this process (the bot swaps it in at once).
ModelActivated = Callable[[int, TrainedModel], None]
#: Trains a local learner outside this process; returns the artefact (see training_process).
#: Arguments: learner, examples, labels, seed, progress, holdout, active artefact (or None),
#: and the tickets to self-label when the child is to blend the taxonomy in (or None).
OutOfProcessTrainer = Callable[
    [
        str,
        Sequence[Example],
        Sequence[str],
        int,
        ProgressCallback,
        Sequence[Example],
        bytes | None,
        Sequence[str] | None,
    ],
    Awaitable[ChildTraining],
]


def process_identity() -> str:
    """A name for this process, unique across restarts (the owner of the jobs it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class AdminContext:
    """Dependencies of the admin jobs."""

    db: Database
    settings: Settings
    taxonomy: Taxonomy
    learners: LearnerFactory
    load_model: ModelLoader
    #: The prompted LLM classifier to compare against, or None (no key configured).
    baseline: Callable[[], Classifier | None] = lambda: None
    generate: SyntheticGenerator | None = None
    on_model_activated: ModelActivated | None = None
    #: When set, local learners train through it (a child process) instead of in this one.
    train_out_of_process: OutOfProcessTrainer | None = None
    starter_train: tuple[Path, ...] = (STARTER_TRAIN,)
    starter_test: tuple[Path, ...] = (STARTER_TEST,)
    owner: str = field(default_factory=process_identity)
    #: How often a running job renews its lease and looks for a cancel request.
    poll_seconds: float = 1.0
    #: Job leases are stamped and checked, and jobs wait, on this clock.
    clock: Clock = field(default_factory=SystemClock)


def build_admin_context(
    settings: Settings,
    db: Database,
    taxonomy: Taxonomy,
    learner_context: LearnerContext,
    *,
    on_model_activated: ModelActivated | None = None,
    baseline: Callable[[], Classifier | None] | None = None,
    generate: SyntheticGenerator | None = None,
    clock: Clock | None = None,
) -> AdminContext:
    """The production wiring: learners and model loading from ``classifier``."""

    def learners(name: str) -> Learner:
        return get_learner(name, learner_context)

    def load(data: bytes) -> TrainedModel:
        return load_model(data, learner_context)

    async def train_elsewhere(
        name: str,
        examples: Sequence[Example],
        labels: Sequence[str],
        seed: int,
        progress: ProgressCallback,
        holdout: Sequence[Example],
        active_artefact: bytes | None,
        blend: Sequence[str] | None,
    ) -> ChildTraining:
        return await train_in_subprocess(
            name,
            settings.taxonomy,
            examples,
            labels,
            seed=seed,
            progress=progress,
            holdout=holdout,
            active_artefact=active_artefact,
            vector_cache=settings.vector_cache_dir,
            blend=blend,
        )

    return AdminContext(
        db=db,
        settings=settings,
        taxonomy=taxonomy,
        learners=learners,
        load_model=load,
        baseline=baseline or (lambda: prompted_baseline(learner_context, taxonomy)),
        generate=generate or synthetic_generator(learner_context, taxonomy),
        on_model_activated=on_model_activated,
        train_out_of_process=train_elsewhere,
        poll_seconds=min(1.0, settings.job_lease_seconds / 5),
        clock=clock or SystemClock(),
    )
