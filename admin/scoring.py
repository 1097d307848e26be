"""Scoring models on the holdout with ``classifier.evaluation`` (no metrics are computed here).

Every model in a retrain or a report is scored on the same examples with the same label order,
so reports and the paired comparison line up. A holdout label the model cannot return (a
department added since it was trained) simply counts as a miss, rather than stopping the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from admin.promotion import ModelScore, held_macro_f1
from classifier.evaluation import (
    EvalReport,
    compare_predictions,
    predict_in_batches,
    score_predictions,
)
from classifier.examples import Example
from classifier.protocols import Classifier, ProgressCallback, no_progress


@dataclass(frozen=True)
class HoldoutResult:
    """One model's predictions and report on a holdout."""

    model_id: str
    report: EvalReport
    predicted: tuple[str, ...]

    @property
    def metrics(self) -> dict[str, Any]:
        """The report as JSON (what the registry stores)."""
        return self.report.to_dict()

    @property
    def score(self) -> ModelScore:
        """What the promotion gate looks at: macro-F1, accuracy and recall per department."""
        return ModelScore(
            macro_f1=self.report.macro_f1,
            accuracy=self.report.accuracy,
            recall={
                label: scores.recall
                for label, scores in self.report.per_label.items()
                if scores.support > 0
            },
            support={
                label: scores.support
                for label, scores in self.report.per_label.items()
                if scores.support > 0
            },
        )

    def held_score(self) -> ModelScore:
        """``score`` with macro-F1 over the departments the holdout holds (see
        ``admin.promotion.held_macro_f1``): what the gate compares on the team's tickets."""
        score = self.score
        f1 = {label: scores.f1 for label, scores in self.report.per_label.items()}
        return replace(score, macro_f1=held_macro_f1(f1, score.support))


async def score_on_holdout(
    classifier: Classifier,
    holdout: Sequence[Example],
    labels: Sequence[str],
    progress: ProgressCallback = no_progress,
) -> HoldoutResult:
    """Predict every holdout example and score the predictions (tables in ``labels`` order)."""
    # Small batches: each is one short trip to a worker thread, so tickets the bot is routing
    # meanwhile get the CPU between them (256 at a time pushed their p99 past 250 ms).
    predictions = await predict_in_batches(
        classifier, [e.text for e in holdout], batch_size=32, progress=progress
    )
    predicted = tuple(p.label for p in predictions)
    report = score_predictions(
        [e.label for e in holdout],
        predicted,
        labels,
        model_id=classifier.model_id,
        learner=str(getattr(classifier, "learner", "")),
    )
    return HoldoutResult(classifier.model_id, report, predicted)


def score_predicted(
    model_id: str,
    learner: str,
    holdout: Sequence[Example],
    predicted: Sequence[str],
    labels: Sequence[str],
) -> HoldoutResult:
    """Score labels a model predicted elsewhere (e.g. in the training child process)."""
    report = score_predictions(
        [e.label for e in holdout], predicted, labels, model_id=model_id, learner=learner
    )
    return HoldoutResult(model_id, report, tuple(predicted))


def compare_on_holdout(
    candidate: HoldoutResult, reference: HoldoutResult, holdout: Sequence[Example]
) -> dict[str, Any]:
    """The paired comparison (exact McNemar) of two models scored on the same holdout."""
    comparison = compare_predictions(
        [e.label for e in holdout],
        candidate.predicted,
        reference.predicted,
        model_a=candidate.model_id,
        model_b=reference.model_id,
    )
    result = comparison.to_dict()
    result["p_value"] = comparison.p_value
    return result
