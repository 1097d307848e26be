"""What every learner and every trained model looks like from the outside.

``Classifier`` is what the bot and the evaluation use; ``TrainedModel`` is a classifier that
can also be stored (as bytes in the model registry); ``Learner`` builds one from examples.
Local learners, the prompted LLM and OpenAI fine-tunes all meet these protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from classifier.examples import Example
from classifier.json_value import JsonValue


@dataclass(frozen=True)
class Prediction:
    """A model's answer for one ticket.

    ``ranking`` holds every label the model scored, best first, with its probability; the
    first entry is (``label``, ``confidence``).
    """

    label: str
    confidence: float
    ranking: tuple[tuple[str, float], ...] = ()
    model_id: str = ""
    latency_ms: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def runner_ups(self) -> tuple[tuple[str, float], ...]:
        """The labels after the winner, best first."""
        return tuple(item for item in self.ranking if item[0] != self.label)


@dataclass(frozen=True)
class ProgressEvent:
    """One step of long work, for a progress bar or a Slack message.

    ``fraction`` is 0..1 when known; ``message`` is short and safe to show to a person.
    """

    stage: str
    message: str = ""
    fraction: float | None = None


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """A progress callback that ignores every event."""


@runtime_checkable
class Classifier(Protocol):
    """Anything that assigns departments to ticket texts."""

    @property
    def model_id(self) -> str:
        """A stable identifier: learner name plus a content hash, or the remote model name."""
        ...

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels this classifier can return (it never returns another)."""
        ...

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in order. CPU-bound models run off the event loop."""
        ...


@runtime_checkable
class TrainedModel(Classifier, Protocol):
    """A classifier that can be stored and loaded again (see ``classifier.artifacts``)."""

    @property
    def learner(self) -> str:
        """The name of the learner that built it."""
        ...

    def to_bytes(self) -> bytes:
        """A self-describing artefact in a safe format (no pickle)."""
        ...


class Learner(Protocol):
    """Builds a TrainedModel from labelled examples."""

    name: str
    description: str

    def available(self) -> bool:
        """Whether its optional dependencies are installed (no import side effects)."""
        ...

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> TrainedModel:
        """Train on ``examples`` over the label set ``labels``."""
        ...


@runtime_checkable
class WarmStartLearner(Protocol):
    """A learner that can reuse choices it made for the model it is about to replace.

    ``previous`` is that model's stored metadata (its artefact's header): the embedding learner
    reuses the configuration its selection chose while the data has not grown much, so the
    loop's frequent retrains cost a couple of fits instead of a search.
    """

    def warm_started(self, previous: Mapping[str, JsonValue]) -> Learner:
        """This learner, reusing what ``previous`` chose where it still applies."""
        ...


@runtime_checkable
class RemoteTrainingLearner(Protocol):
    """A learner whose training is a remote job that can be followed after a restart.

    The retrain job stores the id ``start`` returns before following it, so a restarted
    process follows the same job and never starts a second one.
    """

    async def start(self, examples: Sequence[Example], labels: Sequence[str], *, seed: int) -> str:
        """Create the remote job; returns its id (stored before anything else happens)."""
        ...

    async def follow(
        self, job_id: str, labels: Sequence[str], *, progress: ProgressCallback
    ) -> TrainedModel:
        """Wait for the remote job ``job_id`` to finish, reporting its status; the model."""
        ...

    async def cancel(self, job_id: str) -> None:
        """Stop the remote job (best effort)."""
        ...
