"""Where one BANKING77 ticket's time goes in the embedding model (not a test).

    python bench/ticket_profile.py [--model out/banking77-timing.model] [--calls 300]
                                   [--repeats 3] [--datasets ../shared/datasets]

The model is the one ``bench/quality.py --timing-only banking77`` trains (the default learner,
the real encoder, the full training split, seed 0), trained once and kept in ``--model``. Each of
the first ``--calls`` test tickets is run ``--repeats`` times, part by part as
``EmbeddingModel.probabilities`` runs it, on this thread: the TF-IDF part, the encoder (its
tokenizer and ONNX Runtime pass), the embedding head, the nearest remembered examples; then the
whole ``predict_sync``. For each: the calling thread's CPU time (which other processes' load
barely changes) and wall time, median and 99th percentile. The encoder's second ONNX Runtime
thread and the TF-IDF side thread are not in the thread's CPU. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from classifier.artifacts import load_model  # noqa: E402
from classifier.examples import read_examples  # noqa: E402
from classifier.learners.embedding import (  # noqa: E402
    EmbeddingLearner,
    EmbeddingModel,
    encode_view,
    shared_encoder,
)

WARM_UP_CALLS = 10


def trained_model(path: Path, datasets: Path) -> EmbeddingModel:
    """The BANKING77 timing model from ``path``, trained and written there first if missing."""
    if not path.exists():
        train = read_examples(datasets / "banking77" / "train.jsonl")
        labels = sorted({e.label for e in train})
        trained = asyncio.run(EmbeddingLearner().train(train, labels, seed=0))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(trained.to_bytes())
    model = load_model(path.read_bytes())
    if not isinstance(model, EmbeddingModel):
        raise SystemExit(f"{path} is not an embedding model")
    return model


def stages(model: EmbeddingModel) -> dict[str, Callable[[list[str]], object]]:
    """The parts of ``probabilities`` for one ticket, each callable on its own."""
    config, encoder = model.configuration, shared_encoder()
    embedded: dict[str, Any] = {}

    def encode(texts: list[str]) -> object:
        embedded["rows"] = encode_view(encoder, texts, config.view)
        return embedded["rows"]

    def head(texts: list[str]) -> object:
        weighted = embedded["rows"] * np.float32(config.embedding_weight)
        return weighted @ model._embedding_coef.T

    parts: dict[str, Callable[[list[str]], object]] = {"tfidf": model._text_scores}
    if config.uses_embeddings:
        parts["encoder"] = encode
        parts["embedding head"] = head
    memory, n_labels = model._memory, len(model.labels)
    if memory is not None:
        parts["nearest examples"] = lambda texts: memory.nearest(embedded["rows"], n_labels)
    parts["predict_sync (whole)"] = model.predict_sync
    return parts


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p99": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "out" / "banking77-timing.model")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    args = parser.parse_args()
    model = trained_model(args.model, args.datasets)
    test = read_examples(args.datasets / "banking77" / "test.jsonl")
    texts = [e.text for e in test[: args.calls]]
    parts = stages(model)
    cpu: dict[str, list[float]] = {name: [] for name in parts}
    wall: dict[str, list[float]] = {name: [] for name in parts}
    for text in texts[:WARM_UP_CALLS]:
        for run in parts.values():
            run([text])
    for _ in range(args.repeats):
        for text in texts:
            for name, run in parts.items():
                began_cpu, began = time.thread_time(), time.perf_counter()
                run([text])
                wall[name].append((time.perf_counter() - began) * 1000)
                cpu[name].append((time.thread_time() - began_cpu) * 1000)
    results = {
        name: {"cpu_ms": percentiles(cpu[name]), "wall_ms": percentiles(wall[name])}
        for name in parts
    }
    print(f"{'part':22} thread CPU p50 / p99 ms   wall p50 / p99 ms  ({len(cpu['tfidf'])} calls)")
    for name, row in results.items():
        c, w = row["cpu_ms"], row["wall_ms"]
        print(f"{name:22} {c['p50']:8.3f} / {c['p99']:7.3f}   {w['p50']:8.3f} / {w['p99']:7.3f}")
    print(json.dumps({"model": model.configuration.name, "parts": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
