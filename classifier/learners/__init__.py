"""Learners by name, the context they are built with, and the default choice.

Each entry is imported lazily, so ``triage learners`` can say which are installed without
importing torch or contacting anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from classifier.errors import ClassifierError, LearnerUnavailableError
from classifier.protocols import Learner
from classifier.taxonomy import Taxonomy

if TYPE_CHECKING:  # the OpenAI SDK is imported only by the learners that use it
    from classifier.llm.client import OpenAIClient

#: name -> "module:class". The class is built with a LearnerContext.
LEARNERS: dict[str, str] = {
    "tfidf": "classifier.learners.tfidf:TfidfLearner",
    "embedding": "classifier.learners.embedding:EmbeddingLearner",
    "openai": "classifier.llm.prompted:PromptedLearner",
    "openai-finetune": "classifier.llm.finetune:FineTuneLearner",
}

#: Local learners, best first: "auto" picks the first one installed.
LOCAL_PREFERENCE: tuple[str, ...] = ("embedding", "tfidf")


@dataclass(frozen=True)
class FineTuneOptions:
    """How the openai-finetune learner runs its job."""

    #: The model to fine-tune; None: the client configuration's ``finetune_base_model``.
    base_model: str | None = None
    #: Part of the fine-tuned model's name.
    suffix: str = "triage"
    #: Seconds between two looks at the job.
    poll_interval: float = 15.0
    #: Seconds to follow the job before giving up (resumably); None: until it ends.
    max_wait: float | None = None


@dataclass(frozen=True)
class PromptedOptions:
    """How the prompted (openai) learner builds its classifier; None: the client's config."""

    model: str | None = None
    few_shot: int | None = None


@dataclass(frozen=True)
class LearnerContext:
    """What a learner may need besides examples.

    ``taxonomy`` gives LLM prompts their department descriptions; ``openai`` is the process's
    one LLM client, or None when no key is set; each LLM learner has its frozen options.
    """

    taxonomy: Taxonomy | None = None
    openai: OpenAIClient | None = None
    seed: int = 0
    #: A folder where the embedding learner keeps sentence vectors between retrains; None: none.
    vector_cache: Path | None = None
    finetune: FineTuneOptions = field(default_factory=FineTuneOptions)
    prompted: PromptedOptions = field(default_factory=PromptedOptions)


def learner_class(name: str) -> Callable[[LearnerContext], Learner]:
    """The learner class registered as ``name``."""
    target = LEARNERS.get(name)
    if target is None:
        raise ClassifierError(
            f"Unknown learner {name!r}; choose one of: auto, {', '.join(LEARNERS)}."
        )
    module_name, class_name = target.split(":")
    cls: Callable[[LearnerContext], Learner] = getattr(
        importlib.import_module(module_name), class_name
    )
    return cls


def get_learner(name: str, context: LearnerContext | None = None) -> Learner:
    """Build the learner called ``name`` ("auto" = the best local one installed)."""
    context = context or LearnerContext()
    if name == "auto":
        name = default_learner_name()
    learner: Learner = learner_class(name)(context)
    if not learner.available():
        raise LearnerUnavailableError(
            f"The {name!r} learner is not available: {learner.description}"
        )
    return learner


def default_learner_name() -> str:
    """The best local learner that is installed."""
    for name in LOCAL_PREFERENCE:
        if learner_class(name)(LearnerContext()).available():
            return name
    return LOCAL_PREFERENCE[-1]
