"""Synthetic tickets (``triage generate``): diverse, labelled, de-duplicated, seeded.

For each department the model is asked, as structured JSON, for a batch of tickets with a
brief chosen by a seeded RNG (tones, customer types, products, lengths, languages), so two
batches differ and the same seed asks the same questions. Every ticket is checked before it is
kept: its department must be the one asked for, and it must be neither an exact duplicate
(normalised text) nor a near duplicate (character 4-gram Jaccard >= ``near_duplicate``) of any
kept ticket or of the existing data. Batches continue until each department has its quota or
``max_rounds`` is spent (the shortfall is reported, never silently ignored).

The seed's split is the default size: 50 training and 15 test tickets over five departments.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.errors import DatasetError
from classifier.examples import Example, Source, normalise_text, to_chat_record
from classifier.json_value import JsonObject
from classifier.llm.chat import complete, match_label
from classifier.llm.client import OpenAIClient
from classifier.llm.prompts import finetune_system_prompt
from classifier.llm.similarity import jaccard, shingles
from classifier.protocols import ProgressCallback, ProgressEvent, no_progress
from classifier.taxonomy import Taxonomy

TRAIN_TOTAL = 50
TEST_TOTAL = 15
NEAR_DUPLICATE = 0.7

TONES = ("polite", "frustrated", "terse", "chatty", "confused", "urgent", "formal", "angry")
CUSTOMERS = (
    "a small-business owner",
    "an enterprise IT admin",
    "a first-time user",
    "a long-time power user",
    "a non-technical manager",
    "a developer integrating the API",
    "a finance clerk",
    "a student on a free plan",
)
PRODUCTS = (
    "the web dashboard",
    "the mobile app",
    "the public API",
    "the reporting module",
    "the team workspace",
    "the calendar integration",
)
LENGTHS = ("one short sentence", "two or three sentences", "a detailed paragraph")


@dataclass
class GenerationReport:
    """What was generated, and what was thrown away and why."""

    examples: list[Example] = field(default_factory=list)
    rejected: dict[str, int] = field(
        default_factory=lambda: {"wrong_department": 0, "duplicate": 0, "near_duplicate": 0}
    )
    shortfall: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def ticket_schema(labels: Sequence[str]) -> JsonObject:
    """Structured output for a batch of tickets (the department from the label set)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "synthetic_tickets",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "tickets": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "text": {"type": "string"},
                                "department": {"type": "string", "enum": list(labels)},
                            },
                            "required": ["text", "department"],
                            "additionalProperties": False,
                        },
                    }
                },
                "required": ["tickets"],
                "additionalProperties": False,
            },
        },
    }


def generation_messages(
    taxonomy: Taxonomy,
    department: str,
    count: int,
    rng: random.Random,
    languages: Sequence[str],
) -> list[dict[str, str]]:
    """The request for one batch, with a seeded brief so batches differ."""
    dept = taxonomy.get(department)
    description = dept.description if dept is not None else department
    others = "; ".join(f"{d.name}: {d.description}" for d in taxonomy if d.name != department)
    brief = [
        f"Department: {department}",
        f"Count: {count}",
        f"What belongs there: {description}",
        f"Tones to mix: {', '.join(rng.sample(TONES, 3))}.",
        f"Customers to mix: {', '.join(rng.sample(CUSTOMERS, 3))}.",
        f"Products to mention: {', '.join(rng.sample(PRODUCTS, 2))}.",
        f"Lengths to mix: {', '.join(LENGTHS)}.",
        f"Languages: {', '.join(languages)}.",
    ]
    system = (
        "You write realistic customer-support tickets for training a ticket router. Each "
        "ticket must clearly belong to the requested department and to no other; vary the "
        "wording, details, names and numbers so no two tickets are alike; never mention the "
        "department's name. Other departments, for contrast: " + others
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(brief)}]


class _Deduplicator:
    def __init__(self, existing: Iterable[Example], threshold: float) -> None:
        self.threshold = threshold
        self.exact: set[str] = set()
        self.sets: list[frozenset[str]] = []
        for example in existing:
            self.add(example.text)

    def verdict(self, text: str) -> str | None:
        if normalise_text(text) in self.exact:
            return "duplicate"
        probe = shingles(text)
        if any(jaccard(probe, other) >= self.threshold for other in self.sets):
            return "near_duplicate"
        return None

    def add(self, text: str) -> None:
        self.exact.add(normalise_text(text))
        self.sets.append(shingles(text))


