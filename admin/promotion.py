"""The promotion gate: a candidate replaces the active model only if it is not worse.

Both are scored on the same holdout. The candidate must (1) keep macro-F1 within
``tolerance`` of the active model's, and (2) not lose more than ``max_recall_drop`` recall on
any department the holdout contains, counting a department's fall only when it is at least
``min_lost_tickets`` of its held-out tickets, or all it had right (when the scores say how
many it has): on the
starter test set's 25 tickets a department, learning 10-160 tickets of another team moved up
to 2 of them (Bitext, both local learners), which a 5 % rule alone reads as a department
sacrificed. Either failure
keeps the active model, and the decision
says why in words an admin can act on.

On the team's own held-out tickets the gate also allows for chance (``PairedNoise``): the same
few dozen tickets scored by two models differ by a ticket or two however good both are, so a
fall counts only when it is more than ``NOISE_SE`` standard errors of the paired difference
(macro-F1: a paired bootstrap over the tickets; a department: its tickets only one model gets
right), and macro-F1 there is over the departments the tickets hold (``held_macro_f1``).
The shipped starter test set is never the decision, only a guard against a broken model
(``STARTER_GUARD``): for a team whose tickets differ from it, a model that learns the team's
tickets loses a little there however much it wins on the team's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

#: The shipped starter test set (SaaS tickets) only guards against a broken model, whatever the
#: model's age: its macro-F1 may fall by at most this much. Learning 5-160 tickets of another
#: team moved it by at most 0.025 (Bitext: tfidf 0.008, embedding 0.025; BANKING77 tfidf
#: 0.021); a constant model loses more than half. As the decision it refused young BANKING77
#: models for 0.913 -> 0.896 (bench/loop.py), models that were far better on the team's tickets.
STARTER_GUARD = 0.05
#: A fall on the team's held-out tickets counts only beyond this many standard errors of the
#: paired difference (chosen on Bitext, not on BANKING77: bench/gate_noise.py).
NOISE_SE = 2.0
#: Resamples of the paired bootstrap (fixed seed: the same tickets give the same decision).
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class ModelScore:
    """The figures the gate looks at, for one model on the holdout."""

    macro_f1: float
    accuracy: float
    #: department -> recall, for departments with holdout examples.
    recall: Mapping[str, float] = field(default_factory=dict)
    #: department -> its held-out examples (empty: unknown, every fall counts).
    support: Mapping[str, int] = field(default_factory=dict)


def held_macro_f1(f1: Mapping[str, float], support: Mapping[str, int]) -> float:
    """Macro-F1 over the departments the held-out tickets hold (support > 0).

    The reports' macro-F1 also averages in a department that is only predicted, at F1 0, so
    one ticket sent to a department the holdout lacks cut it by a fifth (BANKING77 has no
    Other: 0.88 -> 0.70). On the team's tickets the gate compares this one instead: a
    wrong answer still costs the true department's recall.
    """
    held = [f1.get(label, 0.0) for label, n in support.items() if n > 0]
    return sum(held) / len(held) if held else 0.0


@dataclass(frozen=True)
class PairedNoise:
    """How far two models' figures on the same tickets move by chance (see ``paired_noise``)."""

    #: Standard error of the candidate's macro-F1 minus the active model's.
    macro_f1_se: float
    #: department -> (its tickets only the active model gets right, only the candidate does).
    discordant: Mapping[str, tuple[int, int]]
    #: How many standard errors a fall must exceed to count.
    k: float = NOISE_SE

    def macro_f1_allowance(self) -> float:
        """The macro-F1 fall that chance explains."""
        return self.k * self.macro_f1_se

    def department_fall_is_noise(self, label: str) -> bool:
        """Whether the department's net lost tickets are within chance (a sign test's normal
        form: net lost <= k * sqrt(tickets only one of the two gets right))."""
        lost, gained = self.discordant.get(label, (0, 0))
        return lost - gained <= self.k * math.sqrt(lost + gained) + 1e-12


