"""The request filter's shipped examples: written for this project, read from ``data/``.

``request_filter/train.jsonl`` holds messages labelled ``request`` / ``not_request`` (greetings,
thanks, acknowledgements, emoji, links, out-of-office lines, and short real requests such as
"refund?"); the starter tickets add the requests of every department. A starter ticket that the
filter's own file calls no request ("ok", "hi") keeps the filter's label.
``request_filter/eval.jsonl`` is the separate evaluation set (``bench/request_filter.py``): it
is never trained or tuned on.
"""

from __future__ import annotations

from pathlib import Path

from classifier.errors import DatasetError
from classifier.examples import read_examples
from classifier.request_filter import LABELS, NOT_REQUEST, REQUEST, FilterExample, merge_examples
from data import DATA_DIR, STARTER_TRAIN

#: Messages labelled ``request`` / ``not_request`` for fitting the filter.
REQUEST_FILTER_TRAIN = DATA_DIR / "request_filter" / "train.jsonl"
#: The held-out evaluation set (never fitted on).
REQUEST_FILTER_EVAL = DATA_DIR / "request_filter" / "eval.jsonl"


def read_filter_examples(path: Path) -> list[FilterExample]:
    """A ``request`` / ``not_request`` JSONL file; DatasetError names the file and the line
    (or, for a label that is neither, the example's number)."""
    examples = read_examples(path)
    for number, example in enumerate(examples, start=1):
        if example.label not in LABELS:
            raise DatasetError(
                f"{path}: example {number} is labelled {example.label!r}; the request filter's "
                f"examples are labelled {REQUEST!r} or {NOT_REQUEST!r}."
            )
    return [FilterExample(e.text, e.label == REQUEST) for e in examples]


def shipped_filter_examples() -> list[FilterExample]:
    """The built-in start: the starter tickets as requests, then the filter's own file."""
    tickets = [FilterExample(e.text, True) for e in read_examples(STARTER_TRAIN)]
    return merge_examples(tickets, read_filter_examples(REQUEST_FILTER_TRAIN))
