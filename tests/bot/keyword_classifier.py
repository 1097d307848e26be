"""A small real classifier for the bot's tests: the taxonomy's keywords, counted.

Deterministic and instant, so tests check the bot rather than a model. A text with no keyword
gets "Other" at 30 % (below the default threshold: it goes to triage).
"""

from __future__ import annotations

from collections.abc import Sequence

from classifier.protocols import Prediction
from classifier.taxonomy import Taxonomy


class KeywordClassifier:
    """Implements ``classifier.protocols.Classifier`` with keyword rules."""

    def __init__(self, taxonomy: Taxonomy, model_id: str = "keywords-test") -> None:
        self._taxonomy = taxonomy
        self._model_id = model_id
        self.seen: list[str] = []  # every text it was asked about

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def labels(self) -> tuple[str, ...]:
        return self._taxonomy.labels

    def _one(self, text: str) -> Prediction:
        lowered = text.lower()
        hits = {d.name: sum(k in lowered for k in d.keywords) for d in self._taxonomy}
        total = sum(hits.values())
        if total == 0:
            rest = 0.7 / (len(hits) - 1)
            scores = {name: (0.3 if name == "Other" else rest) for name in hits}
        else:
            smooth = 0.1
            scores = {n: (h + smooth) / (total + smooth * len(hits)) for n, h in hits.items()}
        ranking = tuple(sorted(scores.items(), key=lambda item: (-item[1], item[0])))
        if total == 0:
            ranking = (("Other", 0.3), *[r for r in ranking if r[0] != "Other"])
        label, confidence = ranking[0]
        return Prediction(label, confidence, ranking, self._model_id, 0.1)

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.seen.extend(texts)
        return [self._one(text) for text in texts]
