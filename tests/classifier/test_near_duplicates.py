"""Near-duplicate routing: a ticket very like a recent correction takes its human label."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from classifier.near_duplicates import (
    ASKED_CAPACITY,
    NGRAM_THRESHOLD,
    VOTE_WEIGHT,
    CorrectedTicket,
    NearDuplicateIndex,
    blended,
    ngram_vectors,
    vote_weight_for,
)
from classifier.protocols import Prediction


def _index(capacity: int = 100) -> NearDuplicateIndex:
    return NearDuplicateIndex(ngram_vectors, threshold=NGRAM_THRESHOLD, capacity=capacity)


def test_the_same_question_again_is_routed_by_the_correction() -> None:
    index = _index()
    index.add([CorrectedTicket(123, "The export to CSV button does nothing", "Technical", "UBOB")])
    again, other = index.nearest(
        ["the export to csv button does nothing!", "Please refund my last invoice"]
    )
    assert again is not None
    assert (again.ticket_id, again.label, again.corrected_by) == (123, "Technical", "UBOB")
    assert again.similarity >= NGRAM_THRESHOLD
    assert other is None


def test_the_latest_label_wins_and_an_undone_correction_is_forgotten() -> None:
    index = _index()
    text = "I was charged twice for my subscription this month"
    index.add([CorrectedTicket(7, text, "Account", "UANN")])
    index.add([CorrectedTicket(7, text, "Billing", "UBOB")])
    assert len(index) == 1
    (match,) = index.nearest([text])
    assert match is not None
    assert (match.label, match.corrected_by) == ("Billing", "UBOB")
    index.remove(7)
    assert index.nearest([text]) == [None]


def test_only_the_most_recent_corrections_are_kept() -> None:
    index = _index(capacity=2)
    index.add(
        [
            CorrectedTicket(1, "alpha beta gamma delta", "Technical", "U1"),
            CorrectedTicket(2, "invoice refund charged twice", "Billing", "U1"),
            CorrectedTicket(3, "password reset link expired", "Account", "U1"),
        ]
    )
    assert len(index) == 2
    assert index.nearest(["alpha beta gamma delta"]) == [None]


def test_a_ticket_is_not_its_own_near_duplicate() -> None:
    index = _index()
    index.add([CorrectedTicket(5, "Dark mode for the mobile app please", "Product", "U1")])
    assert index.nearest(["Dark mode for the mobile app please"], exclude=[5]) == [None]


def test_an_empty_index_matches_nothing_and_a_bad_threshold_is_refused() -> None:
    assert _index().nearest(["anything"]) == [None]
    with pytest.raises(ValueError, match="threshold"):
        NearDuplicateIndex(ngram_vectors, threshold=0.0)


def test_a_young_index_takes_a_lower_threshold_until_it_holds_enough_corrections() -> None:
    index = NearDuplicateIndex(ngram_vectors, threshold=0.9, young_threshold=0.5, young_until=2)
    index.add([CorrectedTicket(1, "refund for the invoice of march", "Billing", "U1")])
    assert index.threshold == 0.5
    (young,) = index.nearest(["I need a refund for an invoice from march"])
    assert young is not None
    assert young.similarity < 0.9
    index.add([CorrectedTicket(2, "password reset link expired", "Account", "U1")])
    assert index.threshold == 0.9
    assert index.nearest(["I need a refund for an invoice from march"]) == [None]


def test_a_confirmed_ticket_votes_but_is_never_a_near_duplicate() -> None:
    index = _index()
    text = "I was charged twice for my subscription this month"
    index.add([CorrectedTicket(9, text, "Billing", "", confirmed=True)])
    assert len(index) == 0  # corrections only
    assert index.nearest([text]) == [None]
    assert index.similarities([text]) == [None]
    assert index.vote([text]) == [{"Billing": pytest.approx(1.0)}]
    # Corrected later: the same ticket is now a correction, and a near-duplicate.
    index.add([CorrectedTicket(9, text, "Account", "UBOB")])
    (match,) = index.nearest([text])
    assert match is not None
    assert match.label == "Account"


def test_the_vote_weights_the_more_similar_tickets_more() -> None:
    index = _index()
    index.add(
        [
            CorrectedTicket(1, "refund my last invoice please", "Billing", "U1"),
            CorrectedTicket(2, "refund the invoice I paid twice", "Billing", "", confirmed=True),
            CorrectedTicket(3, "the password reset link has expired", "Account", "U1"),
        ]
    )
    (near_billing,) = index.vote(["please refund my last invoice"], neighbours=3, floor=0.0)
    assert set(near_billing) == {"Billing", "Account"}
    assert sum(near_billing.values()) == pytest.approx(1.0)
    assert near_billing["Billing"] > 0.9
    (only_nearest,) = index.vote(["please refund my last invoice"], neighbours=1)
    assert only_nearest == {"Billing": pytest.approx(1.0)}
    # A flat temperature counts each of the neighbours nearly alike.
    (flat,) = index.vote(
        ["please refund my last invoice"], neighbours=3, temperature=1e6, floor=0.0
    )
    assert flat["Account"] == pytest.approx(1 / 3, abs=1e-3)
    assert index.vote(["x"], exclude=[1], floor=0.0)[0]["Billing"] > 0  # the other Billing one
    # The bot's floor: the unrelated password ticket does not vote, nor anything for "x".
    assert set(index.vote(["please refund my last invoice"], neighbours=3)[0]) == {"Billing"}
    assert index.vote(["x"]) == [{}]
    assert _index().vote(["anything"]) == [{}]
    # The weight grows with the labelled tickets indexed: 3 of 10, in full from 3.
    assert index.vote_weight(0.6) == pytest.approx(0.18)
    assert index.vote_weight(0.6, full_at=3) == pytest.approx(0.6)


def test_confirmed_tickets_do_not_push_corrections_out() -> None:
    index = _index(capacity=1)
    index.add([CorrectedTicket(1, "invoice refund charged twice", "Billing", "U1")])
    index.add(
        [
            CorrectedTicket(2, "password reset link expired", "Account", "", confirmed=True),
            CorrectedTicket(3, "dark mode for the app", "Product", "", confirmed=True),
        ]
    )
    assert len(index) == 1
    assert index.nearest(["invoice refund charged twice"])[0] is not None
    assert index.vote(["password reset link expired"], neighbours=5)[0].get("Account") is None


def test_the_blend_moves_a_hesitant_model_and_keeps_a_sure_one() -> None:
    hesitant = Prediction("Product", 0.4, (("Product", 0.4), ("Billing", 0.35)), "m1", 2.0)
    moved = blended(hesitant, {"Billing": 1.0}, 0.6)
    assert (moved.label, moved.model_id, moved.latency_ms) == ("Billing", "m1", 2.0)
    assert moved.confidence == pytest.approx(0.4 * 0.35 + 0.6)
    assert moved.ranking[1] == ("Product", pytest.approx(0.4 * 0.4))
    sure = Prediction("Product", 0.98, (("Product", 0.98), ("Billing", 0.02)), "m1")
    assert blended(sure, {"Billing": 0.5, "Product": 0.5}, 0.6).label == "Product"
    assert blended(hesitant, {}, 0.6) is hesitant
    assert blended(hesitant, {"Billing": 1.0}, 0.0) is hesitant
    assert vote_weight_for("embedding") == VOTE_WEIGHT
    assert vote_weight_for("tfidf") == 0.0


def test_a_ticket_asked_about_twice_is_vectorised_once() -> None:
    """Its vote and its near-duplicate question share one vectorising (one encoder pass with
    sentence embeddings); a batch and a ticket not asked about recently are vectorised anew."""
    asked: list[list[str]] = []

    def counting(texts: Sequence[str]) -> Any:
        asked.append(list(texts))
        return ngram_vectors(texts)

    index = NearDuplicateIndex(counting, threshold=NGRAM_THRESHOLD)
    index.add([CorrectedTicket(1, "The export to CSV button does nothing", "Technical", "UBOB")])
    ticket = "the export to csv button does nothing!"
    (vote,) = index.vote([ticket])
    (match,) = index.nearest([ticket])
    assert match is not None
    assert match.label == "Technical"
    assert vote == {"Technical": pytest.approx(1.0)}
    assert asked == [["The export to CSV button does nothing"], [ticket]]
    index.nearest(["Please refund my last invoice", ticket])  # a batch: vectorised as one
    assert asked[-1] == ["Please refund my last invoice", ticket]
    for n in range(ASKED_CAPACITY):  # the ticket drops out of the recent ones
        index.vote([f"another ticket number {n}"])
    index.vote([ticket])
    assert asked[-1] == [ticket]
