"""The default local learner: MiniLM sentence embeddings and TF-IDF n-grams, as the data says.

Each ticket can be read two ways: its TF-IDF word and character n-grams (what the words are)
and its all-MiniLM-L6-v2 embedding (what the sentence means). How much each counts, whether a
long ticket's embedding is the mean over its chunks, and which calibrated linear model reads
them is chosen at training time on validation splits of the training data
(``classifier.learners.selection``); the model stores its configuration and what selection
tried, and encodes nothing at prediction time when TF-IDF alone won.

The encoder (``classifier.learners.encoder``) is the process's shared one. The artefact stores
only the TF-IDF part and the head, plus the encoder's name and package version: a model refuses
to load next to another encoder, because its weights would no longer mean anything.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix, hstack

from classifier.artifacts import pack
from classifier.errors import LearnerUnavailableError, ModelFormatError
from classifier.examples import Example, Source
from classifier.json_value import JsonObject, JsonValue, json_int
from classifier.learners import LearnerContext
from classifier.learners.arrays import content_hash, load_arrays, save_arrays
from classifier.learners.encoder import (
    ENCODER_NAME,
    INSTALL_HINT,
    encoder_available,
    encoder_version,
    shared_encoder,
)
from classifier.learners.linear_head import (
    LinearHead,
    fit_linear_weights,
    fit_temperature,
    softmax,
)
from classifier.learners.predictions import ProbabilityPredictor
from classifier.learners.selection import (
    DEFAULT,
    LONG_TEXT_SHARE,
    Candidate,
    FeatureBlocks,
    LabelledRows,
    Selection,
    TextEncoder,
    Validated,
    calibration_scores,
    encode_chunked,
    is_long,
    select,
    validate,
    validation_splits,
)
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
from classifier.learners.vector_cache import VectorCache
from classifier.protocols import ProgressCallback, ProgressEvent, no_progress

NAME = "embedding"

#: The arrays of a model that counts its nearest examples: their embeddings and labels.
MEMORY_ARRAYS = ("memory", "memory_targets")
#: Texts encoded per step of the training progress bar.
ENCODE_BATCH = 256
#: A warm-started retrain reuses the configuration the replaced model's selection chose until
#: the training data has grown (or shrunk) by this factor since that selection. Selection is a
#: search over seven candidates, 5-fold below 1,000 examples (36 fits; 30 s of CPU on 442
#: examples, 41 s on 3,392); a reused configuration costs two fits (the temperature's held-out
#: split and the final one). The loop retrains after 5, 10, 20, then every 20 corrections, so
#: most of its retrains reuse, and selection still runs at 1.5x, 2.25x, ... the data.
RESELECT_GROWTH = 1.5


def stacked_features(
    features: TextFeatures,
    texts: Sequence[str],
    embeddings: npt.NDArray[np.float32],
    weight: float = DEFAULT.embedding_weight,
) -> csr_matrix:
    """TF-IDF n-grams and weighted embeddings side by side, one sparse row per text."""
    return hstack([features.transform(texts), csr_matrix(embeddings * weight)], format="csr")


def encode_view(encoder: TextEncoder, texts: Sequence[str], view: str) -> npt.NDArray[np.float32]:
    """The embeddings a model's configuration reads: first word pieces or chunk means."""
    if view == "chunks":
        return encode_chunked(encoder.encode, texts)
    return encoder.encode(texts)


@dataclass(frozen=True)
class EncoderInfo:
    """Which encoder a model was trained with."""

    name: str
    version: str
    dimension: int


@dataclass(frozen=True)
class Memory:
    """The training examples' embeddings (the configuration's view) and label indices, kept
    by a model that counts each label's nearest example."""

    embeddings: npt.NDArray[np.float32]
    targets: npt.NDArray[np.int64]
    #: The rows grouped by label once, not on every ticket.
    grouped: LabelledRows = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grouped", LabelledRows.group(self.embeddings, self.targets))

    def nearest(self, queries: npt.NDArray[np.float32], n_labels: int) -> npt.NDArray[np.float64]:
        """Each label's highest cosine similarity to each query (``nearest_by_label``)."""
        return self.grouped.nearest(queries, n_labels)

    def to_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        return {"memory": self.embeddings, "memory_targets": self.targets}

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, npt.NDArray[np.generic]], n_labels: int, dimension: int
    ) -> Memory:
        """The memory of a loaded model; checks its shape against the labels and encoder."""
        embeddings = np.asarray(arrays["memory"], dtype=np.float32)
        targets = np.asarray(arrays["memory_targets"], dtype=np.int64)
        if (
            embeddings.ndim != 2
            or embeddings.shape[1] != dimension
            or targets.shape != (embeddings.shape[0],)
            or (len(targets) and (targets.min() < 0 or targets.max() >= n_labels))
        ):
            raise ModelFormatError("The model file's examples do not match its labels or encoder.")
        return cls(embeddings, targets)


