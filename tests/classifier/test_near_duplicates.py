"""Near-duplicate routing: a ticket very like a recent correction takes its human label."""

from __future__ import annotations

import pytest

from classifier.near_duplicates import (
    NGRAM_THRESHOLD,
    CorrectedTicket,
    NearDuplicateIndex,
    ngram_vectors,
)


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
