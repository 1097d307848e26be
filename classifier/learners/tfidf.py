"""The light local learner: TF-IDF word and character n-grams with a calibrated linear SVM.

Needs only scikit-learn. Word 1-2-grams catch phrases ("charged twice"); character 2-5-grams
inside word boundaries catch typos and word forms ("refnd", "refunded"). The artefact stores
vocabularies, idf weights, SVM weights and the softmax temperature as ``.npz`` arrays.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import TfidfVectorizer

from classifier.artifacts import pack
from classifier.errors import ModelFormatError, TrainingError
from classifier.examples import Example
from classifier.json_value import JsonObject, JsonValue, json_field, json_int, json_strings
from classifier.learners import LearnerContext
from classifier.learners.arrays import (
    Arrays,
    content_hash,
    decode_strings,
    encode_strings,
    load_arrays,
    save_arrays,
)
from classifier.learners.linear_head import LinearHead, fit_linear_head
from classifier.learners.predictions import ProbabilityPredictor
from classifier.learners.training_data import prepare_training_set
from classifier.protocols import ProgressCallback, ProgressEvent, no_progress

NAME = "tfidf"

#: Words are runs of letters/digits, single characters included ("2 charges", "a PIN").
_WORD_PATTERN = r"(?u)\b\w+\b"


@dataclass(frozen=True)
class FeatureSettings:
    """How texts become TF-IDF vectors; stored in the artefact so old models load as built."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    #: Longer texts are cut here before featurising: it bounds latency for 40,000-char tickets.
    max_chars: int = 10_000

    def to_meta(self) -> JsonObject:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_meta(cls, meta: JsonValue) -> FeatureSettings:
        try:
            return cls(
                word_ngrams=_int_pair(json_field(meta, "word_ngrams")),
                char_ngrams=_int_pair(json_field(meta, "char_ngrams")),
                max_chars=json_int(json_field(meta, "max_chars")),
            )
        except (KeyError, TypeError, ValueError, IndexError):
            raise ModelFormatError("The model file's feature settings are corrupt.") from None


def _int_pair(value: JsonValue) -> tuple[int, int]:
    """An n-gram range as stored: a list of two integers (IndexError when shorter)."""
    if not isinstance(value, list):
        raise TypeError(f"expected a list, not {type(value).__name__}")
    return json_int(value[0]), json_int(value[1])


def _word_vectorizer(settings: FeatureSettings, **kwargs: Any) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="word",
        token_pattern=_WORD_PATTERN,
        ngram_range=settings.word_ngrams,
        sublinear_tf=True,
        dtype=np.float32,
        **kwargs,
    )


def _char_vectorizer(settings: FeatureSettings, **kwargs: Any) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=settings.char_ngrams,
        sublinear_tf=True,
        dtype=np.float32,
        **kwargs,
    )


def _rebuilt(vectorizer: TfidfVectorizer, idf: npt.NDArray[np.float64]) -> TfidfVectorizer:
    vectorizer.idf_ = idf  # the setter validates the fixed vocabulary and builds the transformer
    return vectorizer