class EmbeddingModel(ProbabilityPredictor):
    """A trained model of the configuration selection chose; the encoder is the shared one."""

    learner = NAME

    def __init__(
        self,
        features: TextFeatures,
        head: LinearHead,
        labels: Sequence[str],
        encoder: EncoderInfo,
        *,
        configuration: Candidate = DEFAULT,
        meta: JsonObject | None = None,
        text_encoder: TextEncoder | None = None,
        memory: Memory | None = None,
    ) -> None:
        """``memory``: the training examples' embeddings and labels, required when the
        configuration counts the nearest examples (``Candidate.neighbours``)."""
        if configuration.neighbours > 0 and memory is None:
            raise ModelFormatError("The model file lacks the examples its configuration reads.")
        self._memory = memory if configuration.neighbours > 0 else None
        self._features = features
        self._text_encoder = text_encoder
        # The weights column by column: the TF-IDF columns' transpose is then one contiguous
        # block that scipy multiplies in place; from the row-ordered array it copied all of it
        # on every call: 0.1 ms a ticket with 5 labels and 19,000 n-grams, 3 ms with BANKING77's
        # 77 labels and 36,000 (CPU, loaded machine).
        head = LinearHead(np.asfortranarray(head.coef), head.intercept, head.temperature)
        self._head = head
        # The embedding columns row by row, as numpy multiplied them before (same sums).
        self._embedding_coef = np.ascontiguousarray(head.coef[:, features.size :])
        self._labels = tuple(labels)
        self._encoder = encoder
        self._configuration = configuration
        self._meta = dict(meta or {})
        self._arrays = {**features.to_arrays(), **head_to_arrays(head)}
        if self._memory is not None:
            self._arrays.update(self._memory.to_arrays())
        digest = content_hash(
            self._arrays, *self._labels, encoder.name, encoder.version, configuration.name
        )
        self._model_id = f"{NAME}-{digest}"

    @property
    def configuration(self) -> Candidate:
        """The features and head this model uses."""
        return self._configuration

    @property
    def selection(self) -> JsonObject | None:
        """What selection tried and chose at training time (None for older models)."""
        selection = self._meta.get("selection")
        return dict(selection) if isinstance(selection, dict) else None

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Label probabilities, one row per text, columns in ``labels`` order."""
        # The head's scores on the stacked features, computed part by part: the same sums
        # without building the stacked sparse matrix (about 2 ms of a live ticket's latency),
        # and without encoding at all when the configuration reads TF-IDF alone.
        head, config = self._head, self._configuration
        text_job = None
        if config.tfidf and config.uses_embeddings:
            # The TF-IDF part on a side thread while this one encodes: ONNX Runtime and numpy
            # release the GIL while they compute.
            text_job = side_thread().submit(self._text_scores, texts)
        embedding_scores = nearest = None
        if config.uses_embeddings:
            encoder = self._text_encoder or shared_encoder()
            embeddings = encode_view(encoder, texts, config.view)
            if config.embedding_feature:
                weighted = embeddings * np.float32(config.embedding_weight)
                embedding_scores = (weighted @ self._embedding_coef.T).astype(np.float64)
            if self._memory is not None:
                nearest = self._memory.nearest(embeddings, len(self._labels))
        # The parts added in one order whichever finished first: the same sums to the bit.
        scores = np.zeros((len(texts), len(self._labels)), dtype=np.float64)
        if config.tfidf:
            # A side thread still busy with another caller's ticket: do it here instead.
            if text_job is None or text_job.cancel():
                scores += self._text_scores(texts)
            else:
                scores += text_job.result()
        if embedding_scores is not None:
            scores += embedding_scores
        if nearest is not None:
            scores += config.neighbours * nearest
        return softmax((scores + head.intercept.astype(np.float64)) / head.temperature)

    def _text_scores(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """The head's scores from the TF-IDF columns alone."""
        text_scores = self._features.transform(texts) @ self._head.coef[:, : self._features.size].T
        return np.asarray(text_scores, dtype=np.float64)

    def to_bytes(self) -> bytes:
        meta: JsonObject = {
            **self._meta,
            "labels": list(self._labels),
            "learner": NAME,
            "model_id": self._model_id,
            "features": self._features.settings.to_meta(),
            "embedding_weight": self._configuration.embedding_weight,
            "configuration": self._configuration.to_meta(),
            "encoder": {
                "name": self._encoder.name,
                "version": self._encoder.version,
                "dimension": self._encoder.dimension,
            },
        }
        return pack(NAME, meta, save_arrays(self._arrays))


