"""Day one: a team's own departments, no labelled tickets, and later changes to the taxonomy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import select

from admin.context import AdminContext
from admin.errors import AdminError
from admin.report import build_report
from admin.retrain import RetrainRequest, retrain
from admin.taxonomy_training import (
    cross_validate,
    folds_for,
    learner_input,
    learner_input_with_tickets,
)
from classifier.examples import Example, Source
from classifier.protocols import ProgressCallback, ProgressEvent
from classifier.taxonomy import Taxonomy, parse_taxonomy
from data.db import model_registry as store
from data.db.schema import tickets
from data.db.training_set import is_holdout_ticket, recent_ticket_texts
from tests.admin.conftest import add_labelled_ticket
from tests.admin.keyword_learner import KeywordLearner, load_test_model

SHOP = """
[[department]]
name = "Shipping"
description = "Parcels, couriers, tracking numbers and late deliveries."
channel = "C1"
emoji = "truck"
examples = [
    "my parcel has not arrived",
    "the courier lost my delivery",
    "tracking number shows nothing",
]

[[department]]
name = "Returns"
description = "Sending goods back, return labels and exchanges."
channel = "C2"
emoji = "back"
examples = [
    "i want to send the jacket back",
    "please send a return label",
    "exchange shoes for a bigger size",
]

[[department]]
name = "Warranty"
description = "Broken or faulty products under warranty, repairs and replacements."
channel = "C3"
emoji = "hammer"
examples = [
    "the kettle stopped working after a month",
    "is my broken blender under warranty",
    "repair for a faulty lamp",
]

[[department]]
name = "Wholesale"
description = "Bulk orders, trade accounts and reseller prices."
channel = "C4"
emoji = "package"
examples = [
    "we want to order 500 units for our store",
    "do you offer reseller prices",
    "open a trade account for my shop",
]
"""


def shop() -> Taxonomy:
    return parse_taxonomy(SHOP)


async def test_a_new_taxonomy_trains_and_promotes_with_no_labelled_tickets(
    make_context: Callable[..., AdminContext],
) -> None:
    # The starter files are the default departments': none of their labels fit this taxonomy.
    events: list[ProgressEvent] = []
    ctx = make_context(taxonomy=shop())
    outcome = await retrain(ctx, RetrainRequest(requested_by="UADMIN"), events.append)
    assert outcome.status == "promoted", outcome.message
    assert outcome.counts["train"] == 0
    assert outcome.counts["dropped_unknown_label"] == 17
    # No holdout: it was cross-validated over the taxonomy's own 12 example tickets.
    evaluate = [e.message for e in events if e.stage == "evaluate" and e.fraction == 1.0]
    assert evaluate
    assert evaluate[0].startswith("3-fold cross-validation on 12 tickets")
    async with ctx.db.transaction() as conn:
        active = await store.get_active_model(conn)
        assert active is not None
        assert active.metrics["evaluation"] == "3-fold cross-validation on 12 tickets"
        artefact = await store.get_artefact(conn, active.id)
    model = load_test_model(artefact)
    assert model.labels == ("Shipping", "Returns", "Warranty", "Wholesale")
    prediction = (await model.predict(["the courier says the parcel was delivered"]))[0]
    assert prediction.label == "Shipping"


async def test_a_changed_taxonomy_replaces_a_model_that_lacks_a_department(
    make_context: Callable[..., AdminContext],
) -> None:
    first = await retrain(make_context(taxonomy=shop()), RetrainRequest())
    assert first.status == "promoted"
    grown = parse_taxonomy(
        SHOP
        + """
