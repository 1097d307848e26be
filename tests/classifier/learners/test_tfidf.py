from __future__ import annotations

import asyncio

import numpy as np
import pytest
from scipy.sparse import hstack

from classifier.artifacts import load_model, pack, unpack
from classifier.errors import ModelFormatError, TrainingError
from classifier.examples import Example
from classifier.learners.tfidf import TfidfLearner, TfidfModel
from classifier.protocols import ProgressEvent, TrainedModel
from tests.classifier.learners.conftest import LABELS

PROBES = ["I got charged two times this month", "the app crashed with an error", "reset password"]


@pytest.fixture(scope="module")
def model(tickets: list[Example]) -> TfidfModel:
    # asyncio.run: a module-wide fixture cannot share the tests' per-function event loops.
    return asyncio.run(TfidfLearner().train(tickets, LABELS, seed=0))


async def test_learns_the_obvious_departments(model: TfidfModel) -> None:
    predictions = await model.predict(PROBES)
    assert [p.label for p in predictions] == ["Billing", "Technical", "Account"]
    assert isinstance(model, TrainedModel)
    assert model.learner == "tfidf"
    assert model.model_id.startswith("tfidf-")
    assert model.labels == LABELS


async def test_confidences_are_a_probability_ranking(model: TfidfModel) -> None:
    for prediction in await model.predict([*PROBES, "completely unrelated words"]):
        probabilities = [p for _, p in prediction.ranking]
        assert sum(probabilities) == pytest.approx(1.0)
        assert probabilities == sorted(probabilities, reverse=True)
        assert prediction.ranking[0] == (prediction.label, prediction.confidence)
        assert {label for label, _ in prediction.ranking} == set(LABELS)
        assert prediction.runner_ups[0][0] != prediction.label


async def test_round_trip_through_bytes_predicts_identically(model: TfidfModel) -> None:
    data = model.to_bytes()
    assert unpack(data).kind == "tfidf"
    assert b"pickle" not in data[:200]
    loaded = load_model(data)
    assert isinstance(loaded, TfidfModel)
    assert loaded.model_id == model.model_id
    assert loaded.labels == model.labels
    np.testing.assert_array_equal(loaded.probabilities(PROBES), model.probabilities(PROBES))
    assert loaded.to_bytes() != b""


async def test_training_is_deterministic_for_a_seed(tickets: list[Example]) -> None:
    first = await TfidfLearner().train(tickets, LABELS, seed=3)
    second = await TfidfLearner().train(tickets, LABELS, seed=3)
    assert first.model_id == second.model_id


async def test_fifty_thousand_characters_are_fine(model: TfidfModel) -> None:
    [prediction] = await model.predict(["refund my payment " * 2800])
    assert prediction.label == "Billing"


def test_features_equal_scikit_learns_tfidf(model: TfidfModel, tickets: list[Example]) -> None:
    """The hand-rolled transform gives TfidfVectorizer's own rows (word part, then char part)."""
    features = model._features
    texts = [
        *(e.text for e in tickets),
        *PROBES,
        "",
        "qqqq zzzz",  # nothing in the vocabulary
        "Ünïcödé café, naïve résumé",
        "refund refund refund refund",  # repeated terms: sublinear tf
        "x" * 20_000,  # cut at max_chars
    ]
    cut = [t[: features.settings.max_chars] for t in texts]
    wanted = hstack([features._word.transform(cut), features._char.transform(cut)], format="csr")
    got = features.transform(texts)
    assert got.shape == wanted.shape
    assert got.dtype == np.float32
    assert got.nnz == wanted.nnz
    np.testing.assert_allclose(got.toarray(), wanted.toarray(), atol=1e-6)
    assert features.transform([]).shape == (0, features.size)


async def test_reports_progress(tickets: list[Example]) -> None:
    events: list[ProgressEvent] = []
    await TfidfLearner().train(tickets, LABELS, progress=events.append)
    assert events[-1].fraction == 1.0


async def test_labels_without_examples_are_left_out(tickets: list[Example]) -> None:
    trained = await TfidfLearner().train(tickets, (*LABELS, "Other"))
    assert trained.labels == LABELS


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        ([], "no training examples"),
        ([Example("a", "Billing"), Example("b", "Billing")], "only one label"),
        (
            [Example("a", "Billing"), Example("b", "Billing"), Example("c", "Technical")],
            "at least 2 examples; too few for 'Technical'",
        ),
        (
            [Example("a", "Billing"), Example("b", "Billing"), Example("c", "Sales")],
            "outside the label set: 'Sales'",
        ),
    ],
)
async def test_bad_training_data_is_a_one_line_training_error(
    examples: list[Example], message: str
) -> None:
    with pytest.raises(TrainingError, match=message) as caught:
        await TfidfLearner().train(examples, ("Billing", "Technical"))
    assert "\n" not in str(caught.value)


def test_bytes_that_are_not_ours_are_refused() -> None:
    with pytest.raises(ModelFormatError, match="not a triage model"):
        load_model(b"PK\x03\x04 a zip file")


def test_corrupt_payload_is_refused(model: TfidfModel) -> None:
    artefact = unpack(model.to_bytes())
    with pytest.raises(ModelFormatError, match="corrupt"):
        load_model(pack("tfidf", artefact.meta, b"garbage"))
    with pytest.raises(ModelFormatError, match="do not match"):
        load_model(pack("tfidf", {**artefact.meta, "labels": ["A", "B"]}, artefact.payload))
