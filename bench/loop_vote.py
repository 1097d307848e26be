"""Offline: how the team's vote would have routed a stream, from ``bench/loop.py --trace`` files.

Replays each traced ticket with the model's probabilities as they were (the same retrains at the
same tickets; only the routing differs, so corrections, and the retrains they trigger, are not
re-simulated) and routes it by ``(1 - w) * model + w * vote``, the vote of the ``k`` most similar
team tickets labelled before it (a corrected one at once, a confirmed one ``--confirm`` tickets
later: an hour at 100 tickets a day), then a near-duplicate correction at ``--threshold``.
Prints right first time per setting and trace. Used to choose the vote's settings on choosing
streams (``bench/loop.py --choosing-stream SEED --trace FILE`` with the vote off:
``--vote weight=0``); never on the benchmark's own stream.

    python bench/loop_vote.py TRACE.json [TRACE.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "out" / "loop"


def load(path: Path, vectors: dict[str, int], matrix: npt.NDArray[np.float32]) -> dict[str, Any]:
    """The loop policy's first 1,000 traced tickets as arrays."""
    trace = json.loads(path.read_text())["loop"][:1000]
    labels = sorted(trace[0]["probabilities"])
    index = {label: i for i, label in enumerate(labels)}
    rows = matrix[[vectors[t["text"]] for t in trace]].astype(np.float64)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return {
        "similarity": rows @ rows.T,
        "probabilities": np.array([[t["probabilities"][x] for x in labels] for t in trace]),
        "truth": np.array([index[t["truth"]] for t in trace]),
        "labels": len(labels),
    }


def replay(
    run: dict[str, Any],
    *,
    weight: float,
    neighbours: int = 5,
    temperature: float = 0.05,
    floor: float = -1.0,
    full_at: int = 1,
    threshold: float | None = 0.8,
    young_threshold: float | None = None,
    confirm: int = 5,
) -> float:
    """Right first time over the trace with this vote and near-duplicate rule."""
    sim, probs, truth = run["similarity"], run["probabilities"], run["truth"]
    n = len(truth)
    corrected = np.zeros(n, dtype=bool)
    for i in range(n):
        route = int(np.argmax(probs[i]))
        known = [j for j in range(i) if corrected[j] or i - j >= confirm]
        if known and weight > 0:
            s = sim[i, known]
            top = np.argsort(-s, kind="stable")[:neighbours]
            top = top[s[top] >= floor - 1e-6]
            if len(top):
                vote = np.zeros(run["labels"])
                np.add.at(vote, truth[known][top], np.exp((s[top] - s[top].max()) / temperature))
                w = weight * min(1.0, len(known) / full_at)
                route = int(np.argmax((1 - w) * probs[i] + w * vote / vote.sum()))
        corrections = [j for j in range(i) if corrected[j]]
        if threshold is not None and corrections:
            s = sim[i, corrections]
            best = int(np.argmax(s))
            young = young_threshold is not None and len(corrections) < 100
            if s[best] >= (young_threshold if young else threshold) - 1e-6:
                route = int(truth[corrections[best]])
        corrected[i] = route != truth[i]
    return float(1 - corrected.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("traces", nargs="+", type=Path)
    args = parser.parse_args()
    texts = json.loads((CACHE / "texts.json").read_text())
    matrix = np.load(CACHE / "vectors.npy")
    vectors = {text: i for i, text in enumerate(texts)}
    runs = [load(path, vectors, matrix) for path in args.traces]
    settings: list[tuple[str, dict[str, Any]]] = [
        ("model alone", {"weight": 0.0, "threshold": None}),
        ("near-duplicates as on main (0.65 young, 0.80)", {"weight": 0.0, "young_threshold": 0.65}),
    ]
    for k, t, w in product((3, 5, 8), (0.03, 0.05, 0.1), (0.4, 0.5, 0.6, 0.7, 0.8, 1.0)):
        settings.append(
            (
                f"vote k={k} T={t} w={w}, no near-duplicates",
                {"weight": w, "neighbours": k, "temperature": t, "threshold": None},
            )
        )
    for young in (0.65, None):
        settings.append(
            (
                f"vote k=5 T=0.05 w=0.6, near-duplicates {young or 0.8}/0.8",
                {"weight": 0.6, "young_threshold": young},
            )
        )
    for floor, full_at in ((0.3, 1), (0.4, 1), (0.5, 1), (0.6, 1), (-1.0, 10), (0.3, 10)):
        settings.append(
            (
                f"vote k=5 T=0.05 w=0.6, floor {floor}, full at {full_at}, nd 0.8",
                {"weight": 0.6, "floor": floor, "full_at": full_at},
            )
        )
    print("| setting | " + " | ".join(p.name for p in args.traces) + " | mean |")
    print("|---|" + "---|" * (len(runs) + 1))
    for name, kwargs in settings:
        scores = [replay(run, **kwargs) for run in runs]
        cells = " | ".join(f"{s:.1%}" for s in scores)
        print(f"| {name} | {cells} | {np.mean(scores):.2%} |", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
