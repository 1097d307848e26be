"""Cheap text similarity: character shingles and Jaccard overlap.

Used to pick few-shot examples near a ticket and to spot near-duplicate synthetic tickets.
Character shingles of the normalised text need no model and no tokenizer, work for any
language, and tolerate small edits ("refund" vs "refunds").
"""

from __future__ import annotations

from collections.abc import Sequence

from classifier.examples import Example, Source, normalise_text

SHINGLE = 4


def shingles(text: str, size: int = SHINGLE) -> frozenset[str]:
    """The set of ``size``-character windows of the normalised text (the text if shorter)."""
    norm = normalise_text(text)
    if len(norm) <= size:
        return frozenset({norm}) if norm else frozenset()
    return frozenset(norm[i : i + size] for i in range(len(norm) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|, 0 for two empty sets."""
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


class ExamplePool:
    """Labelled examples indexed for nearest-neighbour few-shot selection.

    ``nearest`` prefers the team's own corrections: among examples at least ``min_similarity``
    close to the ticket, corrections come first (nearest first), then the rest (nearest first).
    """

    def __init__(self, examples: Sequence[Example], min_similarity: float = 0.05) -> None:
        self.examples = tuple(examples)
        self.min_similarity = min_similarity
        self._shingles = [shingles(e.text) for e in self.examples]

    def __len__(self) -> int:
        return len(self.examples)

    def nearest(self, text: str, k: int) -> list[Example]:
        """Up to ``k`` examples close to ``text``, corrections first; never the ticket itself."""
        if k <= 0 or not self.examples:
            return []
        probe = shingles(text)
        norm = normalise_text(text)
        scored = []
        for index, (example, sh) in enumerate(zip(self.examples, self._shingles, strict=True)):
            score = jaccard(probe, sh)
            # The ticket itself (e.g. a test ticket also in the pool) would leak its label.
            if score < self.min_similarity or normalise_text(example.text) == norm:
                continue
            scored.append((example.source is not Source.CORRECTION, -score, index))
        scored.sort()
        return [self.examples[index] for _, _, index in scored[:k]]
