"""How well can a temperature fitted on 10 examples a label calibrate? (not a test)

    python bench/fewshot_calibration.py [--dataset nlbse24_issue_reports] [--draws 10]
                                        [--validation 748] [--fold-seeds 6] [--split-seed 123]

Training split only: the dataset's training split is cut (stratified, seed ``--split-seed``) into a
pool and ``--validation`` held-back rows; each draw takes 10 examples a label from the pool (seeds
0..), adds the dataset's taxonomy as ``bench/quality.py`` does, and runs the embedding learner's
own selection and final fit (``classifier.learners.selection``). Its raw scores on the held-back
rows are then turned into probabilities by several temperatures, and each one's expected
calibration error (15 bins) on those rows is printed per draw and as a mean:

- ``one cut``: fitted on the chosen candidate's out-of-fold scores from selection alone (the
  learner's before the cuts were pooled);
- ``shipped``: the learner's: those pooled with the out-of-fold scores of more cuts until there
  are ``CALIBRATION_ROWS`` (``classifier.learners.selection.calibration_scores``), smoothed as
  the examples once (one pseudo-count a cut);
- ``pooled, smoothed as rows``: the same pooled scores smoothed by one pseudo-count in all (as
  if each pooled row were a new example: weaker smoothing, more confident);
- ``fold-seeds``: fitted on the out-of-fold scores of ``--fold-seeds`` different 5-fold cuts
  pooled (less noise from how the examples fell into folds);
- ``smoothing m``: one cut, Laplace smoothing of the targets with m pseudo-counts instead of 1;
- ``uniform n0``: the one-cut probabilities blended with the uniform by n0 / (n + n0);
- ``one T for all``: the single temperature best for every draw at once, chosen on the
  held-back rows themselves (hindsight: a bound, not a method);
- ``oracle T``: each draw's best temperature on the held-back rows (hindsight: the floor any
  temperature fitted on the 30 examples could reach).

The MiniLM vectors come from ``bench/quality.py``'s cache (``out/quality-embeddings/``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from quality import (  # noqa: E402
    CACHE,
    CachedEncoder,
    dataset_taxonomy,
    default_datasets,
    load_dataset,
)

from classifier.examples import Example, sample_per_label  # noqa: E402
from classifier.learners.embedding import (  # noqa: E402
    LONG_TEXT_SHARE,
    _from_taxonomy,
    _sample_weights,
)
from classifier.learners.linear_head import (  # noqa: E402
    LinearHead,
    fit_linear_weights,
    fit_temperature,
    softmax,
)
from classifier.learners.selection import (  # noqa: E402
    FeatureBlocks,
    calibration_scores,
    encode_chunked,
    expected_calibration_error,
    is_long,
    select,
    validate,
    validation_splits,
)
from classifier.learners.tfidf import FeatureSettings, TextFeatures  # noqa: E402
from classifier.learners.training_data import prepare_training_set  # noqa: E402
from classifier.taxonomy import Taxonomy  # noqa: E402
from classifier.taxonomy_learning import with_taxonomy  # noqa: E402

Scores = npt.NDArray[np.float64]
Targets = npt.NDArray[np.int64]
SHOTS = 10


def ece(probabilities: Scores, targets: Targets) -> float:
    right = probabilities.argmax(axis=1) == targets
    return expected_calibration_error(probabilities.max(axis=1).tolist(), right.tolist())


def one_draw(
    encoder: CachedEncoder,
    pool: list[Example],
    held_back: list[Example],
    taxonomy: Taxonomy | None,
    seed: int,
    fold_seeds: int,
) -> dict[str, Any]:
    """The learner's selection and final fit on one draw; raw scores on the held-back rows."""
    drawn = sample_per_label(pool, SHOTS, seed=seed)
    examples = with_taxonomy(drawn, taxonomy) if taxonomy is not None else drawn
    data = prepare_training_set(examples, sorted({e.label for e in drawn}))
    n_labels = len(data.labels)
    views = {"first": encoder.encode(data.texts)}
    if sum(is_long(t) for t in data.texts) >= LONG_TEXT_SHARE * len(data.texts):
        views["chunks"] = encode_chunked(encoder.encode, data.texts, first=views["first"])
    features = TextFeatures.fit(data.texts, FeatureSettings())
    blocks = FeatureBlocks(features.transform(data.texts), views, features.part_starts)
    weights, always = _sample_weights(examples), _from_taxonomy(examples)
    selection, chosen = select(
        blocks, data.targets, n_labels, seed=0, sample_weight=weights, always_fit=always
    )
    config = selection.chosen
    coef, intercept = fit_linear_weights(
        blocks.matrix(config),
        data.targets,
        n_labels,
        kind=config.head,
        c=config.c,
        seed=0,
        sample_weight=weights,
    )
    texts = [e.text for e in held_back]
    held_views = {"first": encoder.encode(texts)}
    if config.view == "chunks":
        held_views["chunks"] = encode_chunked(encoder.encode, texts)
    matrix = FeatureBlocks(features.transform(texts), held_views).matrix(config)
    index = {label: i for i, label in enumerate(data.labels)}
    pooled = [(chosen.held_scores, chosen.held_targets)]
    for fold_seed in range(1, fold_seeds):
        _, splits = validation_splits(data.targets, fold_seed, always)
        again = validate(blocks, config, data.targets, n_labels, splits, sample_weight=weights)
        pooled.append((again.held_scores, again.held_targets))
    calibration, calibration_targets, cuts = calibration_scores(
        blocks, chosen, data.targets, n_labels, sample_weight=weights, always_fit=always
    )
    return {
        "chosen": config.name,
        "calibration": (calibration, calibration_targets),
        "cuts": cuts,
        "held_scores": chosen.held_scores,
        "held_targets": chosen.held_targets,
        "pooled": pooled,
        "scores": LinearHead(coef, intercept, 1.0).scores(matrix),
        "targets": np.array([index[e.label] for e in held_back], dtype=np.int64),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=default_datasets())
    parser.add_argument("--dataset", default="nlbse24_issue_reports")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--validation", type=int, default=748)
    parser.add_argument("--fold-seeds", type=int, default=6)
    parser.add_argument("--split-seed", type=int, default=123)
    args = parser.parse_args()
    train, _ = load_dataset(args.datasets, args.dataset)  # the test split is never read
    pool_rows, held_rows = train_test_split(
        np.arange(len(train)),
        test_size=args.validation,
        stratify=[e.label for e in train],
        random_state=args.split_seed,
    )
    pool = [train[i] for i in pool_rows]
    held_back = [train[i] for i in held_rows]
    encoder = CachedEncoder(CACHE / args.dataset)
    taxonomy = dataset_taxonomy(args.dataset)
    runs = []
    for seed in range(args.draws):
        runs.append(one_draw(encoder, pool, held_back, taxonomy, seed, args.fold_seeds))
        run = runs[-1]
        held = run["held_scores"]
        print(
            f"draw {seed}: {run['chosen']}, out-of-fold accuracy "
            f"{np.mean(held.argmax(axis=1) == run['held_targets']):.3f}, held-back accuracy "
            f"{np.mean(run['scores'].argmax(axis=1) == run['targets']):.3f}, temperature on "
            f"{run['cuts']} cuts",
            file=sys.stderr,
            flush=True,
        )
    n_labels = runs[0]["scores"].shape[1]

    def by_temperature(pick: Callable[[dict[str, Any]], float]) -> list[float]:
        return [ece(softmax(r["scores"] / pick(r)), r["targets"]) for r in runs]

    def one_cut(r: dict[str, Any]) -> float:
        return fit_temperature(r["held_scores"], r["held_targets"])

    def shipped(r: dict[str, Any]) -> float:
        return fit_temperature(*r["calibration"], pseudo=r["cuts"])

    def as_rows(r: dict[str, Any]) -> float:
        return fit_temperature(*r["calibration"])

    def pooled(r: dict[str, Any]) -> float:
        parts = r["pooled"]
        return fit_temperature(
            np.vstack([s for s, _ in parts]),
            np.concatenate([t for _, t in parts]),
        )

    rows: dict[str, list[float]] = {
        "one cut": by_temperature(one_cut),
        "shipped": by_temperature(shipped),
        "pooled, smoothed as rows": by_temperature(as_rows),
        f"fold-seeds ({args.fold_seeds})": by_temperature(pooled),
    }
    for pseudo in (3, 5, 12):
        rows[f"smoothing m={pseudo}"] = by_temperature(
            lambda r, m=pseudo: fit_temperature(r["held_scores"], r["held_targets"], m)
        )
    for n0 in (5, 10, 20):
        values = []
        for r in runs:
            share = n0 / (len(r["held_targets"]) + n0)
            probabilities = softmax(r["scores"] / one_cut(r)) * (1 - share) + share / n_labels
            values.append(ece(probabilities, r["targets"]))
        rows[f"uniform n0={n0}"] = values
    grid = np.exp(np.linspace(math.log(0.02), math.log(5.0), 120))
    per_t = [by_temperature(lambda r, t=t: float(t)) for t in grid]
    best = int(np.argmin([np.mean(v) for v in per_t]))
    rows[f"one T for all (T={grid[best]:.2f}, hindsight)"] = per_t[best]
    rows["oracle T per draw (hindsight)"] = [min(v[i] for v in per_t) for i in range(len(runs))]
    print(f"| {args.dataset}, {args.draws} draws of {SHOTS} a label | mean ECE | per draw |")
    print("|---|---:|---|")
    for name, values in rows.items():
        print(f"| {name} | {np.mean(values):.3f} | {' '.join(f'{v:.3f}' for v in values)} |")


if __name__ == "__main__":
    main()
