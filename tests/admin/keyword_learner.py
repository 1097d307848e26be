"""Small real learners for the admin tests (they implement the classifier protocols).

``KeywordLearner`` learns, per department, the words of its training tickets and predicts
the department sharing most words with a ticket: crude, deterministic, fast, and it does get
better with more (and corrected) data, which is what the retrain tests need.
``ConstantLearner`` answers one department for everything (a candidate that must lose).
``BlockingLearner`` trains only when told to (for cancel tests); ``RemoteJobLearner``
trains through a fake remote job that a restarted process can follow by id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from classifier.artifacts import load_model, pack, unpack
from classifier.examples import Example
from classifier.protocols import (
    Prediction,
    ProgressCallback,
    ProgressEvent,
    TrainedModel,
    no_progress,
)

_WORD = re.compile(r"[a-z0-9]+")
KIND = "test-keywords"


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


class KeywordModel:
    """Predicts the department whose training words overlap a ticket's words most."""

    def __init__(
        self, vocab: dict[str, dict[str, int]], labels: tuple[str, ...], name: str
    ) -> None:
        self._vocab = vocab
        self._labels = labels
        self._name = name

    @property
    def model_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self._vocab, sort_keys=True).encode()).hexdigest()
        return f"{self._name}-{digest[:10]}"

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def learner(self) -> str:
        return self._name

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        out = []
        for text in texts:
            words = _words(text)
            scores = {
                label: sum(self._vocab.get(label, {}).get(w, 0) for w in words) + 1e-3
                for label in self._labels
            }
            total = sum(scores.values())
            ranking = tuple(
                sorted(((k, v / total) for k, v in scores.items()), key=lambda kv: -kv[1])
            )
            out.append(Prediction(ranking[0][0], ranking[0][1], ranking, self.model_id))
        return out

    def to_bytes(self) -> bytes:
        meta = {"labels": list(self._labels), "name": self._name}
        return pack(KIND, meta, json.dumps(self._vocab).encode())


def load_keyword_model(data: bytes) -> TrainedModel:
    """The ModelLoader the tests inject."""
    artefact = unpack(data)
    assert artefact.kind == KIND
    return KeywordModel(
        json.loads(artefact.payload),
        tuple(artefact.meta["labels"]),
        artefact.meta["name"],
    )


def _fit(examples: Sequence[Example], labels: Sequence[str], name: str) -> KeywordModel:
    vocab: dict[str, Counter[str]] = {label: Counter() for label in labels}
    for example in examples:
        if example.label in vocab:
            vocab[example.label].update(_words(example.text))
    return KeywordModel({k: dict(v) for k, v in vocab.items()}, tuple(labels), name)


class KeywordLearner:
    name = "keywords"
    description = "word overlap (tests only)"

    def available(self) -> bool:
        return True

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> TrainedModel:
        progress(ProgressEvent("train", "counting words", 0.5))
        return _fit(examples, labels, self.name)


class ConstantLearner(KeywordLearner):
    """Always answers the first department: a worse candidate."""

    name = "constant"

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> TrainedModel:
        return KeywordModel({labels[0]: {}}, tuple(labels), self.name)


@dataclass
class BlockingLearner(KeywordLearner):
    """Starts training, then waits for ``release`` (cancel tests stop it meanwhile)."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = "blocking"

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> TrainedModel:
        self.started.set()
        await self.release.wait()
        return _fit(examples, labels, "keywords")


@dataclass
class FakeRemoteService:
    """Stands in for a remote fine-tuning API that outlives the process that called it."""

    jobs: dict[str, tuple[list[Example], list[str]]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    follows: list[str] = field(default_factory=list)
    _followed: asyncio.Event = field(default_factory=asyncio.Event)

    def follow_started(self, job_id: str) -> None:
        self.follows.append(job_id)
        self._followed.set()

    async def followed(self, times: int, within: float = 60.0) -> None:
        """Wait (bounded, in real time) until jobs were followed ``times`` times in all."""
        async with asyncio.timeout(within):
            while len(self.follows) < times:
                self._followed.clear()
                await self._followed.wait()


@dataclass
class RemoteJobLearner(KeywordLearner):
    """Trains through ``service``: start returns a job id, follow waits for it."""

    service: FakeRemoteService = field(default_factory=FakeRemoteService)
    name: str = "remote"

    async def start(self, examples: Sequence[Example], labels: Sequence[str], *, seed: int) -> str:
        job_id = f"ftjob-{len(self.service.jobs) + 1}"
        self.service.jobs[job_id] = (list(examples), list(labels))
        return job_id

    async def follow(
        self, job_id: str, labels: Sequence[str], *, progress: ProgressCallback
    ) -> TrainedModel:
        self.service.follow_started(job_id)
        progress(ProgressEvent("train", f"{job_id}: running", 0.5))
        await self.service.finished.wait()
        examples, labels = self.service.jobs[job_id]
        return _fit(examples, labels, "keywords")

    async def cancel(self, job_id: str) -> None:
        self.service.cancelled.append(job_id)


LOOKUP = "test-lookup"


class LookupModel:
    """Answers from a fixed table (hand-computed report cases); ``default`` otherwise."""

    def __init__(self, answers: dict[str, str], labels: tuple[str, ...], name: str) -> None:
        self._answers = answers
        self._labels = labels
        self._name = name

    @property
    def model_id(self) -> str:
        return self._name

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def learner(self) -> str:
        return "lookup"

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [
            Prediction(self._answers.get(t, self._labels[0]), 0.9, model_id=self._name)
            for t in texts
        ]

    def to_bytes(self) -> bytes:
        meta = {"labels": list(self._labels), "name": self._name}
        return pack(LOOKUP, meta, json.dumps(self._answers).encode())


def load_test_model(data: bytes) -> TrainedModel:
    """Loads either test model kind, and every kind the project writes."""
    artefact = unpack(data)
    if artefact.kind == LOOKUP:
        return LookupModel(
            json.loads(artefact.payload), tuple(artefact.meta["labels"]), artefact.meta["name"]
        )
    if artefact.kind == KIND:
        return load_keyword_model(data)
    return load_model(data)
