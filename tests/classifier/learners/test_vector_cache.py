from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from classifier.learners.vector_cache import VectorCache


class CountingEncoder:
    """Deterministic unit vectors from the text, with every text it was asked for recorded."""

    dimension = 4

    def __init__(self) -> None:
        self.asked: list[str] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.asked.extend(texts)
        rows = [[len(t), sum(map(ord, t)) % 7, 1.0, t.count("a")] for t in texts]
        out = np.array(rows, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_only_new_texts_are_encoded_across_retrains(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "vectors-1.npz"
    first_encoder = CountingEncoder()
    cache = VectorCache(first_encoder, path)
    expected = CountingEncoder().encode(["a ticket", "another", "a ticket"])
    np.testing.assert_allclose(cache.encode(["a ticket", "another", "a ticket"]), expected)
    assert first_encoder.asked == ["a ticket", "another"]  # each text once
    cache.save()

    # The next retrain (a new process): seen texts come from the file, new ones are encoded.
    encoder = CountingEncoder()
    again = VectorCache(encoder, path)
    vectors = again.encode(["another", "a new one", "a ticket"])
    assert encoder.asked == ["a new one"]
    wanted = CountingEncoder().encode(["another", "a new one", "a ticket"])
    np.testing.assert_allclose(vectors, wanted)
    assert (again.hits, again.misses) == (2, 1)


def test_the_newest_texts_are_kept_and_a_damaged_file_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    cache = VectorCache(CountingEncoder(), path, max_rows=2)
    cache.encode(["one", "two", "three"])
    cache.save()
    encoder = CountingEncoder()
    VectorCache(encoder, path).encode(["one", "two", "three"])
    assert encoder.asked == ["one"]  # the oldest text was dropped

    path.write_bytes(b"not a cache")
    encoder = CountingEncoder()
    rebuilt = VectorCache(encoder, path)
    rebuilt.encode(["two"])
    assert encoder.asked == ["two"]
    rebuilt.save()
    assert VectorCache(CountingEncoder(), path).encode(["two"]).shape == (1, 4)
