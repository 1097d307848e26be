"""Ask where it helps: the triage threshold from how often the model is right at each confidence.

A fixed confidence threshold means something different for every model: one model is right
nine times in ten at 0.4, another only half the time at 0.6. ``adaptive_threshold`` fits how
often the model was right as a non-decreasing function of its confidence (isotonic regression
over the tickets people have seen: corrected = wrong, left alone = right) and returns the lowest
confidence at which a ticket is right at least ``target`` of the time. Tickets below it go to
the triage channel: they are the ones a person is most likely to have to fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Below this many outcomes the fit is too rough: the configured threshold stays.
MIN_OUTCOMES = 100
#: A ticket goes to a person when the model is right less often than this at its confidence.
TARGET = 0.75


def adaptive_threshold(
    outcomes: Sequence[tuple[float, bool]],
    *,
    fallback: float,
    target: float = TARGET,
    min_outcomes: int = MIN_OUTCOMES,
) -> float:
    """The triage threshold fitted on ``outcomes`` (confidence, was right), or ``fallback``
    when there are fewer than ``min_outcomes``."""
    if len(outcomes) < min_outcomes:
        return fallback
    from sklearn.isotonic import IsotonicRegression

    confidence = np.array([c for c, _ in outcomes], dtype=np.float64)
    right = np.array([1.0 if r else 0.0 for _, r in outcomes], dtype=np.float64)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    rate = fitted.fit_transform(confidence, right)
    good = confidence[rate >= target]
    if good.size == 0:
        return 1.0  # never right often enough: every ticket is worth a look
    return float(good.min())
