from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from classifier.artifacts import load_model, pack, unpack
from classifier.errors import ModelFormatError
from classifier.examples import Example
from classifier.learners.embedding import (
    EmbeddingLearner,
    EmbeddingModel,
    Memory,
    reusable_configuration,
    side_thread,
)
from classifier.learners.encoder import SentenceEncoder, encoder_available, shared_encoder
from classifier.learners.linear_head import softmax
from classifier.learners.selection import (
    CALIBRATION_CUTS,
    CALIBRATION_ROWS,
    CHUNK_WORDS,
    DEFAULT,
    Candidate,
    nearest_by_label,
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


async def test_learns_and_ranks(model: EmbeddingModel) -> None:
    predictions = await model.predict(PROBES)
    assert [p.label for p in predictions] == ["Billing", "Technical", "Account"]
    for prediction in predictions:
        assert sum(p for _, p in prediction.ranking) == pytest.approx(1.0)
    assert model.model_id.startswith("embedding-")


def test_probabilities_equal_the_head_on_stacked_features(model: EmbeddingModel) -> None:
    from classifier.learners.embedding import stacked_features

    embeddings = shared_encoder().encode(PROBES)
    # The unused part of the chosen configuration has zero weights in the head.
    weight = model.configuration.embedding_weight
    stacked = stacked_features(model._features, PROBES, embeddings, weight)
    np.testing.assert_allclose(
        model.probabilities(PROBES), model._head.probabilities(stacked), atol=1e-6
    )


def test_selection_is_recorded_and_travels_with_the_model(
    model: EmbeddingModel, tickets: list[Example]
) -> None:
    selection = model.selection
    assert selection is not None
    assert selection["chosen"]["name"] == model.configuration.name
    names = [c["name"] for c in selection["candidates"]]
    assert model.configuration.name in names
    # TF-IDF alone and the embedding alone were tried, with the few-shot incumbent's head
    # (8 tickets a label: logistic regression, see selection.incumbent_for).
    assert "tfidf logreg C=3" in names
    assert "emb[first] logreg C=3" in names
    assert any(name.endswith("svm C=0.5") for name in names)  # the SVM in stage 2
    assert all(0 <= c["accuracy"] <= 1 for c in selection["candidates"])
    assert selection["scheme"] == "stratified 5-fold"  # 8 tickets a label
    # Few held-out predictions a cut: the temperature pools more cuts of the same tickets.
    cuts = min(CALIBRATION_CUTS, -(-CALIBRATION_ROWS // len(tickets)))
    assert selection["temperature_cuts"] == cuts > 1
    assert selection["temperature_rows"] == cuts * len(tickets)
    loaded = load_model(model.to_bytes())
    assert isinstance(loaded, EmbeddingModel)
    assert loaded.selection == selection
    assert loaded.configuration == model.configuration


def test_a_model_from_before_selection_loads_as_the_stacked_svm(model: EmbeddingModel) -> None:
    artefact = unpack(model.to_bytes())
    meta = {k: v for k, v in artefact.meta.items() if k not in ("configuration", "selection")}
    loaded = load_model(pack("embedding", {**meta, "embedding_weight": 3.0}, artefact.payload))
    assert isinstance(loaded, EmbeddingModel)
    assert loaded.configuration == DEFAULT
    assert loaded.selection is None
    with pytest.raises(ModelFormatError, match="other settings"):
        load_model(pack("embedding", {**meta, "embedding_weight": "x"}, artefact.payload))


class RecordingEncoder:
    """Real vectors from the shared encoder, with every call recorded."""

    def __init__(self, encoder: SentenceEncoder) -> None:
        self._encoder = encoder
        self.dimension = encoder.dimension
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return self._encoder.encode(texts)


async def test_a_tfidf_only_configuration_never_encodes(
    encoder: SentenceEncoder, model: EmbeddingModel
) -> None:
    recording = RecordingEncoder(encoder)
    tfidf_only = Candidate(embedding_weight=0.0)
    fast = EmbeddingModel(
        model._features,
        model._head,
        model.labels,
        model._encoder,
        configuration=tfidf_only,
        text_encoder=recording,
    )
    fast.probabilities(PROBES)
    assert recording.calls == []
    assert fast.model_id != model.model_id or model.configuration == tfidf_only


def test_nearest_examples_add_to_the_scores_and_travel_with_the_model(
    encoder: SentenceEncoder, model: EmbeddingModel
) -> None:
    examples = encoder.encode(["refund my double charge", "the app keeps crashing"])
    memory = Memory(examples, np.array([0, 1], dtype=np.int64))
    nearest = Candidate(
        model.configuration.embedding_weight,
        model.configuration.tfidf,
        neighbours=2.0,
    )
    plain = EmbeddingModel(
        model._features,
        model._head,
        model.labels,
        model._encoder,
        configuration=Candidate(nearest.embedding_weight, nearest.tfidf),
    )
    counted = EmbeddingModel(
        model._features,
        model._head,
        model.labels,
        model._encoder,
        configuration=nearest,
        memory=memory,
    )
    # The head's scores plus twice each label's best cosine, through the same softmax.
    head = model._head
    raw = np.log(plain.probabilities(PROBES)) * head.temperature
    boost = 2.0 * memory.nearest(encoder.encode(PROBES), len(model.labels))
    expected = np.exp((raw + boost) / head.temperature)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(counted.probabilities(PROBES), expected, atol=1e-5)
    loaded = load_model(counted.to_bytes())
    assert isinstance(loaded, EmbeddingModel)
    assert loaded.configuration == nearest
    np.testing.assert_allclose(loaded.probabilities(PROBES), counted.probabilities(PROBES))
    with pytest.raises(ModelFormatError):
        EmbeddingModel(
            model._features, model._head, model.labels, model._encoder, configuration=nearest
        )


def _counting_model(encoder: SentenceEncoder, model: EmbeddingModel) -> EmbeddingModel:
    """``model``'s features and head, counting two remembered examples: every part in use."""
    examples = encoder.encode(["refund my double charge", "the app keeps crashing"])
    configuration = Candidate(model.configuration.embedding_weight, tfidf=True, neighbours=2.0)
    return EmbeddingModel(
        model._features,
        model._head,
        model.labels,
        model._encoder,
        configuration=configuration,
        memory=Memory(examples, np.array([1, 0], dtype=np.int64)),
    )


def _parts_in_order(model: EmbeddingModel, texts: list[str]) -> npt.NDArray[np.float64]:
    """The probabilities computed one part after the other, as before the side thread."""
    head, config = model._head, model.configuration
    scores = np.zeros((len(texts), len(model.labels)), dtype=np.float64)
    text_scores = model._features.transform(texts) @ head.coef[:, : model._features.size].T
    scores += np.asarray(text_scores, dtype=np.float64)
    embeddings = shared_encoder().encode(texts)
    weighted = embeddings * np.float32(config.embedding_weight)
    embedding_coef = np.ascontiguousarray(head.coef[:, model._features.size :])
    scores += (weighted @ embedding_coef.T).astype(np.float64)
    scores += config.neighbours * nearest_by_label(
        embeddings, np.asarray(model._memory.embeddings), model._memory.targets, 3
    )
    return softmax((scores + head.intercept.astype(np.float64)) / head.temperature)


def test_tfidf_beside_the_encoder_gives_the_same_probabilities_to_the_bit(
    encoder: SentenceEncoder, model: EmbeddingModel
) -> None:
    counted = _counting_model(encoder, model)
    for texts in (PROBES, PROBES[:1], PROBES[2:]):
        np.testing.assert_array_equal(counted.probabilities(texts), _parts_in_order(counted, texts))


def test_a_busy_side_thread_leaves_the_tfidf_part_to_the_caller(
    encoder: SentenceEncoder, model: EmbeddingModel
) -> None:
    counted = _counting_model(encoder, model)
    release = threading.Event()
    blocker = side_thread().submit(release.wait)
    try:
        # The side thread waits on ``release``: the ticket's TF-IDF job never starts there.
        got = counted.probabilities(PROBES[:1])
    finally:
        release.set()
    assert blocker.result() is True
    np.testing.assert_array_equal(got, _parts_in_order(counted, PROBES[:1]))


async def test_long_texts_get_a_chunked_view_encoded_once(encoder: SentenceEncoder) -> None:
    recording = RecordingEncoder(encoder)
    filler = " ".join(f"word{i}" for i in range(CHUNK_WORDS))
    examples = [
        Example(f"{filler} {topic} {i}", label)
        for label, topic in (("Billing", "refund my payment"), ("Technical", "the app crashed"))
        for i in range(6)
    ]
    trained = await EmbeddingLearner(text_encoder=recording).train(
        examples, ["Billing", "Technical"]
    )
    selection = trained.selection
    assert selection is not None
    assert any("emb[chunks]" in c["name"] for c in selection["candidates"])
    # Each text encoded once whole, each of its two chunks once: no candidate re-encodes.
    encoded = [text for call in recording.calls for text in call]
    assert len(encoded) == 3 * len(examples)


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


async def test_a_warm_start_reuses_the_chosen_configuration_until_the_data_grows(
    model: EmbeddingModel, tickets: list[Example]
) -> None:
    previous = unpack(model.to_bytes()).meta
    chosen = previous["selection"]["chosen"]
    assert previous["selection"]["selected_on"] == len(tickets)
    # A few more tickets: the configuration is reused, without validating other candidates.
    more = [*tickets, Example("card charged twice again", "Billing")]
    reused = await EmbeddingLearner().warm_started(previous).train(more, LABELS, seed=0)
    meta = unpack(reused.to_bytes()).meta["selection"]
    assert meta["chosen"] == chosen
    assert meta["reused_on"] == len(more)
    assert meta["selected_on"] == len(tickets)
    assert reused.configuration == model.configuration
    assert [p.label for p in await reused.predict(PROBES)] == ["Billing", "Technical", "Account"]
    # Twice the data: selection runs again and records what it tried.
    doubled = [*tickets, *(Example(f"{e.text} please", e.label) for e in tickets)]
    fresh = await EmbeddingLearner().warm_started(previous).train(doubled, LABELS, seed=0)
    fresh_meta = unpack(fresh.to_bytes()).meta["selection"]
    assert "reused_on" not in fresh_meta
    assert fresh_meta["selected_on"] == len(doubled)
    assert len(fresh_meta["candidates"]) > 1
    # Another learner's model, or other labels, never warm-start it.
    assert reusable_configuration({**previous, "learner": "tfidf"}, LABELS, len(more), {}) is None
    other_labels = {**previous, "labels": ["Billing", "Other"]}
    assert reusable_configuration(other_labels, LABELS, len(more), {"first": 0}) is None
