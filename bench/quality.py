"""Quality benchmark: the default learner against two plain reference recipes (not a test).

    python bench/quality.py [--datasets ../shared/datasets] [--dataset NAME ...] [--draws 5]
                            [--no-timing] [--out bench/results/quality.json]

Every dataset folder under ``--datasets`` (``train.jsonl`` + ``test.jsonl``; see its README)
is read in place. On each, in one process and on the same data:

- ``default``: the ``embedding`` learner as shipped, configuration chosen by its own validation
  on the training data (``classifier.learners.selection``), learning from the taxonomy as the
  bot does (``classifier.taxonomy_learning``: each department's name and one-sentence
  description as extra examples, faded out from 20 real examples a label, so only the 10-shot
  runs see them). The taxonomy is ``bench/taxonomies/<dataset>.toml``, written from the label
  names alone; a dataset without one trains on its examples alone;
- ``no-taxonomy`` (10-shot only): the same learner on the examples alone, to show what the
  taxonomy adds;
- ``ref-tfidf``: TF-IDF word 1-2-grams + character 2-5-grams, logistic regression (scikit-learn
  defaults, ``max_iter=1000`` so it converges);
- ``ref-minilm``: the same MiniLM sentence embeddings, unit length, logistic regression.

Each runs on the full training split and on 10 examples per label drawn with seeds 0..4 (mean
and spread over the draws), scored on the official test split: accuracy, macro-F1 and expected
calibration error (ECE, 15 bins). The MiniLM vectors are cached by text under ``out/`` (reruns
skip the encoder), so these runs time nothing. Timing runs separately: for each dataset a fresh
subprocess trains the default learner with the real encoder on the full training split (wall
and CPU seconds), times 300 single-ticket predictions after 10 warm-up calls and reports its
peak resident memory. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from classifier.evaluation import score_predictions  # noqa: E402
from classifier.examples import Example, read_examples, sample_per_label  # noqa: E402
from classifier.learners.embedding import EmbeddingLearner, shared_encoder  # noqa: E402
from classifier.learners.selection import expected_calibration_error  # noqa: E402
from classifier.taxonomy import Taxonomy, load_taxonomy  # noqa: E402
from classifier.taxonomy_learning import with_taxonomy  # noqa: E402

SHOTS = 10
DRAWS = 5
LATENCY_CALLS = 300
WARM_UP_CALLS = 10
RECIPES = ("default", "no-taxonomy", "ref-tfidf", "ref-minilm")
CACHE = REPO / "out" / "quality-embeddings"
TAXONOMIES = REPO / "bench" / "taxonomies"
#: Dataset folders whose taxonomy file has another name (shared with bench/coldstart.py).
TAXONOMY_FILES = {"bitext_customer_support": "bitext"}

Probabilities = npt.NDArray[np.float64]


def default_datasets() -> Path:
    """../shared/datasets from the repository (or from the folder of worktrees it sits in)."""
    for base in (REPO.parent, REPO.parent.parent):
        if (base / "shared" / "datasets").is_dir():
            return base / "shared" / "datasets"
    return REPO.parent / "shared" / "datasets"


def dataset_names(root: Path) -> list[str]:
    """Every folder of ``root`` with a train and a test split."""
    return sorted(
        p.name
        for p in root.iterdir()
        if (p / "train.jsonl").is_file() and (p / "test.jsonl").is_file()
    )


def load_dataset(root: Path, name: str) -> tuple[list[Example], list[Example]]:
    return read_examples(root / name / "train.jsonl"), read_examples(root / name / "test.jsonl")


def dataset_taxonomy(name: str) -> Taxonomy | None:
    """The committed taxonomy of dataset ``name`` (labels as departments), or None."""
    path = TAXONOMIES / f"{TAXONOMY_FILES.get(name, name)}.toml"
    return load_taxonomy(path) if path.is_file() else None


class CachedEncoder:
    """The shared MiniLM encoder with its vectors remembered by text (and kept in ``out/``)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}
        self._dirty = False
        if path.with_suffix(".npy").exists():
            texts = json.loads(path.with_suffix(".json").read_text())
            vectors = np.load(path.with_suffix(".npy"))
            self._vectors = dict(zip(texts, vectors, strict=True))
        self.dimension = 384

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            encoder = shared_encoder()
            self.dimension = encoder.dimension
            for text, row in zip(missing, encoder.encode(missing), strict=True):
                self._vectors[text] = row
            self._dirty = True
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._vectors[text]
        return out

    def save(self) -> None:
        if not self._dirty:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        texts = list(self._vectors)
        self._path.with_suffix(".json").write_text(json.dumps(texts))
        np.save(self._path.with_suffix(".npy"), np.stack([self._vectors[t] for t in texts]))
        self._dirty = False


