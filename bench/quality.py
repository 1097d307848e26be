"""Quality benchmark of the local learners on public datasets (not a test).

    python bench/quality.py [--datasets ../shared/datasets] [--out bench/results/quality.json]

For each dataset and learner, a fresh subprocess trains on the dataset's training split,
evaluates on its official test split, times 300 single-ticket predictions (after 10 warm-up
calls) and reports its peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``,
so imports, the encoder, data and model all count). Prints a Markdown table and writes JSON.
The datasets are read in place, never copied (see ../shared/datasets/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from classifier.evaluation import score_predictions  # noqa: E402
from classifier.examples import Example, read_examples, sample_per_label  # noqa: E402
from classifier.learners import get_learner  # noqa: E402

LEARNERS = ("tfidf", "embedding")
DATASETS = ("banking77", "banking77-10shot", "banking77-departments", "bitext")
LATENCY_CALLS = 300
WARM_UP_CALLS = 10


def default_datasets() -> Path:
    """../shared/datasets from the repository (or from the folder of worktrees it sits in)."""
    for base in (REPO.parent, REPO.parent.parent):
        if (base / "shared" / "datasets").is_dir():
            return base / "shared" / "datasets"
    return REPO.parent / "shared" / "datasets"


def load_dataset(root: Path, name: str) -> tuple[list[Example], list[Example]]:
    """(train, test) examples of one benchmark dataset."""
    folder = root / ("bitext_customer_support" if name == "bitext" else "banking77")
    train = read_examples(folder / "train.jsonl")
    test = read_examples(folder / "test.jsonl")
    if name == "banking77-10shot":
        train = sample_per_label(train, 10, seed=0)
    if name == "banking77-departments":
        mapping = json.loads((folder / "department_mapping.json").read_text())[
            "label_to_department"
        ]
        train = [Example(e.text, mapping[e.label], e.source) for e in train]
        test = [Example(e.text, mapping[e.label], e.source) for e in test]
    return train, test


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(root: Path, dataset: str, learner_name: str) -> dict[str, Any]:
    """Train, evaluate and time one learner on one dataset (run in its own process)."""
    train, test = load_dataset(root, dataset)
    labels = sorted({e.label for e in train})
    learner = get_learner(learner_name)
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    model = asyncio.run(learner.train(train, labels, seed=0))
    train_seconds = time.perf_counter() - start
    # CPU time is an upper bound on the wall time of an idle machine: it stays honest when other
    # work shares the cores (wall time then also counts waiting for a core).
    train_cpu_seconds = _cpu_seconds() - cpu_before
    predictions = model.predict_sync([e.text for e in test])  # type: ignore[attr-defined]
    report = score_predictions(
        [e.label for e in test], [p.label for p in predictions], model.labels
    )
    latencies: list[float] = []
    for i in range(WARM_UP_CALLS + LATENCY_CALLS):
        text = test[i % len(test)].text
        begin = time.perf_counter()
        model.predict_sync([text])  # type: ignore[attr-defined]
        if i >= WARM_UP_CALLS:
            latencies.append((time.perf_counter() - begin) * 1000)
    latencies.sort()
    confidence = sum(p.confidence for p in predictions) / len(predictions)
    return {
        "dataset": dataset,
        "learner": learner_name,
        "model_id": model.model_id,
        "n_train": len(train),
        "n_test": len(test),
        "n_labels": len(model.labels),
        "accuracy": report.accuracy,
        "accuracy_ci": list(report.accuracy_ci),
        "macro_f1": report.macro_f1,
        "mean_confidence": confidence,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "latency_ms_p50": latencies[len(latencies) // 2],
        "latency_ms_p99": latencies[int(len(latencies) * 0.99) - 1],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| dataset | learner | n_train | accuracy (95% CI) | macro-F1 | mean conf. | train s "
        "| train CPU s | p50 ms | p99 ms | peak RSS MB |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["accuracy_ci"]
        cpu = f"{r['train_cpu_seconds']:.1f}" if "train_cpu_seconds" in r else "-"
        lines.append(
            f"| {r['dataset']} | {r['learner']} | {r['n_train']} | {r['accuracy']:.2%} "
            f"({low:.1%}-{high:.1%}) | {r['macro_f1']:.4f} | {r['mean_confidence']:.3f} "
            f"| {r['train_seconds']:.1f} | {cpu} "
            f"| {r['latency_ms_p50']:.2f} | {r['latency_ms_p99']:.2f} "
            f"| {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=default_datasets())
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quality.json")
    parser.add_argument("--only", nargs=2, metavar=("DATASET", "LEARNER"), help=argparse.SUPPRESS)
    parser.add_argument("--dataset", action="append", choices=DATASETS)
    parser.add_argument("--learner", action="append", choices=LEARNERS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.datasets, *args.only)))
        return
    rows: list[dict[str, Any]] = []
    for dataset in args.dataset or DATASETS:
        for learner in args.learner or LEARNERS:
            command = [sys.executable, __file__, "--datasets", str(args.datasets)]
            command += ["--only", dataset, learner]
            done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)  # noqa: S603
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{dataset} / {learner}: {rows[-1]['accuracy']:.2%}", file=sys.stderr)
    table = markdown(rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine()}
    args.out.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
