"""Corrections count at once: a ticket very like a recently corrected one takes its label.

Before any retrain, the bot keeps the recent corrections in an index of unit vectors. A new
ticket whose nearest corrected ticket is at least ``threshold`` similar (cosine) is routed to
that ticket's human label, and the card says so ("like #123, corrected by @Bob"). The same
customer asking again, or ten people reporting one outage, are then routed right from the
second ticket on, not from the next retrain.

Vectors come from the features the local model uses: the MiniLM sentence encoder when it is
installed (``embedding_vectors``), else hashed character n-grams (``ngram_vectors``, the light
learner's kind of feature; stateless, so adding a correction never refits anything). The
thresholds were chosen with ``bench/loop.py --choose-threshold`` on a validation split of
BANKING77's training data, never on the test split the benchmark reports.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import sparse

from classifier.protocols import Prediction

#: Turns texts into unit-length rows, one per text: a dense array or a sparse CSR matrix.
Vectoriser: TypeAlias = Callable[[Sequence[str]], npt.NDArray[np.float32] | sparse.csr_matrix]

#: Cosine similarity from which a corrected ticket's label is taken, per kind of vector, and
#: the lower one used while fewer than ``YOUNG_UNTIL`` corrections are indexed (a young model
#: is wrong often, so a fairly similar correction is the better guess). Chosen with
#: ``bench/loop.py --choose-threshold`` on a validation slice of BANKING77's training split:
#: each is never below "no near-duplicate routing" at any point of the curve, and the young
#: ones gain 3-5 points at 25-100 corrections (see bench/results/loop.md).
EMBEDDING_THRESHOLD = 0.8
EMBEDDING_YOUNG_THRESHOLD = 0.65
NGRAM_THRESHOLD = 0.75
NGRAM_YOUNG_THRESHOLD = 0.65
YOUNG_UNTIL = 100
#: Corrections kept in the index (the most recent ones).
CAPACITY = 2_000
#: Hashed n-gram features: enough buckets that unrelated tickets rarely share one.
NGRAM_FEATURES = 2**18


@dataclass(frozen=True)
class CorrectedTicket:
    """A corrected ticket as the index needs it."""

    ticket_id: int
    text: str
    label: str
    corrected_by: str


@dataclass(frozen=True)
class NearDuplicate:
    """The corrected ticket a new ticket is routed by, and how similar they are."""

    ticket_id: int
    label: str
    corrected_by: str
    similarity: float


def ngram_vectors(texts: Sequence[str]) -> sparse.csr_matrix:
    """Hashed character 3-5-grams within word boundaries, unit length (no fitting), sparse."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectoriser = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(3, 5),
        lowercase=True,
        n_features=NGRAM_FEATURES,
        alternate_sign=False,
        norm="l2",
    )
    return sparse.csr_matrix(vectoriser.transform(list(texts)), dtype=np.float32)


