from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix

from classifier.examples import Example, Source
from classifier.learners.tfidf import TfidfLearner
from classifier.taxonomy import parse_taxonomy
from classifier.taxonomy_learning import (
    TaxonomyLearner,
    TaxonomySettings,
    neighbour_graph,
    propagate_labels,
    readable_name,
    self_labelled,
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


def test_the_neighbour_graph_links_each_ticket_to_its_most_similar_ones() -> None:
    texts = ["parcel late", "parcel lost", "return label", "return exchange"]
    vectors = bag_of_words(["a", "a b", "c", "c d"])
    graph = neighbour_graph(vectors, texts, neighbours=1, text_share=0.0).toarray()
    assert np.allclose(graph, graph.T)
    assert np.all(np.diag(graph) == 0)
    linked = {(int(i), int(j)) for i, j in zip(*np.nonzero(graph), strict=True)}
    assert linked == {(0, 1), (1, 0), (2, 3), (3, 2)}
    # Degree-normalised: D^-1/2 W D^-1/2 has largest eigenvalue 1.
    assert np.isclose(np.linalg.eigvalsh(graph).max(), 1.0)


def test_the_neighbour_graph_reads_the_words_when_the_embeddings_cannot_tell() -> None:
    texts = [
        "parcel late courier",
        "return label exchange",
        "courier parcel late",
        "exchange return",
    ]
    same = np.ones((4, 8), dtype=np.float32) / np.sqrt(8)
    graph = neighbour_graph(same, texts, neighbours=1, text_share=0.5).toarray()
    linked = {(int(i), int(j)) for i, j in zip(*np.nonzero(graph), strict=True)}
    assert linked == {(0, 2), (2, 0), (1, 3), (3, 1)}


def test_one_ticket_has_no_neighbours() -> None:
    graph = neighbour_graph(bag_of_words(["alone"]), ["alone"], neighbours=5, text_share=0.25)
    assert graph.shape == (1, 1)
    assert graph.nnz == 0


def test_propagation_carries_a_label_along_a_chain_of_neighbours() -> None:
    # A chain 0 - 1 - 2 - 3 - 4: only the ends have a start (0: first label, 4: second).
    chain = np.zeros((5, 5))
    for i in range(4):
        chain[i, i + 1] = chain[i + 1, i] = 0.5
    start = np.zeros((5, 2))
    start[0, 0] = start[4, 1] = 1.0
    spread = propagate_labels(csr_matrix(chain), start, alpha=0.9, steps=50)
    assert list(spread.argmax(axis=1)[[0, 1, 3, 4]]) == [0, 0, 1, 1]
    assert np.allclose(propagate_labels(csr_matrix(chain), start, alpha=0.0, steps=50), start)


def test_propagation_relabels_a_ticket_whose_neighbours_all_disagree_with_its_prototype() -> None:
    shipping = [
        "parcel late courier tracking",
        "courier tracking parcel late",
        "tracking late parcel courier",
        "parcel courier late tracking number",
    ]
    # Nearest the Returns prototype by its embedding, but its words are all Shipping's.
    odd = "late parcel courier tracking return"
    returns = ["return label exchange refund", "exchange refund return label"]
    pool = [*shipping, odd, *returns]
    vectors = bag_of_words(pool)
    vectors[4] = bag_of_words(["return label exchange refund"])[0]
    labelled = [
        Example("parcel courier late", "Shipping", Source.TAXONOMY),
        Example("return label exchange", "Returns", Source.TAXONOMY),
    ]
    labels = ("Shipping", "Returns")

    def found(settings: TaxonomySettings, uncapped: Sequence[str] = labels) -> dict[str, str]:
        out = self_labelled(
            labelled, labels, pool, bag_of_words, settings, embeddings=vectors, uncapped=uncapped
        )
        return {e.text: e.label for e in out}

    alone = TaxonomySettings(propagate_from=10)
    spread = TaxonomySettings(neighbours=3, text_share=0.9, propagate_from=3, wide_from=10)
    assert found(alone)[odd] == "Returns"
    assert found(spread)[odd] == "Shipping"
    # Spreading is only for departments with no real examples (all capped here: none spreads).
    assert found(spread, uncapped=())[odd] == "Returns"
    assert all(found(spread)[t] == "Shipping" for t in shipping)
    assert all(found(spread)[t] == "Returns" for t in returns)


def test_propagation_waits_for_enough_tickets_per_department_and_widens_with_more() -> None:
    settings = TaxonomySettings(
        propagate_from=20, propagation=0.9, wide_from=50, wide_propagation=0.99
    )
    assert settings.propagation_for(19 * 4, 4) == 0.0
    assert settings.propagation_for(20 * 4, 4) == 0.9
    assert settings.propagation_for(49 * 4, 4) == 0.9
    assert settings.propagation_for(50 * 4, 4) == 0.99


def test_a_department_without_real_examples_keeps_every_ticket_others_the_most_confident() -> None:
    unlabelled = [
        "parcel late courier",
        "parcel lost courier tracking",
        "courier never brought the parcel",
        "return label exchange",
    ]
    settings = TaxonomySettings(self_labelled_per_department=1)
    alone = with_taxonomy(
        [], TAXONOMY, unlabelled=unlabelled, encode=bag_of_words, settings=settings
    )
    assert sum(e.text in unlabelled[:3] and e.label == "Shipping" for e in alone) == 3
    one = [Example("where is my parcel, the courier is late", "Shipping")]
    capped = with_taxonomy(
        one, TAXONOMY, unlabelled=unlabelled, encode=bag_of_words, settings=settings
    )
    assert sum(e.text in unlabelled[:3] and e.label == "Shipping" for e in capped) == 1