def reference_tfidf(
    train: Sequence[Example], test: Sequence[str]
) -> tuple[Probabilities, list[str]]:
    """TF-IDF word 1-2 + char 2-5 grams, logistic regression with scikit-learn defaults."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = [e.text for e in train]
    word = TfidfVectorizer(ngram_range=(1, 2)).fit(texts)
    char = TfidfVectorizer(analyzer="char", ngram_range=(2, 5)).fit(texts)
    model = LogisticRegression(max_iter=1000).fit(
        hstack([word.transform(texts), char.transform(texts)], format="csr"),
        [e.label for e in train],
    )
    features = hstack([word.transform(test), char.transform(test)], format="csr")
    return model.predict_proba(features), list(model.classes_)


def reference_minilm(
    encoder: CachedEncoder, train: Sequence[Example], test: Sequence[str]
) -> tuple[Probabilities, list[str]]:
    """Unit-length MiniLM embeddings, logistic regression with scikit-learn defaults."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(
        encoder.encode([e.text for e in train]), [e.label for e in train]
    )
    return model.predict_proba(encoder.encode(list(test))), list(model.classes_)


def default_learner(
    encoder: CachedEncoder,
    train: Sequence[Example],
    test: Sequence[str],
    taxonomy: Taxonomy | None = None,
) -> tuple[Probabilities, list[str], dict[str, Any]]:
    """The embedding learner, with the taxonomy's examples added as the bot adds them."""
    labels = sorted({e.label for e in train})
    examples = with_taxonomy(train, taxonomy) if taxonomy is not None else list(train)
    model = asyncio.run(EmbeddingLearner(text_encoder=encoder).train(examples, labels, seed=0))
    return model.probabilities(test), list(model.labels), model.selection or {}


def scores(
    gold: Sequence[str], probabilities: Probabilities, labels: Sequence[str]
) -> dict[str, float]:
    best = probabilities.argmax(axis=1)
    predicted = [labels[i] for i in best]
    report = score_predictions(gold, predicted, sorted(set(labels) | set(gold)))
    confidence = probabilities.max(axis=1)
    correct = [p == g for p, g in zip(predicted, gold, strict=True)]
    return {
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "ece": expected_calibration_error(confidence.tolist(), correct),
    }


def run_recipes(
    encoder: CachedEncoder,
    train: Sequence[Example],
    test: Sequence[Example],
    taxonomy: Taxonomy | None,
    *,
    few_shot: bool,
) -> dict[str, dict[str, Any]]:
    """Every recipe on one training set, scored on ``test`` (``no-taxonomy`` when few-shot)."""
    texts = [e.text for e in test]
    gold = [e.label for e in test]
    out: dict[str, dict[str, Any]] = {}
    runs: dict[str, Callable[[], tuple[Any, ...]]] = {
        "default": lambda: default_learner(encoder, train, texts, taxonomy),
    }
    if few_shot:
        runs["no-taxonomy"] = lambda: default_learner(encoder, train, texts)
    runs["ref-tfidf"] = lambda: reference_tfidf(train, texts)
    runs["ref-minilm"] = lambda: reference_minilm(encoder, train, texts)
    for name, fit in runs.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit()
        row: dict[str, Any] = scores(gold, result[0], result[1])
        row["seconds"] = round(time.perf_counter() - start, 1)
        if name in ("default", "no-taxonomy"):
            row["chosen"] = result[2].get("chosen", {}).get("name")
            row["selection"] = result[2]
        out[name] = row
    encoder.save()
    return out


