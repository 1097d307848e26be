"""Checks every local learner runs before training: enough data, enough labels.

The rule: each label that appears in the data needs at least two examples, and there must be at
least two such labels. Labels of the requested label set that have no examples at all are left
out of the model (it cannot learn them) and named in ``TrainingSet.missing``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from classifier.errors import TrainingError
from classifier.examples import Example

MIN_EXAMPLES_PER_LABEL = 2


@dataclass(frozen=True)
class TrainingSet:
    """Examples turned into what a learner fits: texts, label indices, the label order."""

    texts: list[str]
    targets: npt.NDArray[np.int64]
    labels: tuple[str, ...]
    missing: tuple[str, ...]


def _listed(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def prepare_training_set(examples: Sequence[Example], labels: Sequence[str]) -> TrainingSet:
    """Validate ``examples`` against ``labels``; raises TrainingError with a one-line reason."""
    if not examples:
        raise TrainingError("There are no training examples; give at least two per label.")
    wanted = tuple(dict.fromkeys(labels)) or tuple(sorted({e.label for e in examples}))
    counts = Counter(e.label for e in examples)
    unknown = sorted(set(counts) - set(wanted))
    if unknown:
        raise TrainingError(
            f"The training data has labels outside the label set: {_listed(unknown)}."
        )
    present = tuple(label for label in wanted if counts[label] > 0)
    if len(present) < 2:
        only = present[0] if present else "none"
        raise TrainingError(
            f"The training data has only one label ({only!r}); a classifier needs at least two."
        )
    too_few = [label for label in present if counts[label] < MIN_EXAMPLES_PER_LABEL]
    if too_few:
        raise TrainingError(
            f"Each label needs at least {MIN_EXAMPLES_PER_LABEL} examples; too few for "
            f"{_listed(too_few)}."
        )
    index = {label: i for i, label in enumerate(present)}
    return TrainingSet(
        texts=[e.text for e in examples],
        targets=np.fromiter((index[e.label] for e in examples), dtype=np.int64),
        labels=present,
        missing=tuple(label for label in wanted if counts[label] == 0),
    )