@dataclass(frozen=True)
class FittedHead:
    """What ``fit_selected`` returns: the features, the head, the selection behind them."""

    features: TextFeatures
    head: LinearHead
    selection: Selection
    #: The examples' embeddings when the chosen configuration counts the nearest ones.
    memory: Memory | None = None
    #: How many held-out predictions the temperature was fitted on, from how many cuts.
    calibration_rows: int = 0
    calibration_cuts: int = 1


def fit_selected(
    texts: Sequence[str],
    targets: npt.NDArray[np.int64],
    n_labels: int,
    views: dict[str, npt.NDArray[np.float32]],
    *,
    seed: int = 0,
    sample_weight: npt.NDArray[np.float64] | None = None,
    always_fit: npt.NDArray[np.bool_] | None = None,
    progress: ProgressCallback = no_progress,
    reuse: Candidate | None = None,
) -> FittedHead:
    """Fit TF-IDF once, select a configuration on validation splits, fit it on everything.

    CPU work only: ``views`` are the precomputed embeddings ("first", and "chunks" for long
    texts). The winner's softmax temperature comes from its out-of-fold scores. With
    ``reuse`` (a warm start) that configuration is fitted without a search; its temperature
    comes from the first validation split alone. Either way, held-out scores fewer than
    ``CALIBRATION_ROWS`` are pooled with those of more cuts (``calibration_scores``).
    """
    features = TextFeatures.fit(texts, FeatureSettings())
    blocks = FeatureBlocks(features.transform(texts), views, features.part_starts)

    def report(name: str, fraction: float) -> None:
        progress(ProgressEvent("select", f"validating {name}", fraction))

    if reuse is not None:
        scheme, splits = validation_splits(targets, seed, always_fit)
        report(f"{reuse.name} (reused)", 0.0)
        best: Validated = validate(
            blocks, reuse, targets, n_labels, splits[:1], seed=seed, sample_weight=sample_weight
        )
        scheme = f"reused; temperature on the first split of {scheme}"
        selection = Selection(reuse, (best.score,), scheme, len(best.held_targets))
    else:
        selection, best = select(
            blocks,
            targets,
            n_labels,
            seed=seed,
            sample_weight=sample_weight,
            always_fit=always_fit,
            progress=report,
        )
    chosen = selection.chosen
    progress(ProgressEvent("train", f"fitting {chosen.name} on {len(texts)} examples", 0.0))
    held_scores, held_targets, cuts = calibration_scores(
        blocks,
        best,
        targets,
        n_labels,
        seed=seed,
        sample_weight=sample_weight,
        always_fit=always_fit,
    )
    temperature = fit_temperature(held_scores, held_targets, pseudo=cuts)
    coef, intercept = fit_linear_weights(
        blocks.matrix(chosen),
        targets,
        n_labels,
        kind=chosen.head,
        c=chosen.c,
        seed=seed,
        sample_weight=sample_weight,
    )
    head = LinearHead(blocks.full_coef(chosen, coef), intercept, temperature)
    memory = None
    if chosen.neighbours > 0:
        order = np.argsort(targets, kind="stable")  # sorted by label: no reordering per ticket
        memory = Memory(np.ascontiguousarray(views[chosen.view][order]), targets[order])
    return FittedHead(features, head, selection, memory, len(held_targets), cuts)


