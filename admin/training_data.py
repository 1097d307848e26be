"""Assembling a retrain's data: training set and the fixed holdout, with counts and a hash.

Training set = starter train + generated + stored labelled tickets (the bot's own labels, then
human corrections, oldest first), one example per text, labelled as
``classifier.label_precedence.winning_examples`` says: a human label beats the bot's and the
latest human label wins. Holdout = the starter test set + the corrections whose ticket falls in
the fixed holdout (``data.db.training_set.is_holdout_ticket``). Nothing whose text is in the
holdout enters training, so every model is compared on tickets it never saw.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier.examples import Example, Source, deduplicate, normalise_text, read_examples
from classifier.label_precedence import winning_examples
from classifier.taxonomy import Taxonomy
from data.db.training_set import StoredExample


@dataclass(frozen=True)
class TrainingData:
    """What one retrain trains and evaluates on."""

    train: tuple[Example, ...]
    holdout: tuple[Example, ...]
    #: Examples dropped: unknown label, or text also in the holdout.
    dropped_unknown_label: int
    dropped_in_holdout: int

    @property
    def data_hash(self) -> str:
        """A hash of the training set's content (same data, same hash, in any order)."""
        return data_hash(self.train)

    @property
    def holdout_hash(self) -> str:
        """A hash of the holdout (two evaluations are comparable only if it matches)."""
        return data_hash(self.holdout)

    def counts(self) -> dict[str, Any]:
        """Training examples per department and per source, plus the holdout per department."""
        return {
            "train": len(self.train),
            "holdout": len(self.holdout),
            "by_label": dict(sorted(Counter(e.label for e in self.train).items())),
            "by_source": dict(sorted(Counter(e.source.value for e in self.train).items())),
            "holdout_by_label": dict(sorted(Counter(e.label for e in self.holdout).items())),
            "dropped_unknown_label": self.dropped_unknown_label,
            "dropped_in_holdout": self.dropped_in_holdout,
        }


def data_hash(examples: Iterable[Example]) -> str:
    """SHA-256 over the sorted (normalised text, label) pairs."""
    pairs = sorted({(normalise_text(e.text), e.label) for e in examples})
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode("utf-8")).hexdigest()


def _source(value: str) -> Source:
    try:
        return Source(value)
    except ValueError:
        return Source.IMPORTED


def read_starter(paths: Sequence[Path]) -> list[Example]:
    """The examples in ``paths`` that exist (a missing starter file is simply skipped)."""
    out: list[Example] = []
    for path in paths:
        if path.exists():
            out.extend(read_examples(path, Source.STARTER))
    return out


def assemble_training_data(
    taxonomy: Taxonomy,
    *,
    starter_train: Sequence[Example],
    starter_test: Sequence[Example],
    stored: Sequence[StoredExample],
    generated: Sequence[Example] = (),
) -> TrainingData:
    """Build the training set and the holdout (see the module docstring for the rules)."""
    unknown = 0

    def canonical(examples: Iterable[Example]) -> list[Example]:
        nonlocal unknown
        out: list[Example] = []
        for example in examples:
            # A label the taxonomy renamed (``renamed_from``) carries over to the new name.
            department = taxonomy.current(example.label)
            if department is None:
                unknown += 1
                continue
            out.append(Example(example.text, department.name, example.source))
        return out

    stored_examples = [(row, Example(row.text, row.label, _source(row.source))) for row in stored]
    held_rows = [example for row, example in stored_examples if row.holdout]
    holdout = deduplicate(canonical([*starter_test, *held_rows]))
    held_texts = {normalise_text(e.text) for e in holdout}

    candidates = [
        *starter_train,
        *generated,
        *(example for row, example in stored_examples if not row.holdout),
    ]
    train_all = winning_examples(canonical(candidates))
    train = [e for e in train_all if normalise_text(e.text) not in held_texts]
    return TrainingData(
        train=tuple(train),
        holdout=tuple(holdout),
        dropped_unknown_label=unknown,
        dropped_in_holdout=len(train_all) - len(train),
    )