[[department]]
name = "Gift cards"
description = "Buying, redeeming and checking the balance of gift cards and vouchers."
channel = "C5"
emoji = "gift"
examples = [
    "my gift card code does not work",
    "how much is left on my voucher",
]
"""
    )
    second = await retrain(make_context(taxonomy=grown), RetrainRequest())
    assert second.status == "promoted", second.message
    assert "the departments changed (+Gift cards)" in second.message
    # The gate says how it was evaluated, on how many tickets, with what interval.
    assert "evaluated by 3-fold cross-validation on 14 tickets: accuracy " in second.message
    assert "(95 % CI " in second.message
    # Same taxonomy again: nothing to compare on, so the active model stays.
    third = await retrain(make_context(taxonomy=grown), RetrainRequest())
    assert third.status == "kept"
    assert "no held-out tickets to compare it with the active model on" in third.message


async def test_corrections_of_a_renamed_department_carry_over(
    make_context: Callable[..., AdminContext],
) -> None:
    renamed = parse_taxonomy(
        SHOP.replace('name = "Wholesale"', 'name = "Trade"\nrenamed_from = "Wholesale"')
    )
    ctx = make_context(taxonomy=renamed)
    async with ctx.db.transaction() as conn:
        await add_labelled_ticket(conn, "bulk order of 200 mugs", "Wholesale", holdout=False)
        await add_labelled_ticket(conn, "a department we removed", "Legal", holdout=False)
    outcome = await retrain(ctx, RetrainRequest())
    assert outcome.counts["by_label"] == {"Trade": 1}
    assert outcome.counts["dropped_unknown_label"] == 18


async def test_generate_fills_every_department_and_evaluates_without_a_starter_test_set(
    make_context: Callable[..., AdminContext],
) -> None:
    asked: list[tuple[str, ...]] = []

    async def generate(
        count: int, labels: Sequence[str], seeds: Sequence[Example], progress: ProgressCallback
    ) -> list[Example]:
        asked.append(tuple(labels))
        return [
            Example(f"{label} question number {i}", label) for label in labels for i in range(2)
        ]

    ctx = make_context(taxonomy=shop(), generate=generate)
    outcome = await retrain(ctx, RetrainRequest(generate=8))
    assert asked == [("Shipping", "Returns", "Warranty", "Wholesale")]
    assert outcome.status == "promoted", outcome.message
    assert outcome.counts["by_source"] == {"generated": 8}


def test_the_prompted_learner_gets_every_department_and_the_example_tickets() -> None:
    given = learner_input("openai", [], shop())
    assert given.labels == ("Shipping", "Returns", "Warranty", "Wholesale")
    assert len(given.examples) == 12
    assert {e.source for e in given.examples} == {Source.TAXONOMY}
    # A fine-tune learns only from real examples.
    assert learner_input("openai-finetune", [], shop()).labels == ()


def test_folds_deal_each_department_round_robin() -> None:
    examples = [*(Example(str(i), "A") for i in range(4)), Example("x", "B")]
    assert folds_for(examples) == [0, 1, 2, 3, 0]


async def test_cross_validation_never_trains_on_the_ticket_it_predicts() -> None:
    seen_in_training: list[set[str]] = []

    class Recording(KeywordLearner):
        async def train(self, examples, labels, *, seed=0, progress=None):  # type: ignore[no-untyped-def]
            seen_in_training.append({e.text for e in examples})
            return await super().train(examples, labels, seed=seed)

    result = await cross_validate(Recording(), "auto", [], shop())
    assert result is not None
    assert result.folds == 3
    assert len(result.examples) == 12
    for fold, texts in enumerate(seen_in_training):
        held = {
            e.text
            for e, f in zip(result.examples, folds_for(result.examples), strict=True)
            if f == fold
        }
        assert held
        assert not held & texts


async def test_the_report_without_a_holdout_says_how_the_model_was_evaluated(
    make_context: Callable[..., AdminContext],
) -> None:
    ctx = make_context(taxonomy=shop())
    await retrain(ctx, RetrainRequest())
    with pytest.raises(AdminError) as raised:
        await build_report(ctx, requested_by="UADMIN")
    message = str(raised.value)
    assert "There are no held-out tickets for these departments yet" in message
    assert "model #1 was evaluated by 3-fold cross-validation on 12 tickets: accuracy" in message
    assert "(95 % CI " in message


async def test_self_training_reads_the_latest_tickets_outside_the_holdout(
    make_context: Callable[..., AdminContext],
) -> None:
    ctx = make_context(taxonomy=shop())
    async with ctx.db.transaction() as conn:
        ids = [
            await add_labelled_ticket(
                conn, f"parcel number {i} is late", "Shipping", holdout=i == 1
            )
            for i in range(3)
        ]
        texts = await recent_ticket_texts(conn, 100)
        rows = (await conn.execute(select(tickets.c.id, tickets.c.text))).all()
    outside = [
        text for ticket_id, text in sorted(rows, reverse=True) if not is_holdout_ticket(ticket_id)
    ]
    assert texts == outside
    assert len(texts) < len(rows)  # some tickets fell in the holdout on the way
    assert ids
    # Only the embedding learner self-labels (no other learner loads the encoder).
    given = await learner_input_with_tickets(ctx.db, KeywordLearner(), "auto", [], shop())
    assert not {e.text for e in given.examples} & set(texts)