def summarise(draws: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean and spread (population standard deviation) of each recipe's figures over draws."""
    out: dict[str, dict[str, Any]] = {}
    for recipe in RECIPES:
        rows = [d[recipe] for d in draws]
        summary: dict[str, Any] = {}
        for key in ("accuracy", "macro_f1", "ece"):
            values = [r[key] for r in rows]
            summary[key] = statistics.fmean(values)
            summary[f"{key}_sd"] = statistics.pstdev(values)
            summary[f"{key}_draws"] = values
        if recipe in ("default", "no-taxonomy"):
            summary["chosen"] = [r["chosen"] for r in rows]
        out[recipe] = summary
    return out


def measure_quality(root: Path, name: str, draws: int) -> dict[str, Any]:
    encoder = CachedEncoder(CACHE / name)
    train, test = load_dataset(root, name)
    taxonomy = dataset_taxonomy(name)
    full = run_recipes(encoder, train, test, taxonomy, few_shot=False)
    print(f"{name} full: " + _line(full), file=sys.stderr, flush=True)
    shots = []
    for seed in range(draws):
        drawn = sample_per_label(train, SHOTS, seed=seed)
        shots.append(run_recipes(encoder, drawn, test, taxonomy, few_shot=True))
        print(f"{name} {SHOTS}-shot seed {seed}: " + _line(shots[-1]), file=sys.stderr, flush=True)
    return {
        "dataset": name,
        "n_train": len(train),
        "n_test": len(test),
        "n_labels": len({e.label for e in train}),
        "taxonomy": taxonomy is not None,
        "full": full,
        f"{SHOTS}_shot": summarise(shots),
    }


def _line(rows: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{k} {v['accuracy']:.2%} (ECE {v['ece']:.3f})" for k, v in rows.items())


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_timing(root: Path, name: str) -> dict[str, Any]:
    """Train the default learner with the real encoder; time it and single-ticket predictions."""
    train, test = load_dataset(root, name)
    labels = sorted({e.label for e in train})
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    model = asyncio.run(EmbeddingLearner().train(train, labels, seed=0))
    train_seconds = time.perf_counter() - start
    train_cpu_seconds = _cpu_seconds() - cpu_before
    latencies: list[float] = []
    for i in range(WARM_UP_CALLS + LATENCY_CALLS):
        text = test[i % len(test)].text
        begin = time.perf_counter()
        model.predict_sync([text])
        if i >= WARM_UP_CALLS:
            latencies.append((time.perf_counter() - begin) * 1000)
    latencies.sort()
    return {
        "dataset": name,
        "n_train": len(train),
        "chosen": model.configuration.name,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "latency_ms_p50": round(latencies[len(latencies) // 2], 2),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _cell(row: dict[str, Any], key: str = "accuracy") -> str:
    if f"{key}_sd" in row:
        return f"{row[key]:.2%} ± {row[f'{key}_sd']:.2%}"
    return f"{row[key]:.2%}"


def markdown(results: list[dict[str, Any]], timings: list[dict[str, Any]]) -> str:
    """Accuracy (ECE) of each recipe per dataset and setting, then the timing table."""
    lines = [
        "| dataset | setting | default | no taxonomy | ref-tfidf | ref-minilm | default ECE "
        "| default chose |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        for setting in ("full", f"{SHOTS}_shot"):
            rows = r[setting]
            chosen = rows["default"]["chosen"]
            if isinstance(chosen, list):
                chosen = "; ".join(f"{c} ×{chosen.count(c)}" for c in dict.fromkeys(chosen))
            label = "full" if setting == "full" else f"{SHOTS}-shot, {DRAWS} draws"
            ece = rows["default"]["ece"]
            bare = _cell(rows["no-taxonomy"]) if "no-taxonomy" in rows else "(same)"
            lines.append(
                f"| {r['dataset']} | {label} | {_cell(rows['default'])} | {bare} "
                f"| {_cell(rows['ref-tfidf'])} | {_cell(rows['ref-minilm'])} | {ece:.3f} "
                f"| {chosen} |"
            )
    if timings:
        lines += [
            "",
            "| dataset | n_train | chose | train s | train CPU s | p50 ms | p99 ms | peak RSS MB |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for t in timings:
            lines.append(
                f"| {t['dataset']} | {t['n_train']} | {t['chosen']} | {t['train_seconds']} "
                f"| {t['train_cpu_seconds']} | {t['latency_ms_p50']} | {t['latency_ms_p99']} "
                f"| {t['peak_rss_mb']} |"
            )
    return "\n".join(lines)


def goals(results: list[dict[str, Any]], timings: list[dict[str, Any]]) -> dict[str, bool]:
    """The issue's goals, each true or false."""
    out: dict[str, bool] = {}
    for r in results:
        for setting in ("full", f"{SHOTS}_shot"):
            rows = r[setting]
            better = max(rows["ref-tfidf"]["accuracy"], rows["ref-minilm"]["accuracy"])
            out[f"{r['dataset']} {setting}: default >= better reference"] = (
                rows["default"]["accuracy"] >= better
            )
            out[f"{r['dataset']} {setting}: ECE <= 0.05"] = rows["default"]["ece"] <= 0.05
        if r["dataset"] == "banking77":
            out["banking77 full >= 94.5 %"] = r["full"]["default"]["accuracy"] >= 0.945
            out["banking77 10-shot mean >= 87 %"] = (
                r[f"{SHOTS}_shot"]["default"]["accuracy"] >= 0.87
            )
    for t in timings:
        if t["n_train"] >= 10_000:
            out[f"{t['dataset']} train <= 120 s"] = t["train_seconds"] <= 120
        out[f"{t['dataset']} p99 <= 20 ms"] = t["latency_ms_p99"] <= 20
        out[f"{t['dataset']} peak RSS <= 1.5 GB"] = t["peak_rss_mb"] <= 1536
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=default_datasets())
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quality.json")
    parser.add_argument("--dataset", action="append", help="only these datasets (folder names)")
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--no-timing", action="store_true", help="skip the timing subprocesses")
    parser.add_argument("--timing-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timing_only:
        print(json.dumps(measure_timing(args.datasets, args.timing_only)))
        return
    names = args.dataset or dataset_names(args.datasets)
    timings: list[dict[str, Any]] = []
    if not args.no_timing:
        for name in names:
            command = [sys.executable, __file__, "--datasets", str(args.datasets)]
            done = subprocess.run(  # noqa: S603
                [*command, "--timing-only", name], stdout=subprocess.PIPE, text=True, check=True
            )
            timings.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{name} timing: {timings[-1]}", file=sys.stderr, flush=True)
    results = [measure_quality(args.datasets, name, args.draws) for name in names]
    table = markdown(results, timings)
    met = goals(results, timings)
    print(table)
    print("\n".join(f"- {'met' if ok else 'NOT met'}: {goal}" for goal, ok in met.items()))
    machine = {"python": platform.python_version(), "machine": platform.machine()}
    payload = {"machine": machine, "results": results, "timings": timings, "goals": met}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
