"""Sentence vectors kept on disk between retrains: a text's embedding never changes.

The loop retrains after 5, 10, 20, then every 20 corrections, each time on every starter,
corrected and confirmed ticket; without a cache each retrain encodes all of them again (about
3 ms of CPU a text on two cores, so most of a retrain once the team has a few thousand
tickets). ``VectorCache`` wraps an encoder: texts it has seen are read from one ``.npz`` file
per encoder version, only new ones are encoded, and ``save`` writes the file back (atomically;
the newest ``max_rows`` texts are kept). A cache that cannot be read is ignored and rebuilt; one
that cannot be written only costs time: training never fails because of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from classifier.learners.selection import TextEncoder

log = logging.getLogger(__name__)

#: Texts kept (the newest): 384 floats each, so 100,000 texts are about 150 MB on disk.
MAX_ROWS = 100_000


def text_key(text: str) -> bytes:
    """The cache key of ``text`` (16 bytes of its SHA-256)."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class VectorCache:
    """``encoder`` behind an on-disk text -> vector cache in ``path`` (see the module docstring)."""

    def __init__(self, encoder: TextEncoder, path: Path, *, max_rows: int = MAX_ROWS) -> None:
        self._encoder = encoder
        self.path = path
        self._max_rows = max_rows
        self.dimension = encoder.dimension
        self._rows: dict[bytes, int] = {}
        self._vectors = np.zeros((0, self.dimension), dtype=np.float32)
        self._new: dict[bytes, npt.NDArray[np.float32]] = {}
        self.hits = 0
        self.misses = 0
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            with np.load(self.path) as stored:
                keys, vectors = stored["keys"], stored["vectors"]
            if vectors.ndim != 2 or vectors.shape[1] != self.dimension or len(keys) != len(vectors):
                raise ValueError("shape")
        except Exception:  # a damaged or foreign file: start afresh (it is only a cache)
            log.warning("ignoring the unreadable vector cache %s", self.path, exc_info=True)
            return
        self._vectors = vectors.astype(np.float32, copy=False)
        self._rows = {bytes(key): i for i, key in enumerate(keys)}

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One row per text: cached rows, and the encoder's for texts not seen before."""
        keys = [text_key(t) for t in texts]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        for i, key in enumerate(keys):
            row = self._rows.get(key)
            if row is not None:
                out[i] = self._vectors[row]
            elif key in self._new:
                out[i] = self._new[key]
            else:
                missing.setdefault(key, []).append(i)
        self.hits += len(texts) - sum(len(v) for v in missing.values())
        if missing:
            firsts = [positions[0] for positions in missing.values()]
            encoded = self._encoder.encode([texts[i] for i in firsts])
            self.misses += len(firsts)
            for (key, positions), vector in zip(missing.items(), encoded, strict=True):
                out[positions] = vector
                self._new[key] = np.asarray(vector, dtype=np.float32)
        return out

    def save(self) -> None:
        """Write the cache with the texts encoded since it was loaded (newest kept)."""
        if not self._new:
            return
        keys = [*self._rows, *self._new]
        vectors = np.vstack([self._vectors, np.stack(list(self._new.values()))])
        keys, vectors = keys[-self._max_rows :], vectors[-self._max_rows :]
        temporary: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
            with os.fdopen(handle, "wb") as out:
                np.savez(out, keys=np.array(keys, dtype="S16"), vectors=vectors)
            Path(temporary).replace(self.path)
        except OSError:
            log.warning("could not write the vector cache %s", self.path, exc_info=True)
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            return
        self._rows = {key: i for i, key in enumerate(keys)}
        self._vectors = vectors
        self._new = {}