class _Weighting:
    """One fitted vectorizer's analyser, vocabulary and idf, applied without scikit-learn.

    Gives what ``TfidfVectorizer.transform`` gives for ``sublinear_tf=True, norm="l2"``: counts
    n become (1 + ln n) * idf, then the row is scaled to unit length. Its per-call checks and
    sparse-matrix steps cost about 0.6 ms a vectorizer on one ticket; this costs about 0.05.
    """

    def __init__(self, vectorizer: TfidfVectorizer, offset: int) -> None:
        self.analyze: Callable[[str], list[str]] = vectorizer.build_analyzer()
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        self.offset = offset

    def row(self, text: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(column indices, weights) of one text's non-zero features."""
        vocabulary = self.vocabulary
        found = [
            (vocabulary[term], count)
            for term, count in Counter(self.analyze(text)).items()
            if term in vocabulary
        ]
        if not found:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        pairs = np.array(found, dtype=np.int64)
        columns = pairs[:, 0]
        weights = (1.0 + np.log(pairs[:, 1])) * self.idf[columns]
        return columns + self.offset, weights / np.sqrt(weights @ weights)


class TextFeatures:
    """Fitted word and character TF-IDF vectorizers, side by side."""

    def __init__(
        self, word: TfidfVectorizer, char: TfidfVectorizer, settings: FeatureSettings
    ) -> None:
        self._word = word
        self._char = char
        self.settings = settings
        self._parts = (_Weighting(word, 0), _Weighting(char, len(word.vocabulary_)))

    @classmethod
    def fit(cls, texts: Sequence[str], settings: FeatureSettings) -> TextFeatures:
        """Learn vocabularies and idf weights from ``texts``."""
        cut = [t[: settings.max_chars] for t in texts]
        # Rare character n-grams are mostly noise, but with a handful of texts keep them all.
        min_df = 2 if len(cut) >= 50 else 1
        word = _word_vectorizer(settings)
        char = _char_vectorizer(settings, min_df=min_df)
        try:
            word.fit(cut)
        except ValueError:
            raise TrainingError("The training texts contain no words to learn from.") from None
        char.fit(cut)
        return cls(word, char, settings)

    @property
    def size(self) -> int:
        """The number of features."""
        return len(self._word.vocabulary_) + len(self._char.vocabulary_)

    @property
    def part_starts(self) -> tuple[int, ...]:
        """The first column of each unit-length part (word n-grams, character n-grams)."""
        return tuple(part.offset for part in self._parts)

    def transform(self, texts: Sequence[str]) -> csr_matrix:
        """One sparse row per text: unit-length word part, then unit-length character part."""
        columns: list[npt.NDArray[np.int64]] = []
        weights: list[npt.NDArray[np.float64]] = []
        ends = [0]
        for text in texts:
            cut = text[: self.settings.max_chars]
            for part in self._parts:
                found, weight = part.row(cut)
                columns.append(found)
                weights.append(weight)
                ends.append(ends[-1] + len(found))
        indptr = np.asarray(ends[:: len(self._parts)], dtype=np.int64)
        if not columns:
            return csr_matrix((len(texts), self.size), dtype=np.float32)
        matrix = csr_matrix(
            (
                np.concatenate(weights).astype(np.float32),
                np.concatenate(columns),
                indptr,
            ),
            shape=(len(texts), self.size),
        )
        matrix.sort_indices()
        return matrix

    def to_arrays(self) -> Arrays:
        """Vocabularies (in feature order) and idf weights as arrays."""
        arrays: Arrays = {}
        for prefix, vectorizer in (("word", self._word), ("char", self._char)):
            vocabulary: dict[str, int] = vectorizer.vocabulary_
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            blob, offsets = encode_strings(terms)
            arrays[f"{prefix}_terms"] = blob
            arrays[f"{prefix}_offsets"] = offsets
            arrays[f"{prefix}_idf"] = np.asarray(vectorizer.idf_, dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Arrays, settings: FeatureSettings) -> TextFeatures:
        """Rebuild the vectorizers from ``to_arrays`` output."""
        built: list[TfidfVectorizer] = []
        for prefix, factory in (("word", _word_vectorizer), ("char", _char_vectorizer)):
            terms = decode_strings(arrays[f"{prefix}_terms"], arrays[f"{prefix}_offsets"])
            vocabulary = {term: i for i, term in enumerate(terms)}
            idf = np.asarray(arrays[f"{prefix}_idf"], dtype=np.float64)
            if len(vocabulary) != len(terms) or len(idf) != len(terms):
                raise ModelFormatError("The model file's vocabulary is corrupt.")
            built.append(_rebuilt(factory(settings, vocabulary=vocabulary), idf))
        return cls(built[0], built[1], settings)


FEATURE_ARRAYS = tuple(
    f"{prefix}_{part}" for prefix in ("word", "char") for part in ("terms", "offsets", "idf")
)
HEAD_ARRAYS = ("coef", "intercept", "temperature")
#: Training facts carried from the artefact's metadata into a loaded model's.
KEPT_META = ("n_train", "train_seconds")


def head_to_arrays(head: LinearHead) -> Arrays:
    """The linear head as arrays."""
    return {
        "coef": head.coef,
        "intercept": head.intercept,
        "temperature": np.array(head.temperature, dtype=np.float64),
    }


def head_from_arrays(arrays: Arrays, n_labels: int, n_features: int) -> LinearHead:
    """Rebuild the linear head; checks its shape against the labels and features."""
    coef = np.asarray(arrays["coef"], dtype=np.float32)
    intercept = np.asarray(arrays["intercept"], dtype=np.float32)
    if coef.shape != (n_labels, n_features) or intercept.shape != (n_labels,):
        raise ModelFormatError("The model file's weights do not match its labels or features.")
    return LinearHead(coef, intercept, float(arrays["temperature"]))


def labels_from_meta(meta: JsonObject) -> tuple[str, ...]:
    """The label list stored in an artefact's metadata."""
    labels = json_strings(meta.get("labels"))
    if labels is None:
        raise ModelFormatError("The model file's label list is corrupt.")
    return tuple(labels)


class TfidfModel(ProbabilityPredictor):
    """A trained TF-IDF model: thread-safe, fast single-ticket inference."""

    learner = NAME

    def __init__(
        self,
        features: TextFeatures,
        head: LinearHead,
        labels: Sequence[str],
        *,
        meta: JsonObject | None = None,
    ) -> None:
        self._features = features
        self._head = head
        self._labels = tuple(labels)
        self._meta = dict(meta or {})
        self._arrays = {**features.to_arrays(), **head_to_arrays(head)}
        self._model_id = f"{NAME}-{content_hash(self._arrays, *self._labels)}"

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Label probabilities, one row per text, columns in ``labels`` order."""
        return self._head.probabilities(self._features.transform(texts))

    def to_bytes(self) -> bytes:
        meta = {
            **self._meta,
            "labels": list(self._labels),
            "learner": NAME,
            "model_id": self._model_id,
            "features": self._features.settings.to_meta(),
            "sklearn_version": sklearn.__version__,
        }
        return pack(NAME, meta, save_arrays(self._arrays))


def fit_tfidf_model(
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    seed: int = 0,
    c: float = 1.0,
    settings: FeatureSettings | None = None,
) -> TfidfModel:
    """Train synchronously (callers on an event loop use ``TfidfLearner.train``)."""
    start = time.perf_counter()
    data = prepare_training_set(examples, labels)
    features = TextFeatures.fit(data.texts, settings or FeatureSettings())
    head = fit_linear_head(
        features.transform(data.texts), data.targets, len(data.labels), c=c, seed=seed
    )
    meta: JsonObject = {
        "n_train": len(data.texts),
        "train_seconds": round(time.perf_counter() - start, 3),
    }
    return TfidfModel(features, head, data.labels, meta=meta)


class TfidfLearner:
    """Learner "tfidf": seconds to train, about a millisecond per ticket, no extras needed."""

    name = NAME
    description = (
        "TF-IDF word and character n-grams with a calibrated linear SVM; needs only scikit-learn."
    )

    def __init__(self, context: LearnerContext | None = None) -> None:
        self._context = context or LearnerContext()

    def available(self) -> bool:
        return True

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> TfidfModel:
        progress(ProgressEvent("train", f"fitting TF-IDF on {len(examples)} examples", 0.0))
        model = await asyncio.to_thread(fit_tfidf_model, list(examples), labels, seed=seed)
        progress(ProgressEvent("train", "done", 1.0))
        return model


def load(meta: JsonObject, payload: bytes, context: LearnerContext | None = None) -> TfidfModel:
    """Rebuild a TfidfModel from its artefact (see ``classifier.artifacts.LOADERS``)."""
    labels = labels_from_meta(meta)
    settings = FeatureSettings.from_meta(meta.get("features", {}))
    arrays = load_arrays(payload, FEATURE_ARRAYS + HEAD_ARRAYS)
    features = TextFeatures.from_arrays(arrays, settings)
    head = head_from_arrays(arrays, len(labels), features.size)
    kept = {k: v for k, v in meta.items() if k in KEPT_META}
    return TfidfModel(features, head, labels, meta=kept)