class EmbeddingLearner:
    """Learner "embedding": the most accurate local learner; needs the embeddings extra."""

    name = NAME
    description = (
        "all-MiniLM-L6-v2 sentence embeddings and TF-IDF n-grams with a calibrated linear "
        "model, the mix chosen by validation on the training data; needs the 'embeddings' "
        "extra (ONNX Runtime, no PyTorch) and the model's weights "
        "(requirements/encoder-weights.txt)."
    )

    def __init__(
        self,
        context: LearnerContext | None = None,
        *,
        text_encoder: TextEncoder | None = None,
        previous: Mapping[str, JsonValue] | None = None,
    ) -> None:
        """``text_encoder`` replaces the process's shared encoder (benchmarks cache vectors);
        ``previous`` is the metadata of the model the new one replaces (see ``warm_started``)."""
        self._context = context or LearnerContext()
        self._text_encoder = text_encoder
        self._previous = dict(previous) if previous is not None else None

    def available(self) -> bool:
        return encoder_available()

    def warm_started(self, previous: Mapping[str, JsonValue]) -> EmbeddingLearner:
        """This learner, reusing ``previous``'s chosen configuration while the data is about
        the size it was chosen on (``RESELECT_GROWTH``)."""
        return EmbeddingLearner(self._context, text_encoder=self._text_encoder, previous=previous)

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
        encoder: TextEncoder
        cache: VectorCache | None = None
        if self._text_encoder is not None:
            encoder = self._text_encoder
        else:
            encoder = await asyncio.to_thread(shared_encoder)
            if self._context.vector_cache is not None:
                path = self._context.vector_cache / f"vectors-{encoder_version()}.npz"
                encoder = cache = await asyncio.to_thread(VectorCache, encoder, path)
        views = {"first": await _encode_in_batches(encoder, data.texts, progress)}
        long_rows = [i for i, text in enumerate(data.texts) if is_long(text)]
        if len(long_rows) >= LONG_TEXT_SHARE * len(data.texts):
            # Long texts: the mean of chunk embeddings is a candidate view too.
            chunked = views["first"].copy()
            chunked[long_rows] = await _encode_in_batches(
                encoder, [data.texts[i] for i in long_rows], progress, chunks=True
            )
            views["chunks"] = chunked
        if cache is not None:
            await asyncio.to_thread(cache.save)
        reuse = reusable_configuration(self._previous, data.labels, len(data.texts), views)
        fitted = await asyncio.to_thread(
            fit_selected,
            data.texts,
            data.targets,
            len(data.labels),
            views,
            seed=seed,
            sample_weight=_sample_weights(examples),
            always_fit=_from_taxonomy(examples),
            progress=progress,
            reuse=reuse,
        )
        progress(ProgressEvent("train", "done", 1.0))
        info = EncoderInfo(ENCODER_NAME, encoder_version(), encoder.dimension)
        previous_selection = self._previous.get("selection") if self._previous else None
        selection: JsonObject
        if reuse is not None and isinstance(previous_selection, dict):
            # The search's record stays the one the configuration was chosen by.
            selection = {
                **previous_selection,
                "reused_on": len(data.texts),
                "reused_scheme": fitted.selection.scheme,
            }
        else:
            selection = {**fitted.selection.to_meta(), "selected_on": len(data.texts)}
        meta: JsonObject = {
            "n_train": len(data.texts),
            "train_seconds": round(time.perf_counter() - start_time, 3),
            "selection": {
                **selection,
                "temperature": fitted.head.temperature,
                "temperature_rows": fitted.calibration_rows,
                "temperature_cuts": fitted.calibration_cuts,
            },
        }
        return EmbeddingModel(
            fitted.features,
            fitted.head,
            data.labels,
            info,
            configuration=fitted.selection.chosen,
            meta=meta,
            text_encoder=self._text_encoder,
            memory=fitted.memory,
        )


def reusable_configuration(
    previous: Mapping[str, JsonValue] | None,
    labels: Sequence[str],
    n_texts: int,
    views: Mapping[str, npt.NDArray[np.float32]],
) -> Candidate | None:
    """The configuration ``previous`` (a model's metadata) chose, if a new model on ``n_texts``
    examples over ``labels`` may reuse it: an embedding model over the same labels whose
    selection ran on between 1/``RESELECT_GROWTH`` and ``RESELECT_GROWTH`` times as many
    examples, reading a view this data has. Anything else (or anything unreadable) selects."""
    if not previous or previous.get("learner") != NAME:
        return None
    selection = previous.get("selection")
    if not isinstance(selection, dict) or previous.get("labels", []) != list(labels):
        return None
    selected_on = selection.get("selected_on", previous.get("n_train"))
    if not isinstance(selected_on, int) or selected_on <= 0:
        return None
    if not selected_on / RESELECT_GROWTH <= n_texts <= selected_on * RESELECT_GROWTH:
        return None
    try:
        chosen = Candidate.from_meta(selection["chosen"])
    except (ModelFormatError, KeyError, TypeError):
        return None
    if chosen.uses_embeddings and chosen.view not in views:
        return None
    return chosen


