"""The "not a request" filter on data it was never fitted or tuned on (#14 item 2).

Fits the filter exactly as the bot does at start-up (the shipped examples and the starter
tickets; its threshold chosen by cross-validation on them), then measures:

- the project's evaluation set (``data/request_filter/eval.jsonl``: requests and non-requests
  written for this project, separate from the training examples): precision and recall of
  "not a request", real requests skipped, non-requests routed;
- the public datasets' texts (BANKING77, Bitext customer support, NLBSE'24 issue reports; every
  one a request), read from ``../shared/datasets``: requests skipped per dataset;
- time to classify one message (mean and p99 over every message above) and to fit.

Goals (intake): real requests skipped <= 1 %, non-requests routed <= 10 %. The last line is
one JSON object.

    python bench/request_filter.py [--datasets PATH] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from bench.banking77 import find_datasets  # noqa: E402
from classifier.request_filter import FilterExample, RequestFilter, fit_request_filter  # noqa: E402
from data.request_examples import (  # noqa: E402
    REQUEST_FILTER_EVAL,
    read_filter_examples,
    shipped_filter_examples,
)

#: The public datasets (folder names under the shared datasets folder); all rows are requests.
PUBLIC = ("banking77", "bitext_customer_support", "nlbse24_issue_reports")


def read_public_requests(folder: Path) -> list[str]:
    """Every text of the dataset (train and test splits), each a real customer request."""
    texts: list[str] = []
    for split in ("train", "test"):
        with (folder / f"{split}.jsonl").open(encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    return texts


def _timed(model: RequestFilter, texts: list[str], times: list[float]) -> list[bool]:
    """Whether each text is routed, timing each decision (milliseconds) into ``times``."""
    routed = []
    for text in texts:
        started = time.perf_counter()
        decision = model.decide(text)
        times.append((time.perf_counter() - started) * 1000)
        routed.append(decision.is_request)
    return routed


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", help="the shared datasets folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    datasets = find_datasets(args.datasets)

    shipped = shipped_filter_examples()
    started = time.perf_counter()
    model = fit_request_filter(shipped, seed=args.seed)
    fit_seconds = time.perf_counter() - started
    requests_n = sum(e.is_request for e in shipped)
    print(
        f"Fitted on {len(shipped)} shipped examples ({requests_n} requests, "
        f"{len(shipped) - requests_n} non-requests) in {fit_seconds:.2f} s; "
        f"threshold {model.threshold:.3f} (cross-validated on the training examples)"
    )

    times: list[float] = []
    evaluation: list[FilterExample] = read_filter_examples(REQUEST_FILTER_EVAL)
    routed = _timed(model, [e.text for e in evaluation], times)
    requests = [r for r, e in zip(routed, evaluation, strict=True) if e.is_request]
    others = [r for r, e in zip(routed, evaluation, strict=True) if not e.is_request]
    skipped_requests = sum(not r for r in requests)
    skipped_others = sum(not r for r in others)
    routed_others = len(others) - skipped_others
    precision = skipped_others / max(1, skipped_others + skipped_requests)
    recall = skipped_others / max(1, len(others))
    print(
        f"\nEvaluation set ({REQUEST_FILTER_EVAL.relative_to(ROOT)}): {len(requests)} requests, "
        f"{len(others)} non-requests"
    )
    print(f"  'not a request' precision {precision:.3f}, recall {recall:.3f}")
    print(
        f"  real requests skipped:  {skipped_requests}/{len(requests)} = "
        f"{_pct(skipped_requests, len(requests))} %   (goal <= 1 %)"
    )
    print(
        f"  non-requests routed:    {routed_others}/{len(others)} = "
        f"{_pct(routed_others, len(others))} %   (goal <= 10 %)"
    )
    missed = [e.text for r, e in zip(routed, evaluation, strict=True) if e.is_request and not r]
    if missed:
        print("  requests skipped:", "; ".join(repr(t) for t in missed))

    print("\nPublic datasets' requests (every text is a request):")
    public_skipped = public_total = 0
    per_dataset: dict[str, float] = {}
    for name in PUBLIC:
        texts = read_public_requests(datasets / name)
        kept = _timed(model, texts, times)
        skipped = sum(not k for k in kept)
        public_skipped += skipped
        public_total += len(texts)
        per_dataset[name] = _pct(skipped, len(texts))
        examples = [t for t, k in zip(texts, kept, strict=True) if not k][:3]
        print(
            f"  {name:<26} {skipped:>5}/{len(texts):<6} skipped = {per_dataset[name]} %"
            + (f"  e.g. {examples!r}" if examples else "")
        )
    print(
        f"  all                        {public_skipped:>5}/{public_total:<6} skipped = "
        f"{_pct(public_skipped, public_total)} %"
    )

    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    mean = statistics.fmean(times)
    short = sorted(times[: len(evaluation)])  # Slack-length messages of the evaluation set
    print(f"\nClassify time per message: mean {mean:.3f} ms, p99 {p99:.3f} ms ({len(times)} msgs)")
    print(
        f"  evaluation-set messages: median {statistics.median(short):.3f} ms; "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        json.dumps(
            {
                "requests_skipped": _pct(skipped_requests, len(requests)),
                "nonrequests_routed": _pct(routed_others, len(others)),
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "public_requests_skipped": _pct(public_skipped, public_total),
                "public_skipped_by_dataset": per_dataset,
                "classify_ms_mean": round(mean, 4),
                "classify_ms_p99": round(p99, 4),
                "classify_ms_median_eval": round(statistics.median(short), 4),
                "fit_seconds": round(fit_seconds, 2),
                "threshold": round(model.threshold, 4),
                "eval_requests": len(requests),
                "eval_nonrequests": len(others),
            }
        )
    )


if __name__ == "__main__":
    main()
