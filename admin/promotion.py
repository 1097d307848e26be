"""The promotion gate: a candidate replaces the active model only if it is not worse.

Both are scored on the same holdout. The candidate must (1) keep macro-F1 within
``tolerance`` of the active model's, and (2) not lose more than ``max_recall_drop`` recall on
any department the holdout contains. Either failure keeps the active model, and the decision
says why in words an admin can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelScore:
    """The figures the gate looks at, for one model on the holdout."""

    macro_f1: float
    accuracy: float
    #: department -> recall, for departments with holdout examples.
    recall: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PromotionDecision:
    """Whether to promote, and the reasons (failures first, then what improved)."""

    promote: bool
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        """One line for a person."""
        verdict = "Promoted" if self.promote else "Kept the active model"
        return f"{verdict}: {'; '.join(self.reasons)}." if self.reasons else f"{verdict}."


def decide_promotion(
    candidate: ModelScore,
    active: ModelScore | None,
    *,
    tolerance: float,
    max_recall_drop: float,
) -> PromotionDecision:
    """Apply the gate (see the module docstring)."""
    if active is None:
        return PromotionDecision(True, ("there is no active model yet",))
    failures: list[str] = []
    floor = active.macro_f1 - tolerance
    if candidate.macro_f1 < floor - 1e-12:
        allowed = f" (tolerance {tolerance:.2f})" if tolerance else ""
        failures.append(
            f"macro-F1 would fall from {active.macro_f1:.3f} to {candidate.macro_f1:.3f}{allowed}"
        )
    for label in sorted(set(active.recall) & set(candidate.recall)):
        before, after = active.recall[label], candidate.recall[label]
        if before - after > max_recall_drop + 1e-12:
            failures.append(
                f"{label} recall would fall from {before:.0%} to {after:.0%} "
                f"(more than the allowed {max_recall_drop:.0%})"
            )
    if failures:
        return PromotionDecision(False, tuple(failures))
    return PromotionDecision(
        True, (f"macro-F1 {active.macro_f1:.3f} → {candidate.macro_f1:.3f}, no department worse",)
    )