def _sample_weights(examples: Sequence[Example]) -> npt.NDArray[np.float64] | None:
    """Per-example weights when any example carries one (``weight``), else None."""
    weights = np.array([float(getattr(e, "weight", 1.0)) for e in examples], dtype=np.float64)
    return None if np.all(weights == 1.0) else weights


def _from_taxonomy(examples: Sequence[Example]) -> npt.NDArray[np.bool_] | None:
    """Which examples the taxonomy gave (never held out in selection), or None if none."""
    mask = np.array([e.source == Source.TAXONOMY for e in examples], dtype=np.bool_)
    return mask if mask.any() else None


async def _encode_in_batches(
    encoder: TextEncoder,
    texts: Sequence[str],
    progress: ProgressCallback,
    *,
    chunks: bool = False,
) -> npt.NDArray[np.float32]:
    """Encode off the event loop in batches, reporting progress (chunk means if ``chunks``)."""
    # Shortest first across the whole set (not just within a progress chunk): each forward
    # batch then holds texts of about one length and pads little.
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), encoder.dimension), dtype=np.float32)
    what = "chunks of long texts" if chunks else "texts"
    for start in range(0, len(order), ENCODE_BATCH):
        rows = order[start : start + ENCODE_BATCH]
        batch = [texts[i] for i in rows]
        if chunks:
            out[rows] = await asyncio.to_thread(encode_chunked, encoder.encode, batch)
        else:
            out[rows] = await asyncio.to_thread(encoder.encode, batch)
        done = start + len(batch)
        progress(ProgressEvent("encode", f"{what} {done}/{len(texts)}", done / len(texts)))
    return out


_side: ThreadPoolExecutor | None = None
_side_lock = threading.Lock()


def side_thread() -> ThreadPoolExecutor:
    """The process's one worker thread for a ticket's TF-IDF part (``probabilities``)."""
    global _side
    with _side_lock:
        if _side is None:
            _side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfidf-side")
        return _side


def _encoder_from_meta(meta: JsonObject) -> EncoderInfo:
    raw = meta.get("encoder")
    if not isinstance(raw, dict):
        raise ModelFormatError("The model file does not say which sentence encoder it needs.")
    try:
        info = EncoderInfo(str(raw["name"]), str(raw["version"]), json_int(raw["dimension"]))
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


def _configuration_from_meta(meta: JsonObject) -> Candidate:
    """The stored configuration; models from before selection used the stacked SVM."""
    if "configuration" in meta:
        return Candidate.from_meta(meta["configuration"])
    weight = meta.get("embedding_weight")
    if not isinstance(weight, int | float) or weight <= 0:
        raise ModelFormatError("The model file was built with other settings; retrain it.")
    return Candidate(embedding_weight=float(weight))


def load(meta: JsonObject, payload: bytes, context: LearnerContext | None = None) -> EmbeddingModel:
    """Rebuild an EmbeddingModel from its artefact (see ``classifier.artifacts.LOADERS``)."""
    labels = labels_from_meta(meta)
    info = _encoder_from_meta(meta)
    configuration = _configuration_from_meta(meta)
    settings = FeatureSettings.from_meta(meta.get("features", {}))
    memory_arrays = MEMORY_ARRAYS if configuration.neighbours > 0 else ()
    arrays = load_arrays(payload, FEATURE_ARRAYS + HEAD_ARRAYS + memory_arrays)
    features = TextFeatures.from_arrays(arrays, settings)
    head = head_from_arrays(arrays, len(labels), features.size + info.dimension)
    memory = Memory.from_arrays(arrays, len(labels), info.dimension) if memory_arrays else None
    kept = {k: v for k, v in meta.items() if k in (*KEPT_META, "selection")}
    if configuration.uses_embeddings:
        shared_encoder()  # loaded with the model, so the first ticket does not wait for it
    return EmbeddingModel(
        features, head, labels, info, configuration=configuration, meta=kept, memory=memory
    )
