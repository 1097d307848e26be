from __future__ import annotations

from collections.abc import Sequence

import pytest

from classifier.confusion_png import confusion_png
from classifier.errors import DatasetError
from classifier.evaluation import (
    check_test_labels,
    compare_predictions,
    evaluate_classifier,
    mcnemar_exact_p,
    score_predictions,
    wilson_interval,
)
from classifier.examples import Example
from classifier.protocols import Prediction, ProgressEvent

GOLD = ["A", "A", "A", "B", "B", "C"]
PREDICTED = ["A", "A", "B", "B", "C", "C"]


def test_report_matches_hand_computed_numbers() -> None:
    report = score_predictions(GOLD, PREDICTED, ["A", "B", "C"], model_id="m", learner="x")
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.confusion.labels == ("A", "B", "C")
    assert report.confusion.matrix == ((2, 1, 0), (0, 1, 1), (0, 0, 1))
    a, b, c = (report.per_label[label] for label in "ABC")
    assert (a.precision, a.recall, a.f1, a.support) == pytest.approx((1.0, 2 / 3, 0.8, 3))
    assert (b.precision, b.recall, b.f1, b.support) == pytest.approx((0.5, 0.5, 0.5, 2))
    assert (c.precision, c.recall, c.f1, c.support) == pytest.approx((0.5, 1.0, 2 / 3, 1))
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # Wilson 95 % for 4/6, computed by hand: centre 0.6016, half-width 0.3016.
    assert report.accuracy_ci == pytest.approx((0.3000, 0.9032), abs=1e-4)


def test_report_to_dict_has_the_json_fields() -> None:
    report = score_predictions(GOLD, PREDICTED, ["A", "B", "C"], n_train=10, train_seconds=1.5)
    data = report.to_dict()
    assert data["per_class"]["A"] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    assert data["confusion"]["matrix"][0] == [2, 1, 0]
    assert (data["n_train"], data["n_test"], data["train_seconds"]) == (10, 6, 1.5)
    assert len(data["accuracy_ci"]) == 2


def test_label_never_predicted_scores_zero_not_an_error() -> None:
    report = score_predictions(["A", "B"], ["A", "A"], ["A", "B"])
    assert report.per_label["B"].precision == 0.0
    assert report.per_label["B"].f1 == 0.0


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0)
    assert low == pytest.approx(10 / (10 + 1.959964**2))  # n / (n + z²) when all are right


def test_mcnemar_exact_p_by_hand() -> None:
    # 1 vs 6 discordant pairs: 2 * (C(7,0) + C(7,1)) / 2**7 = 16 / 128.
    assert mcnemar_exact_p(1, 6) == pytest.approx(0.125)
    assert mcnemar_exact_p(6, 1) == pytest.approx(0.125)
    assert mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(0, 0) == 1.0


def test_paired_comparison_counts() -> None:
    gold = ["A", "A", "B", "B", "C"]
    first = ["A", "A", "B", "C", "A"]
    second = ["A", "B", "C", "C", "C"]
    result = compare_predictions(gold, first, second, model_a="one", model_b="two")
    assert (result.both_right, result.only_a_right, result.only_b_right, result.both_wrong) == (
        1,
        2,
        1,
        1,
    )
    assert result.accuracy_difference == pytest.approx(3 / 5 - 2 / 5)
    assert result.p_value == pytest.approx(1.0)
    assert result.to_dict()["mcnemar_p_value"] == result.p_value


def test_unknown_test_labels_are_named() -> None:
    examples = [Example("x", "A"), Example("y", "Refunds")]
    with pytest.raises(DatasetError, match="'Refunds'"):
        check_test_labels(examples, ["A", "B"])


def test_confusion_png_is_a_png() -> None:
    report = score_predictions(GOLD, PREDICTED, ["A", "B", "C"])
    data = confusion_png(report.confusion, "title")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


class KeywordClassifier:
    """A real (tiny) Classifier: "pay" means Billing, anything else Technical."""

    model_id = "keyword-1"
    labels = ("Billing", "Technical")

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.batches.append(len(texts))
        return [
            Prediction("Billing", 0.9) if "pay" in t else Prediction("Technical", 0.6)
            for t in texts
        ]


async def test_evaluate_classifier_batches_and_reports_progress() -> None:
    examples = [Example(f"pay {i}", "Billing") for i in range(5)] + [Example("crash", "Billing")]
    classifier = KeywordClassifier()
    events: list[ProgressEvent] = []
    result = await evaluate_classifier(classifier, examples, batch_size=4, progress=events.append)
    assert classifier.batches == [4, 2]
    assert [e.fraction for e in events] == [pytest.approx(4 / 6), 1.0]
    assert result.report.accuracy == pytest.approx(5 / 6)
    assert result.report.model_id == "keyword-1"
    assert len(result.predictions) == 6


async def test_evaluate_classifier_refuses_unknown_labels() -> None:
    with pytest.raises(DatasetError, match="'Sales'"):
        await evaluate_classifier(KeywordClassifier(), [Example("hi", "Sales")])
