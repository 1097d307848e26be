from __future__ import annotations

import asyncio

import numpy as np
import pytest

from classifier.artifacts import load_model, pack, unpack
from classifier.errors import ModelFormatError
from classifier.examples import Example
from classifier.learners.embedding import EmbeddingLearner, EmbeddingModel
from classifier.learners.encoder import SentenceEncoder, encoder_available, shared_encoder
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
