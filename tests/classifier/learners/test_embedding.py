from __future__ import annotations

import asyncio

import numpy as np
import pytest

from classifier.artifacts import load_model, pack, unpack
from classifier.errors import ModelFormatError
from classifier.examples import Example
from classifier.learners.embedding import (
    EmbeddingLearner,
    EmbeddingModel,
    SentenceEncoder,
    encoder_available,
    length_groups,
    shared_encoder,
)
from tests.classifier.learners.conftest import LABELS

pytestmark = [
    pytest.mark.embeddings,
    pytest.mark.skipif(not encoder_available(), reason="the embeddings extra is not installed"),
]

PROBES = ["I got charged two times this month", "the app crashed with an error", "reset password"]


@pytest.fixture(scope="session")
def encoder() -> SentenceEncoder:
    """The MiniLM encoder, loaded once for the whole test session."""
    return shared_encoder()


@pytest.fixture(scope="module")
def model(encoder: SentenceEncoder, tickets: list[Example]) -> EmbeddingModel:
    # asyncio.run: a module-wide fixture cannot share the tests' per-function event loops.
    return asyncio.run(EmbeddingLearner().train(tickets, LABELS, seed=0))


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


async def test_learns_and_ranks(model: EmbeddingModel) -> None:
    predictions = await model.predict(PROBES)
    assert [p.label for p in predictions] == ["Billing", "Technical", "Account"]
    for prediction in predictions:
        assert sum(p for _, p in prediction.ranking) == pytest.approx(1.0)
    assert model.model_id.startswith("embedding-")


def test_probabilities_equal_the_head_on_stacked_features(model: EmbeddingModel) -> None:
    from classifier.learners.embedding import stacked_features

    embeddings = shared_encoder().encode(PROBES)
    stacked = stacked_features(model._features, PROBES, embeddings)
    np.testing.assert_allclose(
        model.probabilities(PROBES), model._head.probabilities(stacked), atol=1e-6
    )


async def test_round_trip_through_bytes_predicts_identically(model: EmbeddingModel) -> None:
    data = model.to_bytes()
    meta = unpack(data).meta
    assert meta["encoder"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    loaded = load_model(data)
    assert isinstance(loaded, EmbeddingModel)
    assert loaded.model_id == model.model_id
    np.testing.assert_array_equal(loaded.probabilities(PROBES), model.probabilities(PROBES))


async def test_long_text_is_truncated_not_refused(model: EmbeddingModel) -> None:
    [prediction] = await model.predict(["refund my payment " * 2800])
    assert prediction.label == "Billing"


def test_another_encoder_version_is_refused(model: EmbeddingModel) -> None:
    artefact = unpack(model.to_bytes())
    meta = {**artefact.meta, "encoder": {**artefact.meta["encoder"], "version": "9.9.9"}}
    with pytest.raises(ModelFormatError, match=r"encoder .* 9\.9\.9.*retrain"):
        load_model(pack("embedding", meta, artefact.payload))
