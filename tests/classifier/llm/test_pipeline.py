"""The seed's pipeline end to end against the fake: generate -> fine-tune -> evaluate.

The report compares the prompted baseline with the fine-tuned model on the same test set,
the way the seed reported it (accuracy before and after), plus tokens per call and cost.
"""

from __future__ import annotations

from classifier.evaluation import compare_predictions, evaluate_classifier
from classifier.learners import FineTuneOptions, LearnerContext, get_learner
from classifier.llm.client import OpenAIClient
from classifier.llm.finetune import build_training_file
from classifier.llm.pricing import summarise_usage
from classifier.llm.synthetic import generate_examples, split_per_label
from classifier.taxonomy import Taxonomy
from tests.fakes.openai_api import FakeOpenAI, chat_jsonl_problems


async def test_generate_finetune_evaluate_compares_baseline_and_fine_tuned(
    llm_client: OpenAIClient, fake_openai: FakeOpenAI, taxonomy: Taxonomy
) -> None:
    report = await generate_examples(llm_client, taxonomy, 13, seed=0)
    train, test = split_per_label(report.examples, 3, seed=0)
    assert (len(train), len(test)) == (50, 15)

    context = LearnerContext(
        taxonomy=taxonomy, openai=llm_client, finetune=FineTuneOptions(poll_interval=0)
    )
    baseline = await get_learner("openai", context).train(train, taxonomy.labels)
    tuned = await get_learner("openai-finetune", context).train(train, taxonomy.labels)

    base = await evaluate_classifier(baseline, test, n_train=len(train))
    tuned_eval = await evaluate_classifier(tuned, test, n_train=len(train))
    assert all(p.label in taxonomy.labels for p in base.predictions + tuned_eval.predictions)
    comparison = compare_predictions(
        [e.label for e in test],
        [p.label for p in base.predictions],
        [p.label for p in tuned_eval.predictions],
        model_a=base.report.model_id,
        model_b=tuned_eval.report.model_id,
    )
    # The fake's base model only knows keywords; the fine-tune learnt the generated topics.
    assert comparison.accuracy_b >= 0.8
    assert comparison.accuracy_a < comparison.accuracy_b
    assert comparison.only_b_right > comparison.only_a_right
    assert base.report.learner == "openai"
    assert tuned_eval.report.learner == "openai-finetune"

    base_usage = summarise_usage(base.predictions, "gpt-4o-mini", {})
    tuned_usage = summarise_usage(tuned_eval.predictions, tuned.model_id, {})
    assert tuned_usage.prompt_tokens_per_call * 3 < base_usage.prompt_tokens_per_call
    assert len(fake_openai.jobs) == 1
    # The seed-sized training file went up byte for byte, in OpenAI's chat format (and was
    # deleted once the job ended).
    assert fake_openai.file_bytes == {}
    [uploaded] = fake_openai.trained_on.values()
    assert uploaded == build_training_file(train, taxonomy.labels).data
    assert chat_jsonl_problems(uploaded) == []
    assert uploaded.count(b"\n") == 50
