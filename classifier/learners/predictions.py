"""Turning a matrix of label probabilities into ``Prediction`` objects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from classifier.protocols import Prediction


def predictions_from_probabilities(
    probabilities: npt.NDArray[np.float64],
    labels: Sequence[str],
    *,
    model_id: str,
    latency_ms: float,
) -> list[Prediction]:
    """One Prediction per row: every label ranked by probability, best first.

    ``latency_ms`` is the time per text (a batch's time divided by its size).
    """
    out: list[Prediction] = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")
        ranking = tuple((labels[i], float(row[i])) for i in order)
        out.append(
            Prediction(
                label=ranking[0][0],
                confidence=ranking[0][1],
                ranking=ranking,
                model_id=model_id,
                latency_ms=latency_ms,
            )
        )
    return out


class ProbabilityPredictor:
    """``predict_sync`` and ``predict`` for a model that defines ``probabilities``.

    Subclasses set ``_labels`` and ``_model_id`` and implement ``probabilities(texts)``.
    """

    _labels: tuple[str, ...]
    _model_id: str

    @property
    def model_id(self) -> str:
        """The learner name plus a hash of the model's arrays."""
        return self._model_id

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels the model can return."""
        return self._labels

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Label probabilities, one row per text, columns in ``_labels`` order."""
        raise NotImplementedError

    def predict_sync(self, texts: Sequence[str]) -> list[Prediction]:
        """Predict on the calling thread (benchmarks and batch jobs)."""
        if not texts:
            return []
        start = time.perf_counter()
        probabilities = self.probabilities(texts)
        latency = (time.perf_counter() - start) * 1000 / len(texts)
        return predictions_from_probabilities(
            probabilities, self._labels, model_id=self._model_id, latency_ms=latency
        )

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Predict in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.predict_sync, list(texts))