def embedding_vectors(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The shared MiniLM encoder's unit-length sentence embeddings."""
    from classifier.learners.encoder import shared_encoder

    return shared_encoder().encode(texts)


class NearDuplicateIndex:
    """The most recent corrections as unit vectors; thread-safe.

    ``add`` replaces a ticket's earlier entry (the latest human label wins) and ``remove``
    forgets a ticket whose correction was undone.
    """

    def __init__(
        self,
        vectorise: Vectoriser,
        *,
        threshold: float,
        capacity: int = CAPACITY,
        young_threshold: float | None = None,
        young_until: int = YOUNG_UNTIL,
    ) -> None:
        for value in (threshold, young_threshold or threshold):
            if not 0.0 < value <= 1.0:
                raise ValueError("threshold must be in (0, 1]")
        self._threshold = threshold
        self._young_threshold = young_threshold
        self._young_until = young_until
        self._vectorise = vectorise
        self._capacity = capacity
        self._entries: OrderedDict[int, tuple[CorrectedTicket, Any]] = OrderedDict()
        self._matrix: Any = None
        self._order: list[CorrectedTicket] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def threshold(self) -> float:
        """The similarity a match needs now (lower while few corrections are indexed)."""
        if self._young_threshold is not None and len(self._entries) < self._young_until:
            return self._young_threshold
        return self._threshold

    def add(self, tickets: Sequence[CorrectedTicket]) -> None:
        """Index ``tickets`` (newest last), dropping the oldest beyond the capacity."""
        with self._lock:
            tickets = [
                t
                for t in tickets
                if (entry := self._entries.get(t.ticket_id)) is None or entry[0] != t
            ]
        if not tickets:
            return
        vectors = self._vectorise([t.text for t in tickets])
        with self._lock:
            for row, ticket in enumerate(tickets):
                self._entries.pop(ticket.ticket_id, None)
                self._entries[ticket.ticket_id] = (ticket, vectors[row : row + 1])
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
            self._matrix = None

    def ticket_ids(self) -> list[int]:
        """The tickets indexed, oldest first."""
        with self._lock:
            return list(self._entries)

    def remove(self, ticket_id: int) -> None:
        """Forget ``ticket_id`` (its correction was undone)."""
        with self._lock:
            if self._entries.pop(ticket_id, None) is not None:
                self._matrix = None

    def _snapshot(self) -> tuple[Any, list[CorrectedTicket]]:
        with self._lock:
            if self._matrix is None and self._entries:
                rows = [vector for _, vector in self._entries.values()]
                self._order = [ticket for ticket, _ in self._entries.values()]
                stack = sparse.vstack if sparse.issparse(rows[0]) else np.vstack
                self._matrix = stack(rows)
            return self._matrix, self._order

    def similarities(
        self, texts: Sequence[str], *, exclude: Sequence[int | None] = ()
    ) -> list[tuple[CorrectedTicket, float] | None]:
        """Each text's most similar indexed ticket and the similarity, whatever the threshold.

        ``exclude``: per text, a ticket id not to match (the ticket itself, when re-routed).
        """
        matrix, order = self._snapshot()
        if matrix is None or not texts:
            return [None] * len(texts)
        product = self._vectorise(texts) @ matrix.T
        scores = np.asarray(product.toarray() if sparse.issparse(product) else product)
        out: list[tuple[CorrectedTicket, float] | None] = []
        for row, text_scores in enumerate(scores):
            skip = exclude[row] if row < len(exclude) else None
            if skip is not None:
                text_scores = np.where([t.ticket_id == skip for t in order], -np.inf, text_scores)
            best = int(np.argmax(text_scores))
            similarity = float(text_scores[best])
            out.append(None if similarity == -np.inf else (order[best], similarity))
        return out

    def nearest(
        self, texts: Sequence[str], *, exclude: Sequence[int | None] = ()
    ) -> list[NearDuplicate | None]:
        """Per text, the corrected ticket it is a near-duplicate of (at the threshold), or None."""
        out: list[NearDuplicate | None] = []
        threshold = self.threshold
        for found in self.similarities(texts, exclude=exclude):
            if found is None or found[1] < threshold - 1e-6:
                out.append(None)
                continue
            ticket, similarity = found
            out.append(
                NearDuplicate(ticket.ticket_id, ticket.label, ticket.corrected_by, similarity)
            )
        return out


#: The model id of a prediction taken from a near-duplicate's correction: ``like:123:U0BOB``.
LIKE_PREFIX = "like:"


def routed_by_correction(prediction: Prediction, match: NearDuplicate) -> Prediction:
    """``prediction`` replaced by the correction of ``match``: its label, the similarity as the
    confidence, the model's other labels as runner-ups, and a model id naming the ticket."""
    others = tuple(item for item in prediction.ranking if item[0] != match.label)
    ranking = ((match.label, match.similarity), *others)
    return Prediction(
        match.label,
        match.similarity,
        ranking,
        f"{LIKE_PREFIX}{match.ticket_id}:{match.corrected_by}",
        prediction.latency_ms,
        dict(prediction.usage),
    )


def near_duplicate_of(model_id: str) -> tuple[int, str] | None:
    """(ticket id, who corrected it) when ``model_id`` says a near-duplicate decided, else None."""
    if not model_id.startswith(LIKE_PREFIX):
        return None
    ticket, _, user = model_id[len(LIKE_PREFIX) :].partition(":")
    return (int(ticket), user) if ticket.isdigit() else None
