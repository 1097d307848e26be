"""The taxonomy as training data: a model before any ticket is labelled, fading as tickets arrive.

A layer in front of any local learner, through the narrowest interface there is: it only adds
examples to what the learner trains on, so the learners themselves do not change.

* **Pseudo-examples.** Each department gives "Name: description", its description, its name
  (``Refund_not_showing_up`` read as "Refund not showing up"), its keywords as one text, and every
  ticket listed under ``examples``. The description, name and keyword texts of a department are
  left out once it has ``fade_at`` real examples: they are a prior, and real tickets replace it.
  The team's own ``examples`` are tickets and always stay.
* **Self-labelled tickets.** With an encoder and tickets the bot has already seen but nobody has
  labelled, each department's prototype (the mean embedding of its pseudo-examples and real
  examples) is refined on those tickets by a few rounds of soft k-means, each round pulled back
  towards the starting prototype; then the tickets nearest each prototype join the training set
  with that department's label (self-training). They fade the same way.

The settings were chosen on validation splits of the *training* data (3,000 held-out training
tickets of BANKING77, 1,795 of Bitext; the rest as the unlabelled pool; the embedding learner;
``bench/coldstart.py`` reports on the test splits). Accuracy, BANKING77 (Bitext):

* k = 0: cosine to "name: description" 68.5 % (86.9); pseudo-examples alone 63.8 % (86.4);
  plus 100 self-labelled tickets per department 73.0 % (1000: 73.2 %; Bitext 50: 91.3 %,
  1000: 93.0 %). Soft k-means alone, temperature 0.02, 3 rounds, anchor 5: 73.0 % (92.9).
* self-labelling helps while departments have few examples and hurts from 5: k = 1 69.8 ->
  75.0 %, k = 3 75.4 -> 76.6 %, k = 5 79.9 -> 77.8 % (Bitext 96.7 -> 97.8 %), k = 20 88.4 ->
  80.1 %. Hence ``self_label_below = 5``.
* the prior at k = 20: with it 88.4 %, real examples alone 88.6 % (Bitext 98.7 / 98.6 %): it no
  longer helps, so it fades out there (``fade_at = 20``). At k = 5 it is worth +3.5 points
  (79.9 against 76.4 %; Bitext 96.7 against 94.5 %).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from classifier.examples import Example, Source, normalise_text
from classifier.protocols import Learner, ProgressCallback, ProgressEvent, TrainedModel, no_progress
from classifier.taxonomy import Department, Taxonomy

#: Unit-length sentence embeddings, one row per text.
Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class TaxonomySettings:
    """How much the taxonomy counts (see the module docstring)."""

    #: A department's description, name and keyword texts are dropped once it has this many
    #: real examples.
    fade_at: int = 20
    #: Self-labelled tickets are added only to departments with fewer real examples than this.
    self_label_below: int = 5
    #: Unlabelled tickets given each department's label, nearest first.
    self_labelled_per_department: int = 100
    #: Soft k-means: softmax temperature over cosine similarities, rounds, and how strongly
    #: each round is pulled back to the starting prototype (in tickets' worth).
    temperature: float = 0.02
    rounds: int = 3
    anchor_weight: float = 5.0


DEFAULT_SETTINGS = TaxonomySettings()

_SEPARATORS = re.compile(r"[_\-/]+")


def readable_name(name: str) -> str:
    """A department name as words: "Refund_not_showing_up" -> "Refund not showing up"."""
    return " ".join(_SEPARATORS.sub(" ", name).replace("?", " ").split())


def prior_texts(department: Department) -> list[str]:
    """The texts a department's description, name and keywords give (the fading prior)."""
    name = readable_name(department.name)
    texts = [name]
    if department.description:
        texts[:0] = [f"{name}: {department.description}", department.description]
    if department.keywords:
        texts.append(", ".join(department.keywords))
    return texts


def taxonomy_examples(
    taxonomy: Taxonomy,
    real_counts: dict[str, int] | None = None,
    settings: TaxonomySettings = DEFAULT_SETTINGS,
) -> list[Example]:
    """The taxonomy's pseudo-examples; a department's prior is left out from ``fade_at`` real
    examples (``real_counts``: real examples per department name)."""
    counts = real_counts or {}
    out: list[Example] = []
    for dept in taxonomy:
        texts = list(dept.examples)
        if counts.get(dept.name, 0) < settings.fade_at:
            texts = prior_texts(dept) + texts
        out.extend(Example(text, dept.name, Source.TAXONOMY) for text in texts)
    return out


