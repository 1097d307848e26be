"""Labelled examples and datasets: read/write JSONL, de-duplicate, split, count.

Two line formats are read, detected line by line:

* plain: ``{"text": "...", "label": "...", "source": "starter"}`` (``source`` optional)
* the seed's chat fine-tuning format:
  ``{"messages": [{"role": "system", ...}, {"role": "user", "content": TEXT},
  {"role": "assistant", "content": LABEL}]}``
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from classifier.errors import DatasetError

#: Longest ticket text kept; longer texts are cut here (Slack messages are at most 40,000 chars).
MAX_TEXT_CHARS = 40_000


class Source(StrEnum):
    """Where an example came from."""

    STARTER = "starter"
    GENERATED = "generated"
    CORRECTION = "correction"
    TICKET = "ticket"
    IMPORTED = "imported"
    #: Made from the taxonomy file (descriptions, keywords, examples); never stored.
    TAXONOMY = "taxonomy"


@dataclass(frozen=True)
class Example:
    """One labelled ticket."""

    text: str
    label: str
    source: Source = Source.IMPORTED


def normalise_text(text: str) -> str:
    """The form used to spot duplicates: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _example_from(obj: object, where: str, default_source: Source) -> Example:
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}.")
    if "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list):
            raise DatasetError(f"{where}: 'messages' must be a list.")
        user = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        assistant = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
        if not user or not assistant:
            raise DatasetError(f"{where}: chat example needs a user and an assistant message.")
        text, label = user[-1].get("content"), assistant[-1].get("content")
    elif "text" in obj or "label" in obj:
        text, label = obj.get("text"), obj.get("label")
    else:
        raise DatasetError(f"{where}: expected 'text' and 'label', or chat 'messages'.")
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"{where}: the ticket text is missing or empty.")
    if not isinstance(label, str) or not label.strip():
        raise DatasetError(f"{where}: the label is missing or empty.")
    raw_source = obj.get("source", default_source.value)
    try:
        source = Source(raw_source)
    except ValueError:
        raise DatasetError(
            f"{where}: unknown source {raw_source!r}; use one of "
            f"{', '.join(s.value for s in Source)}."
        ) from None
    return Example(text=text.strip()[:MAX_TEXT_CHARS], label=label.strip(), source=source)


def read_examples(path: Path, default_source: Source = Source.IMPORTED) -> list[Example]:
    """Read a JSONL dataset (plain or chat lines, mixed freely); blank lines are skipped.

    Raises DatasetError naming the file and line for anything unreadable, and for a file with
    no examples at all.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file.") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror}).") from None
    examples: list[Example] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        where = f"{path}:{number}"
        try:
            decoded = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DatasetError(f"{where}: not valid UTF-8 text.") from None
        if not decoded:
            continue
        try:
            obj = json.loads(decoded)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg}).") from None
        examples.append(_example_from(obj, where, default_source))
    if not examples:
        raise DatasetError(f"{path}: the file has no examples.")
    return examples


def read_datasets(paths: Iterable[Path], default_source: Source = Source.IMPORTED) -> list[Example]:
    """Read several JSONL files into one list, in order."""
    out: list[Example] = []
    for path in paths:
        out.extend(read_examples(path, default_source))
    return out


def to_plain_record(example: Example) -> dict[str, str]:
    """The plain JSONL record of an example."""
    return {"text": example.text, "label": example.label, "source": example.source.value}


def to_chat_record(example: Example, system_prompt: str) -> dict[str, list[dict[str, str]]]:
    """The seed's chat fine-tuning record: system prompt, the ticket, the department."""
    return {
        "messages": [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": example.text},
            {"role": "assistant", "content": example.label},
        ]
    }


def write_examples(
    path: Path, examples: Iterable[Example], *, chat_system_prompt: str | None = None
) -> int:
    """Write examples as JSONL (chat format when a system prompt is given); returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for example in examples:
            record: dict[str, Any] = (
                to_chat_record(example, chat_system_prompt)
                if chat_system_prompt is not None
                else to_plain_record(example)
            )
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def deduplicate(examples: Iterable[Example]) -> list[Example]:
    """Drop repeated texts (after normalisation); the last occurrence's label wins.

    "Last wins" is what corrections need: a later human label replaces an earlier one. The
    surviving example keeps the position of the first occurrence so order stays stable.
    """
    position: dict[str, int] = {}
    out: list[Example] = []
    for example in examples:
        key = normalise_text(example.text)
        if key in position:
            out[position[key]] = example
        else:
            position[key] = len(out)
            out.append(example)
    return out


def label_counts(examples: Iterable[Example]) -> dict[str, int]:
    """Examples per label, most common first."""
    return dict(Counter(e.label for e in examples).most_common())


def labels_of(examples: Iterable[Example]) -> tuple[str, ...]:
    """The sorted set of labels in ``examples``."""
    return tuple(sorted({e.label for e in examples}))


def stratified_split(
    examples: Sequence[Example], test_fraction: float, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """Deterministic per-label split into (train, test).

    Every label with at least two examples keeps one in each part; the same input and seed give
    the same split on every machine.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    by_label: dict[str, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    rng = random.Random(seed)
    train: list[Example] = []
    test: list[Example] = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        n_test = round(len(group) * test_fraction)
        n_test = min(max(n_test, 1), len(group) - 1) if len(group) >= 2 else 0
        test.extend(group[:n_test])
        train.extend(group[n_test:])
    return train, test


def sample_per_label(examples: Sequence[Example], k: int, seed: int = 0) -> list[Example]:
    """At most ``k`` examples of each label, chosen with a seeded RNG (few-shot benchmarks)."""
    by_label: dict[str, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    rng = random.Random(seed)
    out: list[Example] = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        out.extend(group[:k])
    return out


def example_from_record(
    obj: object, where: str, default_source: Source = Source.IMPORTED
) -> Example:
    """One example from a decoded JSON line (plain or chat); DatasetError names ``where``."""
    return _example_from(obj, where, default_source)
