"""Turning a matrix of label probabilities into ``Prediction`` objects."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from classifier.model import Prediction


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