async def generate_examples(
    client: OpenAIClient,
    taxonomy: Taxonomy,
    per_label: int,
    *,
    seed: int = 0,
    existing: Sequence[Example] = (),
    languages: Sequence[str] = ("English",),
    model: str | None = None,
    batch_size: int = 10,
    max_rounds: int = 4,
    near_duplicate: float = NEAR_DUPLICATE,
    progress: ProgressCallback = no_progress,
) -> GenerationReport:
    """``per_label`` new tickets for every department, checked as described above."""
    rng = random.Random(seed)
    report = GenerationReport()
    dedup = _Deduplicator(existing, near_duplicate)
    labels = taxonomy.labels
    total = per_label * len(labels)
    schema = ticket_schema(labels)
    for department in labels:
        kept = 0
        for round_number in range(max_rounds):
            wanted = per_label - kept
            if wanted <= 0:
                break
            completion, _latency = await complete(
                client.sdk,
                f"generating {department} tickets",
                model=model or client.config.model,
                messages=generation_messages(
                    taxonomy, department, min(batch_size, wanted + 2), rng, languages
                ),
                response_format=schema,
                temperature=1.0,
                seed=seed * 1000 + round_number,
            )
            report.calls += 1
            if completion.usage is not None:
                report.prompt_tokens += completion.usage.prompt_tokens
                report.completion_tokens += completion.usage.completion_tokens
            for text, label in _tickets(
                completion.choices[0].message.content if completion.choices else None
            ):
                # Every ticket is checked (so the report counts what the model got wrong);
                # only the first ``per_label`` good ones are kept.
                if match_label(label, labels) != department:
                    report.rejected["wrong_department"] += 1
                    continue
                verdict = dedup.verdict(text)
                if verdict is not None:
                    report.rejected[verdict] += 1
                    continue
                if kept >= per_label:
                    continue
                dedup.add(text)
                report.examples.append(Example(text, department, Source.GENERATED))
                kept += 1
            progress(
                ProgressEvent(
                    "generate",
                    f"{department}: {kept}/{per_label}",
                    len(report.examples) / total if total else 1.0,
                )
            )
        if kept < per_label:
            report.shortfall[department] = per_label - kept
    return report


def _tickets(content: str | None) -> list[tuple[str, str]]:
    """(text, department) pairs from a batch answer; a malformed answer yields nothing."""
    if not content:
        return []
    try:
        doc = json.loads(content)
    except json.JSONDecodeError:
        logging.getLogger(__name__).warning("Generation answer is not JSON; batch skipped")
        return []
    items = doc.get("tickets") if isinstance(doc, dict) else None
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            text, label = item.get("text"), item.get("department")
            if isinstance(text, str) and text.strip() and isinstance(label, str):
                out.append((" ".join(text.split()), label))
    return out


def split_per_label(
    examples: Sequence[Example], test_per_label: int, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(train, test) with exactly ``test_per_label`` test tickets per label when possible."""
    rng = random.Random(seed)
    train: list[Example] = []
    test: list[Example] = []
    by_label: dict[str, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    for label in by_label:
        group = list(by_label[label])
        rng.shuffle(group)
        n_test = min(test_per_label, max(0, len(group) - 1))
        test.extend(group[:n_test])
        train.extend(group[n_test:])
    return train, test


def write_generated(path: Path, examples: Iterable[Example], labels: Sequence[str]) -> int:
    """Write in the seed's chat format, each line also tagged ``"source": "generated"``."""
    system = finetune_system_prompt(labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for example in examples:
            record: dict[str, Any] = {**to_chat_record(example, system)}
            record["source"] = example.source.value
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def per_label_counts(n_labels: int, train_total: int, test_total: int) -> tuple[int, int]:
    """Per-department quotas for totals like the seed's 50 train / 15 test."""
    if n_labels <= 0:
        raise DatasetError("There are no departments to generate tickets for.")
    return max(1, round(train_total / n_labels)), max(1, round(test_total / n_labels))
