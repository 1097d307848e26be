"""The LLM pieces of a retrain besides the learners: the prompted baseline, synthetic data.

(The resumable OpenAI fine-tune is ``classifier.llm.finetune.FineTuneLearner`` itself.)
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence

from classifier.examples import Example
from classifier.learners import LearnerContext
from classifier.llm.client import client_config
from classifier.llm.prompted import PromptedClassifier, taxonomy_for
from classifier.llm.synthetic import generate_examples
from classifier.protocols import ProgressCallback, ProgressEvent
from classifier.taxonomy import Taxonomy

#: Writes ``count`` synthetic tickets over ``labels`` (seeded by real examples).
SyntheticGenerator = Callable[
    [int, Sequence[str], Sequence[Example], ProgressCallback], Awaitable[list[Example]]
]


def prompted_baseline(context: LearnerContext, taxonomy: Taxonomy) -> PromptedClassifier | None:
    """The zero-shot prompted classifier (the seed's "baseline"), or None without a key."""
    if context.openai is None:
        return None
    config = client_config(context)
    return PromptedClassifier(
        context.openai,
        taxonomy_for(context, taxonomy.labels),
        model=config.model,
        few_shot=0,
        concurrency=config.concurrency,
        default_confidence=config.confidence_without_logprobs,
        seed=context.seed,
    )


def synthetic_generator(context: LearnerContext, taxonomy: Taxonomy) -> SyntheticGenerator | None:
    """A SyntheticGenerator over the context's LLM client (``admin.context``), or None."""
    client = context.openai
    if client is None:
        return None

    async def generate(
        count: int,
        labels: Sequence[str],
        seeds: Sequence[Example],
        progress: ProgressCallback,
    ) -> list[Example]:
        departments = taxonomy_for(context, labels or taxonomy.labels)
        per_label = max(1, math.ceil(count / len(departments)))
        report = await generate_examples(
            client,
            departments,
            per_label,
            seed=context.seed,
            existing=seeds,
            progress=progress,
        )
        rejected = sum(report.rejected.values())
        progress(
            ProgressEvent("generate", f"{len(report.examples)} kept, {rejected} rejected", 1.0)
        )
        return report.examples[:count]

    return generate