def _normalised(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: npt.NDArray[np.float64] = rows / np.where(norms > 0, norms, 1.0)
    return out


def refine_prototypes(
    start: npt.NDArray[np.float64],
    unlabelled: npt.NDArray[np.float32],
    settings: TaxonomySettings = DEFAULT_SETTINGS,
) -> npt.NDArray[np.float64]:
    """Soft k-means from ``start`` (one unit row per department) over unlabelled embeddings."""
    prototypes = start
    pool = unlabelled.astype(np.float64)
    for _ in range(settings.rounds):
        scores = pool @ prototypes.T
        weights = np.exp((scores - scores.max(axis=1, keepdims=True)) / settings.temperature)
        weights /= weights.sum(axis=1, keepdims=True)
        prototypes = _normalised(start * settings.anchor_weight + weights.T @ pool)
    return prototypes


def self_labelled(
    labelled: Sequence[Example],
    labels: Sequence[str],
    unlabelled: Sequence[str],
    encode: Encode,
    settings: TaxonomySettings = DEFAULT_SETTINGS,
    *,
    embeddings: npt.NDArray[np.float32] | None = None,
) -> list[Example]:
    """Unlabelled tickets labelled by their nearest refined department prototype.

    ``labelled`` (pseudo and real examples) gives the starting prototypes; only departments in
    ``labels`` that have some are used. ``embeddings`` of ``unlabelled`` may be given when the
    caller has them already (the benchmark caches them).
    """
    known = {normalise_text(e.text) for e in labelled}
    pool = [t for t in dict.fromkeys(unlabelled) if t.strip() and normalise_text(t) not in known]
    if not pool or not labelled:
        return []
    index = {label: i for i, label in enumerate(labels)}
    vectors = encode([e.text for e in labelled]).astype(np.float64)
    start = np.zeros((len(labels), vectors.shape[1]))
    for example, vector in zip(labelled, vectors, strict=True):
        start[index[example.label]] += vector
    present = np.flatnonzero(np.abs(start).sum(axis=1) > 0)
    if len(present) < 2:
        return []
    if embeddings is None or len(embeddings) != len(pool):
        embeddings = encode(pool)
    prototypes = refine_prototypes(_normalised(start[present]), embeddings, settings)
    scores = embeddings.astype(np.float64) @ prototypes.T
    nearest = scores.argmax(axis=1)
    best = scores.max(axis=1)
    out: list[Example] = []
    for column, row in enumerate(present):
        members = np.flatnonzero(nearest == column)
        chosen = members[np.argsort(-best[members], kind="stable")]
        label = labels[int(row)]
        out.extend(
            Example(pool[i], label, Source.TAXONOMY)
            for i in chosen[: settings.self_labelled_per_department]
        )
    return out


def with_taxonomy(
    examples: Sequence[Example],
    taxonomy: Taxonomy,
    *,
    unlabelled: Sequence[str] = (),
    encode: Encode | None = None,
    settings: TaxonomySettings = DEFAULT_SETTINGS,
    unlabelled_embeddings: npt.NDArray[np.float32] | None = None,
) -> list[Example]:
    """``examples`` plus the taxonomy's pseudo-examples and self-labelled tickets (see above).

    Examples whose label is not a department are passed through untouched (the learner names
    them). Self-labelled tickets are added for departments with fewer than
    ``self_label_below`` real examples, and only when ``encode`` and ``unlabelled`` are given.
    """
    real = list(examples)
    counts = Counter(e.label for e in real)
    pseudo = taxonomy_examples(taxonomy, dict(counts), settings)
    blended = [*pseudo, *real]
    wanting = [d for d in taxonomy.labels if counts.get(d, 0) < settings.self_label_below]
    if encode is not None and unlabelled and wanting:
        labels = taxonomy.labels
        found = [
            e
            for e in self_labelled(
                [e for e in blended if e.label in taxonomy],
                labels,
                unlabelled,
                encode,
                settings,
                embeddings=unlabelled_embeddings,
            )
            if counts.get(e.label, 0) < settings.self_label_below
        ]
        blended = [*found, *blended]
    return blended


class TaxonomyLearner:
    """A local learner that also learns from the taxonomy (``with_taxonomy``).

    Trains the wrapped learner's own model type, so the artefact loads as before.
    """

    def __init__(
        self,
        base: Learner,
        taxonomy: Taxonomy,
        *,
        unlabelled: Sequence[str] = (),
        encode: Encode | None = None,
        settings: TaxonomySettings = DEFAULT_SETTINGS,
    ) -> None:
        self._base = base
        self._taxonomy = taxonomy
        self._unlabelled = tuple(unlabelled)
        self._encode = encode
        self._settings = settings
        self.name = base.name
        self.description = base.description

    def available(self) -> bool:
        return self._base.available()

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> TrainedModel:
        """Train the wrapped learner on ``examples`` with the taxonomy's examples added."""
        progress(ProgressEvent("taxonomy", "adding the taxonomy's examples", 0.0))
        blended = await asyncio.to_thread(
            with_taxonomy,
            examples,
            self._taxonomy,
            unlabelled=self._unlabelled,
            encode=self._encode,
            settings=self._settings,
        )
        added = len(blended) - len(examples)
        progress(ProgressEvent("taxonomy", f"{added} examples from the taxonomy", 1.0))
        wanted = tuple(dict.fromkeys([*labels, *self._taxonomy.labels]))
        return await self._base.train(blended, wanted, seed=seed, progress=progress)


def encoder_for(learner: object) -> Encode | None:
    """The encoder to self-label with when training ``learner``: the embedding learner's own
    (so no other learner ever loads it), else None."""
    if type(learner).__module__ != "classifier.learners.embedding":
        return None
    return local_encoder("embedding")


def local_encoder(learner_name: str) -> Encode | None:
    """The sentence encoder the taxonomy layer uses with ``learner_name``, or None.

    Only the embedding learner has one; it is loaded on first use (it is the process's shared
    encoder, so the learner and this layer load it once between them).
    """
    if learner_name != "embedding":
        return None
    from classifier.learners import encoder

    def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return encoder.shared_encoder().encode(texts)

    return encode
