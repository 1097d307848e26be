from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from admin.training_process import train_in_subprocess
from classifier.artifacts import load_model, unpack
from classifier.errors import TrainingError
from classifier.examples import Example
from classifier.learners.encoder import encoder_available
from classifier.protocols import ProgressEvent
from data import DEFAULT_TAXONOMY


async def test_a_child_process_trains_the_model_and_reports_progress() -> None:
    examples = [Example(f"refund my invoice {i}", "Billing") for i in range(5)] + [
        Example(f"the app crashes with error {i}", "Technical") for i in range(5)
    ]
    events: list[ProgressEvent] = []
    first = await train_in_subprocess(
        "tfidf", DEFAULT_TAXONOMY, examples, ["Billing", "Technical"], progress=events.append
    )
    model = load_model(first.artefact)
    assert [p.label for p in await model.predict(["please refund", "error on start"])] == [
        "Billing",
        "Technical",
    ]
    assert first.predictions == {}
    assert events
    assert all(e.stage == "train" for e in events)

    # Given a holdout and the active model, the child predicts it with both.
    holdout = [Example("refund please", "Billing"), Example("crash error", "Technical")]
    second = await train_in_subprocess(
        "tfidf",
        DEFAULT_TAXONOMY,
        examples[1:9],
        ["Billing", "Technical"],
        holdout=holdout,
        active_artefact=first.artefact,
    )
    assert second.predictions["active"] == ["Billing", "Technical"]
    assert second.predictions["candidate"] == [
        p.label for p in await load_model(second.artefact).predict([e.text for e in holdout])
    ]


async def test_the_child_blends_the_taxonomy_in_when_asked() -> None:
    # A retrain hands the child the team's examples alone and lets it add the taxonomy's (and
    # self-label seen tickets with the embedding learner): here two departments have tickets,
    # and the other three learn from their descriptions only in the child.
    examples = [Example(f"refund my invoice {i}", "Billing") for i in range(5)] + [
        Example(f"the app crashes with error {i}", "Technical") for i in range(5)
    ]
    everyone = ["Technical", "Billing", "Account", "Product", "Other"]
    alone = await train_in_subprocess("tfidf", DEFAULT_TAXONOMY, examples, everyone)
    assert unpack(alone.artefact).meta["labels"] == ["Technical", "Billing"]
    blended = await train_in_subprocess(
        "tfidf", DEFAULT_TAXONOMY, examples, everyone, blend=["a ticket seen, unlabelled"]
    )
    assert unpack(blended.artefact).meta["labels"] == everyone
    assert set(load_model(blended.artefact).labels) == set(everyone)


async def test_a_failure_in_the_child_comes_back_as_its_message() -> None:
    with pytest.raises(TrainingError) as failure:
        await train_in_subprocess(
            "tfidf", DEFAULT_TAXONOMY, [Example("only one", "Billing")], ["Billing"]
        )
    assert str(failure.value)
    assert "exit code" not in str(failure.value)


@pytest.mark.embeddings
@pytest.mark.skipif(not encoder_available(), reason="the embeddings extra is not installed")
async def test_the_child_warm_starts_from_the_active_model_and_caches_vectors(
    tmp_path: Path,
) -> None:
    examples = [Example(f"refund my invoice {i}", "Billing") for i in range(6)] + [
        Example(f"the app crashes with error {i}", "Technical") for i in range(6)
    ]
    labels = ["Billing", "Technical"]
    first = await train_in_subprocess(
        "embedding", DEFAULT_TAXONOMY, examples, labels, vector_cache=tmp_path
    )
    kept = await asyncio.to_thread(lambda: list(tmp_path.glob("vectors-*.npz")))
    assert kept  # the texts' vectors were kept for the next retrain
    holdout = [Example("refund please", "Billing"), Example("crash error", "Technical")]
    more = [*examples, Example("charged twice on the invoice", "Billing")]
    second = await train_in_subprocess(
        "embedding",
        DEFAULT_TAXONOMY,
        more,
        labels,
        holdout=holdout,
        active_artefact=first.artefact,
        vector_cache=tmp_path,
    )
    selection = unpack(second.artefact).meta["selection"]
    assert selection["reused_on"] == len(more)
    assert selection["chosen"] == unpack(first.artefact).meta["selection"]["chosen"]
    assert second.predictions["candidate"] == ["Billing", "Technical"]
