from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bot.prediction_batch import PredictionBatch
from classifier.protocols import Prediction


class CountingClassifier:
    """Labels a text by its first word; records each call; "boom" makes a call fail."""

    model_id = "counting"
    labels = ("a", "b")

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.calls.append(list(texts))
        await asyncio.sleep(0.01)  # a model that takes time: others queue meanwhile
        if "boom" in texts:
            raise ValueError("cannot predict boom")
        return [
            Prediction(t.split()[0], 0.9, ((t.split()[0], 0.9),), "counting", 1.0) for t in texts
        ]


async def test_concurrent_texts_share_calls_and_a_bad_one_fails_alone() -> None:
    batch = PredictionBatch()
    model = CountingClassifier()
    texts = [f"{'a' if n % 2 else 'b'} text {n}" for n in range(20)]
    results = await asyncio.gather(
        *(batch.predict(model, t) for t in texts),
        batch.predict(model, "boom"),
        return_exceptions=True,
    )
    assert [r.label for r in results[:-1]] == [t[0] for t in texts]  # type: ignore[union-attr]
    assert isinstance(results[-1], ValueError)
    # All twenty-one queued before the classifier was free, so they share one call; it fails
    # because of "boom" and is repeated text by text.
    assert model.calls[0] == [*texts, "boom"]
    assert model.calls[1:] == [[t] for t in [*texts, "boom"]]


async def test_an_idle_batch_predicts_at_once() -> None:
    batch = PredictionBatch()
    model = CountingClassifier()
    assert (await batch.predict(model, "a alone")).label == "a"
    assert (await batch.predict(model, "b alone")).label == "b"
    assert model.calls == [["a alone"], ["b alone"]]
    with pytest.raises(ValueError, match="boom"):
        await batch.predict(model, "boom")
