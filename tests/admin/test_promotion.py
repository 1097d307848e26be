from __future__ import annotations

from admin.promotion import ModelScore, decide_promotion

ACTIVE = ModelScore(macro_f1=0.80, accuracy=0.82, recall={"Billing": 0.90, "Technical": 0.70})


def test_first_model_is_promoted() -> None:
    decision = decide_promotion(ModelScore(0.2, 0.2), None, tolerance=0.0, max_recall_drop=0.05)
    assert decision.promote
    assert "no active model" in decision.summary


def test_better_candidate_is_promoted() -> None:
    candidate = ModelScore(0.85, 0.86, {"Billing": 0.88, "Technical": 0.80})
    decision = decide_promotion(candidate, ACTIVE, tolerance=0.0, max_recall_drop=0.05)
    assert decision.promote
    assert decision.summary == "Promoted: macro-F1 0.800 → 0.850, no department worse."


def test_lower_macro_f1_is_kept_out_unless_within_tolerance() -> None:
    candidate = ModelScore(0.78, 0.80, {"Billing": 0.90, "Technical": 0.70})
    refused = decide_promotion(candidate, ACTIVE, tolerance=0.0, max_recall_drop=0.05)
    assert not refused.promote
    assert refused.reasons == ("macro-F1 would fall from 0.800 to 0.780",)
    assert decide_promotion(candidate, ACTIVE, tolerance=0.03, max_recall_drop=0.05).promote


def test_a_department_losing_recall_blocks_promotion_even_with_better_macro_f1() -> None:
    candidate = ModelScore(0.90, 0.90, {"Billing": 0.80, "Technical": 0.99})
    decision = decide_promotion(candidate, ACTIVE, tolerance=0.0, max_recall_drop=0.05)
    assert not decision.promote
    assert decision.summary == (
        "Kept the active model: Billing recall would fall from 90% to 80% "
        "(more than the allowed 5%)."
    )
    assert decide_promotion(candidate, ACTIVE, tolerance=0.0, max_recall_drop=0.10).promote


def test_a_recall_fall_counts_only_when_it_is_enough_tickets_or_all_of_them() -> None:
    active = ModelScore(0.80, 0.80, {"Billing": 0.92, "Technical": 1.0}, {"Billing": 25})
    two_lost = ModelScore(0.80, 0.80, {"Billing": 0.84, "Technical": 1.0}, {"Billing": 25})
    three_lost = ModelScore(0.80, 0.80, {"Billing": 0.80, "Technical": 1.0}, {"Billing": 25})
    rules = {"tolerance": 0.0, "max_recall_drop": 0.05, "min_lost_tickets": 3}
    assert decide_promotion(two_lost, active, **rules).promote
    assert not decide_promotion(three_lost, active, **rules).promote
    # A department with one held-out ticket that the candidate loses has lost all of it.
    one = ModelScore(0.80, 0.80, {"Billing": 1.0, "Technical": 1.0}, {"Technical": 1})
    none_right = ModelScore(0.80, 0.80, {"Billing": 1.0, "Technical": 0.0}, {"Technical": 1})
    refused = decide_promotion(none_right, one, **rules)
    assert refused.reasons == (
        "Technical recall would fall from 100% to 0% (more than the allowed 5%)",
    )
    # Without counts (older scores), every fall beyond the allowed share counts, as before.
    assert not decide_promotion(ModelScore(0.8, 0.8, {"Billing": 0.84}), ACTIVE, **rules).promote