def paired_noise(
    gold: Sequence[str],
    candidate: Sequence[str],
    active: Sequence[str],
    *,
    k: float = NOISE_SE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> PairedNoise:
    """Measure chance on these tickets: a paired bootstrap of the macro-F1 difference (both
    models scored on each resample, macro-F1 over the departments the resample holds, as
    ``held_macro_f1``) and each department's discordant tickets."""
    if not len(gold) == len(candidate) == len(active):
        raise ValueError("gold and both prediction lists must have the same length")
    discordant: dict[str, tuple[int, int]] = {}
    for truth, c, a in zip(gold, candidate, active, strict=True):
        if (c == truth) != (a == truth):
            lost, gained = discordant.get(truth, (0, 0))
            discordant[truth] = (lost + (a == truth), gained + (c == truth))
    if not gold:
        return PairedNoise(0.0, discordant, k)
    order = list(dict.fromkeys([*gold, *candidate, *active]))
    index = {label: i for i, label in enumerate(order)}
    truths = np.array([index[x] for x in gold])
    weights = (
        np.random.default_rng(seed)
        .multinomial(len(gold), np.full(len(gold), 1 / len(gold)), size=resamples)
        .astype(np.float64)
    )
    gold_counts = weights @ np.eye(len(order))[truths]
    diff = _macro_f1(weights, truths, np.array([index[x] for x in candidate]), gold_counts)
    diff -= _macro_f1(weights, truths, np.array([index[x] for x in active]), gold_counts)
    return PairedNoise(float(np.std(diff)), discordant, k)


def _macro_f1(
    weights: npt.NDArray[np.float64],
    gold: npt.NDArray[np.int_],
    predicted: npt.NDArray[np.int_],
    gold_counts: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Macro-F1 per resample (rows of ``weights``), over the departments it holds."""
    onehot = np.eye(gold_counts.shape[1])
    right = weights @ (onehot[gold] * (gold == predicted)[:, None])
    predicted_counts = weights @ onehot[predicted]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(
            gold_counts + predicted_counts > 0, 2 * right / (gold_counts + predicted_counts), 0.0
        )
    seen = gold_counts > 0
    macro: npt.NDArray[np.float64] = (f1 * seen).sum(axis=1) / np.maximum(seen.sum(axis=1), 1)
    return macro


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
    min_lost_tickets: int = 1,
    noise: PairedNoise | None = None,
) -> PromotionDecision:
    """Apply the gate (see the module docstring); with ``noise``, falls within chance pass."""
    if active is None:
        return PromotionDecision(True, ("there is no active model yet",))
    failures: list[str] = []
    allowed = max(tolerance, noise.macro_f1_allowance()) if noise else tolerance
    if candidate.macro_f1 < active.macro_f1 - allowed - 1e-12:
        if noise and allowed > tolerance:
            why = (
                f" (more than chance explains: {noise.k:g} standard errors of the paired "
                f"difference, {allowed:.3f})"
            )
        else:
            why = f" (tolerance {tolerance:.2f})" if tolerance else ""
        failures.append(
            f"macro-F1 would fall from {active.macro_f1:.3f} to {candidate.macro_f1:.3f}{why}"
        )
    for label in sorted(set(active.recall) & set(candidate.recall)):
        before, after = active.recall[label], candidate.recall[label]
        support = candidate.support.get(label)
        lost = round((before - after) * support) if support else None
        enough = lost is None or lost >= min(min_lost_tickets, round(before * (support or 0)))
        if noise and noise.department_fall_is_noise(label):
            continue
        if before - after > max_recall_drop + 1e-12 and enough:
            failures.append(
                f"{label} recall would fall from {before:.0%} to {after:.0%} "
                f"(more than the allowed {max_recall_drop:.0%}"
                + (", and more than chance explains)" if noise else ")")
            )
    if failures:
        return PromotionDecision(False, tuple(failures))
    change = f"macro-F1 {active.macro_f1:.3f} → {candidate.macro_f1:.3f}"
    if noise and candidate.macro_f1 < active.macro_f1 - 1e-12:
        change += f" (within chance, ± {noise.macro_f1_allowance():.3f})"
    worse = "no department worse beyond chance" if noise else "no department worse"
    return PromotionDecision(True, (f"{change}, {worse}",))
