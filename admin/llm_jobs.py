"""The LLM pieces of a retrain: the resumable fine-tune, the prompted baseline, synthetic data.

``FineTuneTraining`` gives the retrain job the start / follow / cancel steps of an OpenAI
fine-tune (``classifier.llm.finetune.FineTuner``), so the job can store the remote job id
before following it and follow the same id after a restart. Starting is idempotent on the
provider's side too (the request hash is the job's metadata), so even a crash between
creating the job and storing its id never makes a second job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from classifier.examples import Example
from classifier.llm.finetune import (
    FineTunedClassifier,
    FineTuner,
    build_training_file,
    fine_tuned_classifier,
)
from classifier.llm.prompted import PromptedClassifier, taxonomy_for
from classifier.llm.synthetic import generate_examples
from classifier.model import ProgressCallback, ProgressEvent, no_progress
from classifier.taxonomy import Taxonomy


def _options(context: Any) -> dict[str, Any]:
    return dict(getattr(context, "options", {}) or {})


class FineTuneTraining:
    """The openai-finetune learner, split into resumable steps for the retrain job."""

    name = "openai-finetune"
    description = "OpenAI fine-tuning job, followed (and resumed after a restart) by the retrain."

    def __init__(self, context: Any) -> None:
        self.context = context
        options = _options(context)
        self._tuner = FineTuner(
            context.openai,
            base_model=options.get("base_model"),
            poll_interval=float(options.get("poll_interval", 15.0)),
        )
        self._suffix = options.get("suffix", "triage")

    def available(self) -> bool:
        """Whether an OpenAI client is configured."""
        return getattr(self.context, "openai", None) is not None

    async def start(self, examples: Sequence[Example], labels: Sequence[str], *, seed: int) -> str:
        """Upload the training file and create (or find) the job; its id."""
        training = build_training_file(examples, labels)
        return await self._tuner.start(training, suffix=self._suffix, seed=seed)

    async def follow(
        self, job_id: str, labels: Sequence[str], *, progress: ProgressCallback
    ) -> FineTunedClassifier:
        """Wait for ``job_id``, reporting its status; the fine-tuned classifier."""
        result = await self._tuner.follow(job_id, progress=progress)
        return fine_tuned_classifier(
            result.fine_tuned_model,
            labels,
            self.context,
            base_model=result.base_model,
            job_id=result.job_id,
        )

    async def cancel(self, job_id: str) -> None:
        """Cancel the remote job (an ended job is left as it is)."""
        await self._tuner.cancel(job_id)

    async def train(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        *,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> FineTunedClassifier:
        """Start and follow in one go (the Learner protocol)."""
        job_id = await self.start(examples, labels, seed=seed)
        return await self.follow(job_id, labels, progress=progress)


def prompted_baseline(context: Any, taxonomy: Taxonomy) -> PromptedClassifier | None:
    """The zero-shot prompted classifier (the seed's "baseline"), or None without a key."""
    client = getattr(context, "openai", None)
    if client is None:
        return None
    config = getattr(client, "config", None)
    return PromptedClassifier(
        client,
        taxonomy_for(context, taxonomy.labels),
        model=str(getattr(config, "model", "gpt-4o-mini")),
        few_shot=0,
        concurrency=int(getattr(config, "concurrency", 8)),
        default_confidence=float(getattr(config, "confidence_without_logprobs", 0.5)),
        seed=int(getattr(context, "seed", 0)),
    )


def synthetic_generator(context: Any, taxonomy: Taxonomy) -> Any:
    """A SyntheticGenerator over the context's LLM client (``admin.context``), or None."""
    client = getattr(context, "openai", None)
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
            seed=int(getattr(context, "seed", 0)),
            existing=seeds,
            progress=progress,
        )
        rejected = sum(report.rejected.values())
        progress(
            ProgressEvent("generate", f"{len(report.examples)} kept, {rejected} rejected", 1.0)
        )
        return report.examples[:count]

    return generate
