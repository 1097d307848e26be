"""The default local learner: MiniLM sentence embeddings stacked with TF-IDF n-grams.

Each ticket becomes one vector: its TF-IDF word and character n-grams (what the words are)
next to its all-MiniLM-L6-v2 embedding (what the sentence means), weighted by
``EMBEDDING_WEIGHT``; a calibrated linear SVM reads both. On BANKING77 this beats either part
alone (see ``bench/quality.py``).

The encoder (``classifier.learners.encoder``) is the process's shared one. The artefact stores
only the TF-IDF part and the head, plus the encoder's name and package version: a model refuses
to load next to another encoder, because its weights would no longer mean anything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix, hstack

from classifier.artifacts import pack
from classifier.errors import LearnerUnavailableError, ModelFormatError
from classifier.examples import Example
from classifier.learners import LearnerContext
from classifier.learners.arrays import content_hash, load_arrays, save_arrays
from classifier.learners.encoder import (
    ENCODER_NAME,
    INSTALL_HINT,
    encoder_available,
    encoder_version,
    shared_encoder,
)
from classifier.learners.linear_head import LinearHead, fit_linear_head, softmax
from classifier.learners.predictions import ProbabilityPredictor
from classifier.learners.tfidf import (
    FEATURE_ARRAYS,
    HEAD_ARRAYS,
    KEPT_META,
    FeatureSettings,
    TextFeatures,
    head_from_arrays,
    head_to_arrays,
    labels_from_meta,
)
from classifier.learners.training_data import prepare_training_set
from classifier.model import ProgressCallback, ProgressEvent, no_progress

NAME = "embedding"

#: How much the (unit-length) embedding counts next to the (unit-length) TF-IDF parts, and the
#: SVM's C: both tuned on a 15 % validation split of BANKING77's training data (never its test
#: split): weight 1/2/3/5 gave 93.1/93.2/93.3/92.4 %, C 0.5/1 at weight 3 gave 93.4/93.3 %.
EMBEDDING_WEIGHT = 3.0
HEAD_C = 0.5
#: Texts encoded per step of the training progress bar.
ENCODE_BATCH = 256


def stacked_features(
    features: TextFeatures, texts: Sequence[str], embeddings: npt.NDArray[np.float32]
) -> csr_matrix:
    """TF-IDF n-grams and weighted embeddings side by side, one sparse row per text."""
    return hstack(
        [features.transform(texts), csr_matrix(embeddings * EMBEDDING_WEIGHT)], format="csr"
    )


@dataclass(frozen=True)
class EncoderInfo:
    """Which encoder a model was trained with."""

    name: str
    version: str
    dimension: int


class EmbeddingModel(ProbabilityPredictor):
    """A trained embedding + TF-IDF model; the encoder is the process's shared one."""

    learner = NAME

    def __init__(
        self,
        features: TextFeatures,
        head: LinearHead,
        labels: Sequence[str],
        encoder: EncoderInfo,
        *,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self._features = features
        self._head = head
        self._labels = tuple(labels)
        self._encoder = encoder
        self._meta = dict(meta or {})
        self._arrays = {**features.to_arrays(), **head_to_arrays(head)}
        digest = content_hash(self._arrays, *self._labels, encoder.name, encoder.version)
        self._model_id = f"{NAME}-{digest}"

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Label probabilities, one row per text, columns in ``labels`` order."""
        embeddings = shared_encoder().encode(texts)
        # The head's scores on the stacked features, computed part by part: the same sums
        # without building the stacked sparse matrix (about 2 ms of a live ticket's latency).
        head, size = self._head, self._features.size
        text_scores = self._features.transform(texts) @ head.coef[:, :size].T
        meaning_scores = (embeddings * EMBEDDING_WEIGHT) @ head.coef[:, size:].T
        scores = np.asarray(text_scores, dtype=np.float64) + meaning_scores.astype(np.float64)
        return softmax((scores + head.intercept.astype(np.float64)) / head.temperature)

    def to_bytes(self) -> bytes:
        meta = {
            **self._meta,
            "labels": list(self._labels),
            "learner": NAME,
            "model_id": self._model_id,
            "features": self._features.settings.to_meta(),
            "embedding_weight": EMBEDDING_WEIGHT,
            "encoder": {
                "name": self._encoder.name,
                "version": self._encoder.version,
                "dimension": self._encoder.dimension,
            },
        }
        return pack(NAME, meta, save_arrays(self._arrays))


def fit_embedding_head(
    texts: Sequence[str],
    targets: npt.NDArray[np.int64],
    n_labels: int,
    embeddings: npt.NDArray[np.float32],
    *,
    seed: int = 0,
    c: float = HEAD_C,
) -> tuple[TextFeatures, LinearHead]:
    """Fit TF-IDF and the linear head on precomputed embeddings (CPU work, no encoder)."""
    features = TextFeatures.fit(texts, FeatureSettings())
    head = fit_linear_head(
        stacked_features(features, texts, embeddings), targets, n_labels, c=c, seed=seed
    )
    return features, head


class EmbeddingLearner:
    """Learner "embedding": the most accurate local learner; needs the embeddings extra."""

    name = NAME
    description = (
        "all-MiniLM-L6-v2 sentence embeddings stacked with TF-IDF n-grams and a calibrated "
        "linear SVM; needs the 'embeddings' extra (ONNX Runtime, no PyTorch) and the "
        "model's weights (requirements/encoder-weights.txt)."
    )

    def __init__(self, context: LearnerContext | None = None) -> None:
        self._context = context or LearnerContext()

    def available(self) -> bool:
        return encoder_available()

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> EmbeddingModel:
        start_time = time.perf_counter()
        data = prepare_training_set(examples, labels)
        progress(ProgressEvent("encode", "loading the sentence encoder", 0.0))
        encoder = await asyncio.to_thread(shared_encoder)
        # Shortest first across the whole set (not just within a progress chunk): each forward
        # batch then holds texts of about one length and pads little.
        order = np.argsort([len(t) for t in data.texts], kind="stable")
        embeddings = np.empty((len(data.texts), encoder.dimension), dtype=np.float32)
        for start in range(0, len(order), ENCODE_BATCH):
            rows = order[start : start + ENCODE_BATCH]
            batch = [data.texts[i] for i in rows]
            embeddings[rows] = await asyncio.to_thread(encoder.encode, batch)
            done = start + len(batch)
            progress(ProgressEvent("encode", f"{done}/{len(data.texts)}", done / len(data.texts)))
        progress(ProgressEvent("train", f"fitting the head on {len(data.texts)} examples", 0.0))
        features, head = await asyncio.to_thread(
            fit_embedding_head,
            data.texts,
            data.targets,
            len(data.labels),
            embeddings,
            seed=seed,
        )
        progress(ProgressEvent("train", "done", 1.0))
        info = EncoderInfo(ENCODER_NAME, encoder_version(), encoder.dimension)
        meta = {
            "n_train": len(data.texts),
            "train_seconds": round(time.perf_counter() - start_time, 3),
        }
        return EmbeddingModel(features, head, data.labels, info, meta=meta)


def _encoder_from_meta(meta: dict[str, Any]) -> EncoderInfo:
    raw = meta.get("encoder")
    if not isinstance(raw, dict):
        raise ModelFormatError("The model file does not say which sentence encoder it needs.")
    try:
        info = EncoderInfo(str(raw["name"]), str(raw["version"]), int(raw["dimension"]))
    except (KeyError, TypeError, ValueError):
        raise ModelFormatError("The model file's encoder details are corrupt.") from None
    if not encoder_available():
        raise LearnerUnavailableError(f"This model needs the sentence encoder: {INSTALL_HINT}")
    installed = encoder_version()
    if info.name != ENCODER_NAME or info.version != installed:
        raise ModelFormatError(
            f"This model was trained with encoder {info.name} {info.version}, but "
            f"{ENCODER_NAME} {installed} is installed; retrain the model."
        )
    return info


def load(meta: dict[str, Any], payload: bytes, context: Any = None) -> EmbeddingModel:
    """Rebuild an EmbeddingModel from its artefact (see ``classifier.artifacts.LOADERS``)."""
    labels = labels_from_meta(meta)
    info = _encoder_from_meta(meta)
    if meta.get("embedding_weight") != EMBEDDING_WEIGHT:
        raise ModelFormatError("The model file was built with other settings; retrain it.")
    settings = FeatureSettings.from_meta(meta.get("features", {}))
    arrays = load_arrays(payload, FEATURE_ARRAYS + HEAD_ARRAYS)
    features = TextFeatures.from_arrays(arrays, settings)
    head = head_from_arrays(arrays, len(labels), features.size + info.dimension)
    kept = {k: v for k, v in meta.items() if k in KEPT_META}
    shared_encoder()  # loaded with the model, so the first ticket does not wait for it
    return EmbeddingModel(features, head, labels, info, meta=kept)
