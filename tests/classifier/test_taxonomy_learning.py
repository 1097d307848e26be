from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from classifier.examples import Example, Source
from classifier.learners.tfidf import TfidfLearner
from classifier.taxonomy import parse_taxonomy
from classifier.taxonomy_learning import (
    TaxonomyLearner,
    TaxonomySettings,
    readable_name,
    taxonomy_examples,
    with_taxonomy,
)

TAXONOMY = parse_taxonomy(
    """
[[department]]
name = "Shipping"
description = "Parcels, couriers, tracking numbers and late deliveries."
channel = "C1"
emoji = "truck"
examples = ["My parcel has not arrived after two weeks"]

[[department]]
name = "Returns"
description = "Sending goods back, return labels, exchanges and refunds for returned items."
channel = "C2"
emoji = "back"
keywords = ["return label", "exchange"]

[[department]]
name = "Warranty_claims"
description = "Broken or faulty products still under warranty, repairs and replacements."
channel = "C3"
emoji = "hammer"
"""
)


def bag_of_words(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """A deterministic stand-in for a sentence encoder: hashed words, unit length."""
    out = np.zeros((len(texts), 256), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.casefold().replace(",", " ").replace(".", " ").split():
            out[row, int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % 256] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def test_readable_name_turns_identifiers_into_words() -> None:
    assert readable_name("Refund_not_showing_up") == "Refund not showing up"
    assert readable_name("reverted_card_payment?") == "reverted card payment"


def test_every_department_gets_pseudo_examples_and_the_prior_fades_with_real_ones() -> None:
    pseudo = taxonomy_examples(TAXONOMY)
    assert {e.label for e in pseudo} == set(TAXONOMY.labels)
    assert all(e.source is Source.TAXONOMY for e in pseudo)
    texts = {e.text for e in pseudo}
    assert (
        "Warranty claims: Broken or faulty products still under warranty, repairs and replacements."
    ) in texts
    assert "return label, exchange" in texts
    faded = taxonomy_examples(TAXONOMY, {"Shipping": 20}, TaxonomySettings(fade_at=20))
    shipping = [e.text for e in faded if e.label == "Shipping"]
    # The description and name are gone; the team's own example ticket stays.
    assert shipping == ["My parcel has not arrived after two weeks"]


def test_unlabelled_tickets_are_self_labelled_by_the_nearest_department() -> None:
    unlabelled = [
        "the couriers lost my parcels, tracking numbers show nothing",
        "need a return label for an exchange",
        "the product is broken is it under warranty for repairs",
    ]
    blended = with_taxonomy([], TAXONOMY, unlabelled=unlabelled, encode=bag_of_words)
    found = {e.text: e.label for e in blended if e.text in unlabelled}
    assert found == dict(zip(unlabelled, ("Shipping", "Returns", "Warranty_claims"), strict=True))
    # Departments with enough real examples take no self-labelled tickets.
    many = [Example(f"parcel {i} is late", "Shipping") for i in range(3)]
    faded = with_taxonomy(
        many,
        TAXONOMY,
        unlabelled=unlabelled,
        encode=bag_of_words,
        settings=TaxonomySettings(self_label_below=3),
    )
    assert unlabelled[0] not in {e.text for e in faded}


async def test_a_light_model_from_the_taxonomy_alone_routes_clear_tickets() -> None:
    learner = TaxonomyLearner(TfidfLearner(), TAXONOMY)
    model = await learner.train([], TAXONOMY.labels)
    assert model.labels == TAXONOMY.labels
    predictions = await model.predict(
        ["my parcel is late, where is the courier?", "please send me a return label"]
    )
    assert [p.label for p in predictions] == ["Shipping", "Returns"]
