"""How good is a classifier: accuracy with its uncertainty, per-label scores, confusions, and an
honest paired comparison of two models on the same test set.

Pure functions over labels and predictions, plus ``evaluate_classifier`` which runs any
``Classifier`` over examples in batches. Conventions: precision of a label never predicted is 0
(as scikit-learn's ``zero_division=0``); macro-F1 averages over labels that occur in the gold
labels or the predictions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from classifier.errors import DatasetError
from classifier.examples import Example
from classifier.json_value import JsonObject
from classifier.protocols import (
    Classifier,
    Prediction,
    ProgressCallback,
    ProgressEvent,
    no_progress,
)

#: The normal quantile for a two-sided 95 % interval.
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class LabelScores:
    """Precision, recall and F1 of one label, and how many test examples carry it."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ConfusionMatrix:
    """``matrix[i][j]`` = test examples of ``labels[i]`` predicted as ``labels[j]``."""

    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class EvalReport:
    """One model on one test set."""

    model_id: str
    learner: str
    n_test: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    macro_f1: float
    per_label: dict[str, LabelScores]
    confusion: ConfusionMatrix
    n_train: int | None = None
    train_seconds: float | None = None

    def to_dict(self) -> JsonObject:
        """A JSON-ready dict (the ``triage evaluate --json`` output)."""
        return {
            "model_id": self.model_id,
            "learner": self.learner,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "train_seconds": self.train_seconds,
            "accuracy": self.accuracy,
            "accuracy_ci": list(self.accuracy_ci),
            "macro_f1": self.macro_f1,
            "per_class": {
                label: {
                    "precision": s.precision,
                    "recall": s.recall,
                    "f1": s.f1,
                    "support": s.support,
                }
                for label, s in self.per_label.items()
            },
            "confusion": {
                "labels": list(self.confusion.labels),
                "matrix": [list(row) for row in self.confusion.matrix],
            },
        }


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound near 0 and 1, unlike the normal one)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def check_test_labels(examples: Sequence[Example], known: Sequence[str]) -> None:
    """Raise DatasetError naming the test labels the model cannot return."""
    unknown = sorted({e.label for e in examples} - set(known))
    if unknown:
        shown = ", ".join(repr(label) for label in unknown[:8])
        more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        raise DatasetError(
            f"The test data has labels the model does not know: {shown}{more}; "
            f"the model knows {', '.join(known)}."
        )


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score_predictions(
    gold: Sequence[str],
    predicted: Sequence[str],
    labels: Sequence[str],
    *,
    model_id: str = "",
    learner: str = "",
    n_train: int | None = None,
    train_seconds: float | None = None,
) -> EvalReport:
    """The report for gold labels against predicted labels; ``labels`` orders the tables."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted labels differ in length")
    order = list(dict.fromkeys([*labels, *gold, *predicted]))
    index = {label: i for i, label in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g]][index[p]] += 1
    correct = sum(matrix[i][i] for i in range(len(order)))
    per_label: dict[str, LabelScores] = {}
    for i, label in enumerate(order):
        support = sum(matrix[i])
        predicted_count = sum(row[i] for row in matrix)
        precision = matrix[i][i] / predicted_count if predicted_count else 0.0
        recall = matrix[i][i] / support if support else 0.0
        per_label[label] = LabelScores(precision, recall, _f1(precision, recall), support)
    seen = set(gold) | set(predicted)
    macro = [per_label[label].f1 for label in order if label in seen]
    n = len(gold)
    return EvalReport(
        model_id=model_id,
        learner=learner,
        n_test=n,
        accuracy=correct / n if n else 0.0,
        accuracy_ci=wilson_interval(correct, n),
        macro_f1=sum(macro) / len(macro) if macro else 0.0,
        per_label=per_label,
        confusion=ConfusionMatrix(tuple(order), tuple(tuple(row) for row in matrix)),
        n_train=n_train,
        train_seconds=train_seconds,
    )


@dataclass(frozen=True)
class PairedComparison:
    """Two models on the same test examples: where they agree, where each one wins.

    ``p_value`` is the exact two-sided McNemar test on the discordant pairs: the chance of a
    split at least this uneven if both models were equally good.
    """

    model_a: str
    model_b: str
    n_test: int
    both_right: int
    only_a_right: int
    only_b_right: int
    both_wrong: int
    accuracy_a: float
    accuracy_b: float
    accuracy_difference: float
    p_value: float

    def to_dict(self) -> JsonObject:
        """A JSON-ready dict."""
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "n_test": self.n_test,
            "both_right": self.both_right,
            "only_a_right": self.only_a_right,
            "only_b_right": self.only_b_right,
            "both_wrong": self.both_wrong,
            "accuracy_a": self.accuracy_a,
            "accuracy_b": self.accuracy_b,
            "accuracy_difference": self.accuracy_difference,
            "mcnemar_p_value": self.p_value,
        }


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: a binomial(n, 1/2) test on the discordant counts."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / (1 << n))  # big-int division: exact for any n


def compare_predictions(
    gold: Sequence[str],
    predicted_a: Sequence[str],
    predicted_b: Sequence[str],
    *,
    model_a: str = "A",
    model_b: str = "B",
) -> PairedComparison:
    """Pair two models' predictions on the same gold labels."""
    if not len(gold) == len(predicted_a) == len(predicted_b):
        raise ValueError("gold and both prediction lists must have the same length")
    counts = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    for g, a, b in zip(gold, predicted_a, predicted_b, strict=True):
        counts[(a == g, b == g)] += 1
    n = len(gold)
    accuracy_a = (counts[(True, True)] + counts[(True, False)]) / n if n else 0.0
    accuracy_b = (counts[(True, True)] + counts[(False, True)]) / n if n else 0.0
    return PairedComparison(
        model_a=model_a,
        model_b=model_b,
        n_test=n,
        both_right=counts[(True, True)],
        only_a_right=counts[(True, False)],
        only_b_right=counts[(False, True)],
        both_wrong=counts[(False, False)],
        accuracy_a=accuracy_a,
        accuracy_b=accuracy_b,
        accuracy_difference=accuracy_a - accuracy_b,
        p_value=mcnemar_exact_p(counts[(True, False)], counts[(False, True)]),
    )


