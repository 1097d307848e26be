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

**The team's tickets vote.** With sentence embeddings the index also holds the team's
confirmed tickets (routed to a department, nobody corrected them), and every ticket's model
probabilities are blended with a vote of its ``VOTE_NEIGHBOURS`` most similar labelled team
tickets, corrected or confirmed, at least ``VOTE_FLOOR`` similar (each weighted
``exp(similarity / VOTE_TEMPERATURE)``, shares summing to 1): ``(1 - w) * model + w * vote``
with ``w = VOTE_WEIGHT`` once ``VOTE_FULL_AT`` team tickets are indexed, less before
(``vote``, ``vote_weight``, ``blended``). A
model starts from starter data unlike the team's tickets, retrains only every so many
corrections, and never trains on the held-out fifth; the vote uses every labelled team ticket
from the moment it is labelled. Only corrections are near-duplicates (the card names them);
confirmed tickets only vote. Chosen with ``bench/loop_vote.py`` on traces of
``bench/loop.py --choosing-stream 1`` and ``2`` (never the benchmark's own stream or the test
split; bench/results/loop.md).
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
#: With the team's vote (below) a lower young threshold for embeddings costs (right first time
#: replayed on choosing streams 1 / 2: 92.4 / 93.2 % with 0.80 throughout, 90.8 / 90.7 % with
#: 0.65 while young; ``bench/loop_vote.py``), so the young one is the same.
EMBEDDING_YOUNG_THRESHOLD = 0.8
NGRAM_THRESHOLD = 0.75
NGRAM_YOUNG_THRESHOLD = 0.65
YOUNG_UNTIL = 100
#: Corrections kept in the index (the most recent ones), and as many confirmed tickets.
CAPACITY = 2_000
#: How many recent single texts keep their vectors (``NearDuplicateIndex._query_vectors``):
#: more than the tickets routed at once, so a ticket's second question finds its first's.
ASKED_CAPACITY = 64
#: The team's vote (embeddings only): how many labelled team tickets vote, how sharply the
#: more similar count more, and the vote's share of the blended probabilities.
VOTE_NEIGHBOURS = 5
VOTE_TEMPERATURE = 0.05
VOTE_WEIGHT = 0.6
#: Neighbours less similar than this do not vote (an unrelated ticket is no evidence), and the
#: vote's weight grows with the labelled tickets indexed, in full from ``VOTE_FULL_AT``: the
#: first correction alone must not pull every ticket to its department. Both cost at most 0.3
#: points right first time on the choosing streams (bench/results/loop.md).
VOTE_FLOOR = 0.3
VOTE_FULL_AT = 10
#: Hashed n-gram features: enough buckets that unrelated tickets rarely share one.
NGRAM_FEATURES = 2**18


@dataclass(frozen=True)
class CorrectedTicket:
    """A corrected ticket as the index needs it."""

    ticket_id: int
    text: str
    label: str
    corrected_by: str
    #: Labelled because nobody corrected where the bot routed it: it votes, but is never a
    #: near-duplicate match.
    confirmed: bool = False


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


def vote_weight_for(learner: str) -> float:
    """The team's vote's share of the blended probabilities next to ``learner``'s model: measured
    with sentence embeddings only, so none with n-grams."""
    return VOTE_WEIGHT if learner == "embedding" else 0.0


