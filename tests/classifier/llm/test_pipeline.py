"""The seed's pipeline end to end against the fake: generate -> fine-tune -> evaluate.

The report compares the prompted baseline with the fine-tuned model on the same test set,
the way the seed reported it (accuracy before and after), plus tokens per call and cost.
"""

from __future__ import annotations

from collections.abc import Sequence

from classifier.examples import Example
from classifier.learners import LearnerContext, get_learner
from classifier.llm.client import OpenAIClient
from classifier.llm.pricing import summarise_usage
from classifier.llm.synthetic import generate_examples, split_per_label
from classifier.model import Classifier, Prediction
from classifier.taxonomy import Taxonomy
from tests.fakes.openai_api import FakeOpenAI


async def accuracy(model: Classifier, test: Sequence[Example]) -> tuple[float, list[Prediction]]:
    predictions = await model.predict([e.text for e in test])
    right = sum(p.label == e.label for p, e in zip(predictions, test, strict=True))
    return right / len(test), predictions


async def test_generate_finetune_evaluate_compares_baseline_and_fine_tuned(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI, taxonomy: Taxonomy
) -> None:
    report = await generate_examples(llm_client, taxonomy, 13, seed=0)
    train, test = split_per_label(report.examples, 3, seed=0)
    assert (len(train), len(test)) == (50, 15)

    context = LearnerContext(taxonomy=taxonomy, openai=llm_client, options={"poll_interval": 0})
    baseline = await get_learner("openai", context).train(train, taxonomy.labels)
    tuned = await get_learner("openai-finetune", context).train(train, taxonomy.labels)

    base_acc, base_preds = await accuracy(baseline, test)
    tuned_acc, tuned_preds = await accuracy(tuned, test)
    assert all(p.label in taxonomy.labels for p in base_preds + tuned_preds)
    # The fake's base model only knows keywords; the fine-tune learnt the generated topics.
    assert tuned_acc >= 0.8
    assert base_acc < tuned_acc

    base_usage = summarise_usage(base_preds, baseline.model_id.split(":")[1], {})
    tuned_usage = summarise_usage(tuned_preds, tuned.model_id, {})
    assert tuned_usage.prompt_tokens_per_call * 3 < base_usage.prompt_tokens_per_call
    assert len(fake_openai.jobs) == 1
