"""The triage threshold fitted on how often the model was right at each confidence."""

from __future__ import annotations

from classifier.calibration import adaptive_threshold


def _outcomes(rate_at: dict[float, float], per_bin: int = 40) -> list[tuple[float, bool]]:
    out: list[tuple[float, bool]] = []
    for confidence, rate in rate_at.items():
        right = round(rate * per_bin)
        out += [(confidence, True)] * right + [(confidence, False)] * (per_bin - right)
    return out


def test_an_underconfident_model_sends_fewer_tickets_to_triage() -> None:
    # Right 90 % of the time already at 0.35: the fixed 0.5 would send those to a person.
    outcomes = _outcomes({0.25: 0.3, 0.35: 0.9, 0.5: 0.95, 0.8: 1.0})
    assert adaptive_threshold(outcomes, fallback=0.5, target=0.75) == 0.35


def test_an_overconfident_model_sends_more_tickets_to_triage() -> None:
    # Only 50-60 % right up to 0.7 confidence.
    outcomes = _outcomes({0.5: 0.5, 0.6: 0.55, 0.7: 0.6, 0.9: 0.95})
    assert adaptive_threshold(outcomes, fallback=0.5, target=0.75) == 0.9


def test_too_few_outcomes_keep_the_configured_threshold_and_never_right_sends_all() -> None:
    assert adaptive_threshold([(0.9, True)] * 10, fallback=0.42) == 0.42
    never = _outcomes({0.5: 0.1, 0.9: 0.2}, per_bin=60)
    assert adaptive_threshold(never, fallback=0.5) == 1.0
