"""Learners and models for the admin jobs and the command line, built from the settings.

``learner_context`` is the one place a LearnerContext is assembled (the LLM client joins it
here); ``load_model_reference`` turns a path or remote model name into a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from admin.errors import AdminError
from admin.llm import openai_client
from admin.settings import Settings
from classifier.artifacts import load_model, unpack
from classifier.examples import Example, labels_of
from classifier.learners import (
    LEARNERS,
    LOCAL_PREFERENCE,
    FineTuneOptions,
    LearnerContext,
    default_learner_name,
    get_learner,
    learner_class,
)
from classifier.llm.finetune import fine_tuned_classifier
from classifier.protocols import Learner, TrainedModel
from classifier.taxonomy import Taxonomy
from classifier.taxonomy_learning import TaxonomyLearner, local_encoder

#: What each registered learner needs besides the base install.
LEARNER_NEEDS: dict[str, str] = {
    "tfidf": "nothing (scikit-learn only)",
    "embedding": "extra: embeddings",
    "openai": "key: OPENAI_API_KEY",
    "openai-finetune": "key: OPENAI_API_KEY, fine-tuning access",
}

#: Model references with this prefix name a remote OpenAI fine-tune, not a file.
REMOTE_FINETUNE_PREFIX = "ft:"


def learner_context(settings: Settings, taxonomy: Taxonomy | None = None) -> LearnerContext:
    """The context every learner is built with: taxonomy, seed, and the OpenAI client (None
    without OPENAI_API_KEY, so local learners never need a key)."""
    return LearnerContext(
        taxonomy=taxonomy,
        openai=openai_client(settings),
        seed=settings.seed,
        finetune=FineTuneOptions(poll_interval=settings.openai_finetune_poll_seconds),
        vector_cache=settings.vector_cache_dir,
    )


def taxonomy_learner(
    name: str,
    context: LearnerContext,
    taxonomy: Taxonomy,
    *,
    unlabelled: Sequence[str] = (),
) -> Learner:
    """The learner ``name``; a local one also learns from the taxonomy (descriptions,
    keywords, examples, and ``unlabelled`` tickets by self-training: see
    ``classifier.taxonomy_learning``). LLM learners read the taxonomy from ``context``."""
    resolved = default_learner_name() if name == "auto" else name
    learner = get_learner(resolved, replace(context, taxonomy=taxonomy))
    if resolved not in LOCAL_PREFERENCE:
        return learner
    return TaxonomyLearner(learner, taxonomy, unlabelled=unlabelled, encode=local_encoder(resolved))


def training_labels(examples: Sequence[Example], taxonomy: Taxonomy | None) -> tuple[str, ...]:
    """The taxonomy's departments when every label is one of them, else the data's labels."""
    if taxonomy is not None and all(e.label in taxonomy for e in examples):
        return taxonomy.labels
    return labels_of(examples)


def align_labels(examples: Sequence[Example], known: Sequence[str]) -> list[Example]:
    """Spell labels as ``known`` does when they differ only in case ("billing" -> "Billing")."""
    spelling = {label.casefold(): label for label in known}
    return [replace(e, label=spelling.get(e.label.casefold(), e.label)) for e in examples]


@dataclass(frozen=True)
class LearnerStatus:
    """What ``triage learners`` shows for one learner."""

    name: str
    installed: bool
    note: str
    needs: str


def learner_statuses(context: LearnerContext) -> list[LearnerStatus]:
    """Every registered learner, whether it can be used here, and if not why."""
    out: list[LearnerStatus] = []
    for name in LEARNERS:
        needs = LEARNER_NEEDS.get(name, "")
        try:
            learner = learner_class(name)(context)
        except ImportError:
            out.append(LearnerStatus(name, False, "not part of this build yet", needs))
            continue
        installed = bool(learner.available())
        note = "ready" if installed else str(learner.description)
        out.append(LearnerStatus(name, installed, note, needs))
    return out


def auto_learner_name() -> str:
    """The learner "auto" stands for on this machine."""
    return default_learner_name()


def remote_model(reference: str, context: LearnerContext) -> TrainedModel:
    """A remote fine-tuned model named ``ft:...``, queried with the configured departments."""
    if context.openai is None:
        raise AdminError(
            f"{reference!r} names an OpenAI fine-tune, which needs OPENAI_API_KEY (and "
            "OPENAI_BASE_URL for another provider); set them or pass a model file."
        )
    if context.taxonomy is None:
        raise AdminError(f"{reference!r} needs the department list (TRIAGE_TAXONOMY).")
    return fine_tuned_classifier(reference, context.taxonomy.labels, context)


@dataclass(frozen=True)
class LoadedModel:
    """A model and the training facts its artefact recorded."""

    model: TrainedModel
    n_train: int | None
    train_seconds: float | None


def load_model_reference(reference: str, context: LearnerContext) -> LoadedModel:
    """Open a model file (any kind this project writes) or a remote ``ft:`` model."""
    if reference.startswith(REMOTE_FINETUNE_PREFIX):
        return LoadedModel(remote_model(reference, context), None, None)
    path = Path(reference)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AdminError(f"{path}: no such model file.") from None
    except OSError as exc:
        raise AdminError(f"{path}: cannot be read ({exc.strerror}).") from None
    meta: dict[str, Any] = unpack(data).meta
    n_train = meta.get("n_train")
    seconds = meta.get("train_seconds")
    return LoadedModel(
        load_model(data, context),
        n_train if isinstance(n_train, int) else None,
        float(seconds) if isinstance(seconds, int | float) else None,
    )