async def predict_in_batches(
    classifier: Classifier,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: ProgressCallback = no_progress,
) -> list[Prediction]:
    """Run ``classifier`` over ``texts`` in batches, reporting progress after each batch."""
    predictions: list[Prediction] = []
    for start in range(0, len(texts), batch_size):
        predictions.extend(await classifier.predict(texts[start : start + batch_size]))
        done = min(start + batch_size, len(texts))
        progress(ProgressEvent("evaluate", f"{done}/{len(texts)}", done / len(texts)))
    return predictions


@dataclass(frozen=True)
class Evaluation:
    """The predictions of one classifier on a test set, and their report."""

    predictions: list[Prediction]
    report: EvalReport
    seconds: float


async def evaluate_classifier(
    classifier: Classifier,
    examples: Sequence[Example],
    *,
    n_train: int | None = None,
    train_seconds: float | None = None,
    batch_size: int = 64,
    progress: ProgressCallback = no_progress,
) -> Evaluation:
    """Check the test labels, predict every example and score the predictions."""
    check_test_labels(examples, classifier.labels)
    start = time.perf_counter()
    predictions = await predict_in_batches(
        classifier, [e.text for e in examples], batch_size=batch_size, progress=progress
    )
    seconds = time.perf_counter() - start
    report = score_predictions(
        [e.label for e in examples],
        [p.label for p in predictions],
        classifier.labels,
        model_id=classifier.model_id,
        learner=str(getattr(classifier, "learner", "")),
        n_train=n_train,
        train_seconds=train_seconds,
    )
    return Evaluation(predictions, report, seconds)
