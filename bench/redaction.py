"""How long PII redaction takes on inputs that make careless patterns backtrack.

Each input of ``tests/classifier/test_redaction.PATHOLOGICAL`` is redacted at its size and at
twice its size; linear patterns take about twice as long, quadratic ones four times. Prints a
table and ends with one JSON line: ``{"worst_ms": ..., "worst_growth": ...}`` (growth = time
at 2n / time at n).

    python bench/redaction.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from classifier.redaction import redact_pii
from tests.classifier.test_redaction import PATHOLOGICAL


def best_ms(text: str, repeat: int) -> float:
    """The fastest of ``repeat`` runs, in milliseconds (the least disturbed by other work)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        redact_pii(text)
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    worst_ms = worst_growth = 0.0
    print(f"{'input':<10} {'chars':>7} {'ms at n':>9} {'ms at 2n':>9} {'growth':>7}")
    for text in PATHOLOGICAL:
        at_n = best_ms(text, args.repeat)
        at_2n = best_ms(text * 2, args.repeat)
        growth = at_2n / max(at_n, 1e-3)
        worst_ms, worst_growth = max(worst_ms, at_2n), max(worst_growth, growth)
        print(f"{text[:4]!r:<10} {len(text):>7} {at_n:>9.2f} {at_2n:>9.2f} {growth:>7.2f}")
    print(json.dumps({"worst_ms": round(worst_ms, 2), "worst_growth": round(worst_growth, 2)}))


if __name__ == "__main__":
    main()
