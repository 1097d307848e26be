from __future__ import annotations

import numpy as np
import pytest

from classifier.learners.encoder import (
    SentenceEncoder,
    encoder_available,
    length_groups,
    shared_encoder,
)

pytestmark = [
    pytest.mark.embeddings,
    pytest.mark.skipif(not encoder_available(), reason="the embeddings extra is not installed"),
]

PROBES = ["I got charged two times this month", "the app crashed with an error", "reset password"]


@pytest.fixture(scope="session")
def encoder() -> SentenceEncoder:
    """The MiniLM encoder, loaded once for the whole test session."""
    return shared_encoder()


def test_encoder_gives_unit_vectors(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["hello", "x" * 50_000])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    assert shared_encoder() is encoder


def test_encode_matches_sentence_transformers(encoder: SentenceEncoder) -> None:
    """The hand-run pipeline gives sentence-transformers' own vectors, in the caller's order."""
    texts = [*PROBES, "a much longer ticket " * 40, "ok", "  padded text  ", "x" * 3_000]
    wanted = encoder._model.encode(
        [t[:2_000] for t in texts], normalize_embeddings=True, convert_to_numpy=True
    )
    np.testing.assert_allclose(encoder.encode(texts), wanted, atol=1e-5)
    for text, row in zip(texts, wanted, strict=True):  # one at a time: the live-ticket path
        np.testing.assert_allclose(encoder.encode([text])[0], row, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_length_groups_pad_little_and_keep_every_text() -> None:
    lengths = [30, 5, 100, 6, 31, 5, 128, 36, 44]
    groups = length_groups(lengths)
    assert groups == [[1, 5, 3], [0, 4, 7], [8], [2, 6]]  # 30 * 1.25 + 4 < 44
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    assert [len(g) for g in length_groups([12] * 150)] == [64, 64, 22]
    assert length_groups([]) == []


def test_encoder_runs_in_onnx_runtime(encoder: SentenceEncoder) -> None:
    """With the embeddings extra installed, the forward pass is the exported ONNX graph."""
    assert encoder.backend == "onnxruntime"


def test_without_an_onnx_export_the_encoder_runs_in_torch(
    encoder: SentenceEncoder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed export (torch's old exporter is deprecated) costs speed, not vectors."""
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter removed")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    fallback = SentenceEncoder()
    assert fallback.backend == "torch"
    assert "Could not export the sentence encoder to ONNX (RuntimeError: exporter removed)" in (
        caplog.text
    )
    texts = [*PROBES, "a much longer ticket " * 40, "ok"]
    np.testing.assert_allclose(fallback.encode(texts), encoder.encode(texts), atol=1e-5)
    np.testing.assert_allclose(fallback.encode(texts[:1]), encoder.encode(texts[:1]), atol=1e-5)