def embedding_vectors(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The shared MiniLM encoder's unit-length sentence embeddings."""
    from classifier.learners.encoder import shared_encoder

    return shared_encoder().encode(texts)


class NearDuplicateIndex:
    """The most recent corrections (and confirmed tickets) as unit vectors; thread-safe.

    ``add`` replaces a ticket's earlier entry (the latest human label wins) and ``remove``
    forgets a ticket whose correction was undone. Corrections and confirmed tickets each keep
    at most ``capacity`` entries (the newest).
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
        self._corrected: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        #: The last few single texts asked about and their vectors: a ticket is asked about
        #: twice (its vote, then whether it nearly repeats a correction), and with sentence
        #: embeddings each vectorising is an encoder pass.
        self._asked: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many corrections are indexed (confirmed tickets not counted)."""
        return self._corrections

    @property
    def _corrections(self) -> int:
        return sum(not ticket.confirmed for ticket, _ in self._entries.values())

    @property
    def threshold(self) -> float:
        """The similarity a match needs now (lower while few corrections are indexed)."""
        if self._young_threshold is not None and self._corrections < self._young_until:
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
            for confirmed in (False, True):
                kind = [k for k, (t, _) in self._entries.items() if t.confirmed == confirmed]
                for ticket_id in kind[: max(0, len(kind) - self._capacity)]:
                    del self._entries[ticket_id]
            self._matrix = None

    def ticket_ids(self) -> list[int]:
        """The corrected tickets indexed, oldest first (not the confirmed ones)."""
        with self._lock:
            return [k for k, (ticket, _) in self._entries.items() if not ticket.confirmed]

    def remove(self, ticket_id: int) -> None:
        """Forget ``ticket_id`` (its correction was undone)."""
        with self._lock:
            if self._entries.pop(ticket_id, None) is not None:
                self._matrix = None

    def _query_vectors(self, texts: Sequence[str]) -> Any:
        """``texts`` vectorised; a single text asked about recently is not vectorised again."""
        if len(texts) != 1:
            return self._vectorise(texts)
        (text,) = texts
        with self._lock:
            known = self._asked.get(text)
            if known is not None:
                self._asked.move_to_end(text)
                return known
        vectors = self._vectorise(texts)
        with self._lock:
            self._asked[text] = vectors
            while len(self._asked) > ASKED_CAPACITY:
                self._asked.popitem(last=False)
        return vectors

    def _snapshot(self) -> tuple[Any, list[CorrectedTicket], npt.NDArray[np.bool_]]:
        with self._lock:
            if self._matrix is None and self._entries:
                rows = [vector for _, vector in self._entries.values()]
                self._order = [ticket for ticket, _ in self._entries.values()]
                self._corrected = np.array([not t.confirmed for t in self._order], dtype=bool)
                stack = sparse.vstack if sparse.issparse(rows[0]) else np.vstack
                self._matrix = stack(rows)
            return self._matrix, self._order, self._corrected

    def _scores(
        self, texts: Sequence[str], exclude: Sequence[int | None]
    ) -> tuple[npt.NDArray[np.float64] | None, list[CorrectedTicket], npt.NDArray[np.bool_]]:
        """Each text's similarity to every indexed ticket (-inf for the one it excludes)."""
        matrix, order, corrected = self._snapshot()
        if matrix is None or not texts:
            return None, order, corrected
        product = self._query_vectors(texts) @ matrix.T
        scores = np.array(product.toarray() if sparse.issparse(product) else product, dtype=float)
        for row in range(len(texts)):
            skip = exclude[row] if row < len(exclude) else None
            if skip is not None:
                scores[row, [t.ticket_id == skip for t in order]] = -np.inf
        return scores, order, corrected

    def similarities(
        self, texts: Sequence[str], *, exclude: Sequence[int | None] = ()
    ) -> list[tuple[CorrectedTicket, float] | None]:
        """Each text's most similar corrected ticket and the similarity, whatever the threshold.

        ``exclude``: per text, a ticket id not to match (the ticket itself, when re-routed).
        """
        scores, order, corrected = self._scores(texts, exclude)
        if scores is None or not corrected.any():
            return [None] * len(texts)
        out: list[tuple[CorrectedTicket, float] | None] = []
        for text_scores in np.where(corrected, scores, -np.inf):
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

    def vote(
        self,
        texts: Sequence[str],
        *,
        neighbours: int = VOTE_NEIGHBOURS,
        temperature: float = VOTE_TEMPERATURE,
        floor: float = VOTE_FLOOR,
        exclude: Sequence[int | None] = (),
    ) -> list[dict[str, float]]:
        """Per text, the labels of its ``neighbours`` most similar indexed tickets (corrected or
        confirmed) at least ``floor`` similar, each weighted ``exp(similarity / temperature)``,
        as shares summing to 1 (empty when none is)."""
        scores, order, _ = self._scores(texts, exclude)
        if scores is None:
            return [{} for _ in texts]
        out: list[dict[str, float]] = []
        for text_scores in scores:
            top = np.argsort(-text_scores, kind="stable")[:neighbours]
            top = top[text_scores[top] >= floor - 1e-6]
            if not len(top):
                out.append({})
                continue
            weights = np.exp((text_scores[top] - text_scores[top].max()) / temperature)
            shares: dict[str, float] = {}
            for i, weight in zip(top, weights / weights.sum(), strict=True):
                shares[order[i].label] = shares.get(order[i].label, 0.0) + float(weight)
            out.append(shares)
        return out

    def vote_weight(self, weight: float, full_at: int = VOTE_FULL_AT) -> float:
        """``weight`` in full once ``full_at`` labelled tickets are indexed, in proportion
        before."""
        with self._lock:
            labelled = len(self._entries)
        return weight * min(1.0, labelled / max(1, full_at))


def blended(prediction: Prediction, vote: dict[str, float], weight: float) -> Prediction:
    """``prediction`` with its probabilities blended with the team's ``vote``:
    ``(1 - weight) * model + weight * vote`` per label (a label the model did not rank counts
    0 there). The label, confidence and ranking follow the blend; the model id stays."""
    if not vote or weight <= 0.0:
        return prediction
    model = dict(prediction.ranking) or {prediction.label: prediction.confidence}
    labels = list(dict.fromkeys([*model, *vote]))
    mixed = {
        label: (1.0 - weight) * model.get(label, 0.0) + weight * vote.get(label, 0.0)
        for label in labels
    }
    ranking = tuple(sorted(mixed.items(), key=lambda item: -item[1]))
    return Prediction(
        ranking[0][0],
        ranking[0][1],
        ranking,
        prediction.model_id,
        prediction.latency_ms,
        dict(prediction.usage),
    )


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
