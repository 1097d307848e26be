"""What a retrain gives each learner when the taxonomy is training data too, and how it is
evaluated when there is no holdout.

* Local learners train on the stored and starter examples plus the taxonomy's pseudo-examples
  (``classifier.taxonomy_learning``), over every department, so a model exists before any
  ticket is labelled and a new department is routable at once. The embedding learner also
  self-labels the latest tickets the bot has seen (``UNLABELLED_TICKETS``, none from the
  holdout) for departments with fewer than five examples.
* The prompted LLM needs no data: it gets every department and the team's example tickets (the
  taxonomy's ``examples``) as its few-shot pool.
* A fine-tune learns only from real examples, over the departments that have some.

Without a holdout (no starter test tickets for these departments, nothing imported or corrected
held out yet), ``cross_validate`` scores a learner by k-fold cross-validation over the real
examples and the taxonomy's example tickets: each fold is predicted by a model trained without
it (the prior from descriptions and keywords stays, as it would in production).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from classifier.examples import Example, Source, normalise_text
from classifier.learners import LOCAL_PREFERENCE
from classifier.protocols import Learner
from classifier.taxonomy import Taxonomy
from classifier.taxonomy_learning import Encode, encoder_for, with_taxonomy
from data.db.database import Database
from data.db.training_set import recent_ticket_texts

#: Learners that read the taxonomy through their prompt rather than as examples.
PROMPTED = frozenset({"openai"})
#: How many of the latest tickets a retrain may self-label (encoding them is the cost).
UNLABELLED_TICKETS = 2_000
#: Most folds a cross-validation uses (fewer when departments have fewer examples).
MAX_FOLDS = 5


@dataclass(frozen=True)
class LearnerInput:
    """The examples and labels one learner trains on."""

    examples: list[Example]
    labels: tuple[str, ...]


def is_local(learner_name: str) -> bool:
    """Whether ``learner_name`` trains on this machine (and so learns from the taxonomy)."""
    return learner_name in ("auto", *LOCAL_PREFERENCE)


def team_examples(taxonomy: Taxonomy) -> list[Example]:
    """The example tickets listed in the taxonomy, labelled with their department."""
    return [
        Example(text, dept.name, Source.TAXONOMY) for dept in taxonomy for text in dept.examples
    ]


def learner_input(
    learner_name: str,
    train: Sequence[Example],
    taxonomy: Taxonomy,
    *,
    unlabelled: Sequence[str] = (),
    encode: Encode | None = None,
) -> LearnerInput:
    """What ``learner_name`` trains on (see the module docstring); a local learner with an
    encoder also gets ``unlabelled`` tickets self-labelled for departments with few examples."""
    if is_local(learner_name):
        blended = with_taxonomy(train, taxonomy, unlabelled=unlabelled, encode=encode)
        return LearnerInput(blended, taxonomy.labels)
    if learner_name in PROMPTED:
        return LearnerInput([*train, *team_examples(taxonomy)], taxonomy.labels)
    present = {e.label for e in train}
    return LearnerInput(list(train), tuple(label for label in taxonomy.labels if label in present))


async def learner_input_with_tickets(
    db: Database,
    learner: Learner,
    learner_name: str,
    train: Sequence[Example],
    taxonomy: Taxonomy,
    holdout: Sequence[Example] = (),
) -> LearnerInput:
    """``learner_input`` plus, for the embedding learner, the latest tickets outside the holdout
    to self-label (encoding runs in a worker thread)."""
    encode = encoder_for(learner) if is_local(learner_name) else None
    unlabelled = await unlabelled_tickets(db, holdout) if encode is not None else []
    return await asyncio.to_thread(
        partial(learner_input, learner_name, train, taxonomy, unlabelled=unlabelled, encode=encode)
    )


async def unlabelled_tickets(db: Database, holdout: Sequence[Example] = ()) -> list[str]:
    """The latest tickets the bot has seen, outside the holdout: what a local learner with an
    encoder self-labels (``learner_input``)."""
    async with db.transaction() as conn:
        texts = await recent_ticket_texts(conn, UNLABELLED_TICKETS)
    held = {normalise_text(e.text) for e in holdout}
    return [t for t in texts if normalise_text(t) not in held]


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold predictions for every evaluated example."""

    examples: tuple[Example, ...]
    predicted: tuple[str, ...]
    folds: int

    def describe(self) -> str:
        """How the figures were obtained, for reports and the gate's message."""
        return f"{self.folds}-fold cross-validation on {len(self.examples)} tickets"


def folds_for(examples: Sequence[Example]) -> list[int]:
    """A fold number for each example: each department's examples dealt round-robin."""
    counts = Counter(e.label for e in examples)
    folds = min(MAX_FOLDS, max(counts.values(), default=0))
    seen: Counter[str] = Counter()
    out: list[int] = []
    for example in examples:
        out.append(seen[example.label] % max(folds, 1))
        seen[example.label] += 1
    return out


async def cross_validate(
    learner: Learner,
    learner_name: str,
    train: Sequence[Example],
    taxonomy: Taxonomy,
    *,
    seed: int = 0,
) -> CrossValidation | None:
    """Score ``learner`` by cross-validation (see the module docstring); None when there are
    fewer than two examples to hold out in turn."""
    pool = [*team_examples(taxonomy), *train]
    seen: set[str] = set()
    evaluated: list[Example] = []
    for example in pool:
        key = normalise_text(example.text)
        if key not in seen and example.label in taxonomy:
            seen.add(key)
            evaluated.append(example)
    fold_of = folds_for(evaluated)
    folds = max(fold_of, default=-1) + 1
    if folds < 2:
        return None
    predicted: list[str] = [""] * len(evaluated)
    for fold in range(folds):
        held = [i for i, f in enumerate(fold_of) if f == fold]
        held_texts = {normalise_text(evaluated[i].text) for i in held}
        rest = [e for e in train if normalise_text(e.text) not in held_texts]
        given = learner_input(learner_name, rest, taxonomy)
        examples = [e for e in given.examples if normalise_text(e.text) not in held_texts]
        model = await learner.train(examples, given.labels, seed=seed)
        predictions = await model.predict([evaluated[i].text for i in held])
        for i, prediction in zip(held, predictions, strict=True):
            predicted[i] = prediction.label
    return CrossValidation(tuple(evaluated), tuple(predicted), folds)


__all__ = [
    "CrossValidation",
    "LearnerInput",
    "cross_validate",
    "folds_for",
    "is_local",
    "learner_input",
    "team_examples",
]
