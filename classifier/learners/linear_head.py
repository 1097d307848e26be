"""A linear classifier over feature vectors with calibrated probabilities.

Two kinds of linear model fit the weights: a linear SVM (one-vs-rest; fast and accurate on
sparse text features) or multinomial logistic regression (often better on dense sentence
embeddings). Neither's scores are calibrated probabilities, so a softmax whose temperature is
fitted on out-of-fold scores (temperature scaling: one parameter, minimum negative
log-likelihood) turns them into probabilities: a confidence of 0.8 means about 80 % of such
predictions are right.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar
from scipy.sparse import csr_matrix
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

#: A feature matrix: sparse (TF-IDF, stacked features) or dense (sentence embeddings).
#: scipy ships no types, so mypy sees the sparse half as Any; the dense half is checked.
Features: TypeAlias = npt.NDArray[np.float32] | csr_matrix
FloatArray = npt.NDArray[np.float64]

#: The linear models a head can be: "svm" (LinearSVC) or "logreg" (LogisticRegression).
HEAD_KINDS = ("svm", "logreg")

#: Folds used to collect out-of-fold scores for the temperature (fewer for tiny label counts).
CALIBRATION_FOLDS = 3
#: From this many examples one held-out fold is enough to fit one parameter, and it saves two
#: of the four SVM fits (training time matters most on the biggest data sets).
ONE_FOLD_FROM = 2000


@dataclass(frozen=True)
class LinearHead:
    """Weights, biases and the softmax temperature; ``probabilities`` is the whole inference."""

    coef: npt.NDArray[np.float32]  # (n_labels, n_features)
    intercept: npt.NDArray[np.float32]  # (n_labels,)
    temperature: float

    def scores(self, features: Features) -> FloatArray:
        """Raw linear scores, one row per input."""
        raw = features @ self.coef.T
        return np.asarray(raw, dtype=np.float64) + self.intercept.astype(np.float64)

    def probabilities(self, features: Features) -> FloatArray:
        """Calibrated probabilities, one row per input, each row summing to 1."""
        return softmax(self.scores(features) / self.temperature)


def softmax(scores: FloatArray) -> FloatArray:
    """Row-wise softmax, stable for large scores."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: FloatArray = exp / exp.sum(axis=1, keepdims=True)
    return out


def fit_linear_weights(
    features: Features,
    targets: npt.NDArray[np.int64],
    n_labels: int,
    *,
    kind: str = "svm",
    c: float = 1.0,
    seed: int = 0,
    sample_weight: FloatArray | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(coef, intercept) of one linear model of ``kind``; one row per label, even for two."""
    model: LinearSVC | LogisticRegression
    if kind == "svm":
        model = LinearSVC(C=c, random_state=seed, max_iter=5000)
    elif kind == "logreg":
        model = LogisticRegression(C=c, random_state=seed, max_iter=1000)
    else:
        raise ValueError(f"unknown head kind {kind!r}; one of {HEAD_KINDS}")
    with warnings.catch_warnings():
        # Non-convergence at max_iter leaves a usable model; the temperature absorbs the scale.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, targets, sample_weight=sample_weight)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if n_labels == 2:
        # A binary model has one score s for class 1; the pair (-s, s) makes it a 2-way softmax.
        coef = np.vstack([-coef[0], coef[0]])
        intercept = np.array([-intercept[0], intercept[0]])
    return coef.astype(np.float32), intercept.astype(np.float32)


def fit_temperature(
    scores: FloatArray, targets: npt.NDArray[np.int64], pseudo: float = 1.0
) -> float:
    """The softmax temperature that minimises the cross-entropy against ``targets``.

    The targets are smoothed by 1/(n+2) (Laplace's rule of succession): after n right answers
    out of n, the right confidence is about (n+1)/(n+2), not 1. Without it a handful of
    separable examples would drive the temperature to zero and every confidence to 1.0.
    ``pseudo``: that many pseudo-counts of smoothing instead of one (``pseudo``/(n+2·pseudo));
    the scores of k cuts of the same examples pooled count as the examples once with k (the
    smoothing is that of the examples, 1/(n/k+2): repeating cuts adds no evidence);
    ``bench/fewshot_calibration.py`` compares stronger smoothing.
    """
    n, k = scores.shape
    smoothing = pseudo / (n + 2 * pseudo)
    wanted = np.full((n, k), smoothing / max(k - 1, 1))
    wanted[np.arange(n), targets] = 1.0 - smoothing

    def nll(log_t: float) -> float:
        logits = scores / math.exp(log_t)
        logits = logits - logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return float(-np.mean((wanted * log_p).sum(axis=1)))

    result = minimize_scalar(nll, bounds=(math.log(1e-3), math.log(1e3)), method="bounded")
    return float(math.exp(result.x))


def fit_linear_head(
    features: Features,
    targets: npt.NDArray[np.int64],
    n_labels: int,
    *,
    c: float = 1.0,
    seed: int = 0,
    kind: str = "svm",
) -> LinearHead:
    """Fit the linear model on all data and its temperature on held-out scores."""
    min_count = int(np.bincount(targets, minlength=n_labels).min())
    folds = min(CALIBRATION_FOLDS, min_count)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(len(targets)), targets))
    if len(targets) >= ONE_FOLD_FROM:
        splits = splits[:1]
    held_scores: list[FloatArray] = []
    held_targets: list[npt.NDArray[np.int64]] = []
    for fit_rows, held_rows in splits:
        coef, intercept = fit_linear_weights(
            features[fit_rows], targets[fit_rows], n_labels, kind=kind, c=c, seed=seed
        )
        held_scores.append(LinearHead(coef, intercept, 1.0).scores(features[held_rows]))
        held_targets.append(targets[held_rows])
    temperature = fit_temperature(np.vstack(held_scores), np.concatenate(held_targets))
    coef, intercept = fit_linear_weights(features, targets, n_labels, kind=kind, c=c, seed=seed)
    return LinearHead(coef, intercept, temperature)
