"""Synthetic ticket generation against the fake: label checks, de-duplication, seeding."""

from __future__ import annotations

import json
from pathlib import Path

from classifier.examples import Example, Source, read_examples
from classifier.llm.client import OpenAIClient
from classifier.llm.synthetic import generate_examples, split_per_label, write_generated
from classifier.taxonomy import Taxonomy
from tests.fakes.openai_api import FakeOpenAI


async def test_each_department_gets_its_quota_of_checked_unique_tickets(
    llm_client: OpenAIClient, taxonomy: Taxonomy, fake_openai: FakeOpenAI
) -> None:
    report = await generate_examples(llm_client, taxonomy, 4, seed=1)
    assert len(report.examples) == 20
    assert {e.label for e in report.examples} == set(taxonomy.labels)
    assert all(e.source is Source.GENERATED for e in report.examples)
    # Every batch of the fake carries one mislabelled ticket and one duplicate.
    assert report.rejected["wrong_department"] == 5
    assert report.rejected["duplicate"] == 5
    assert report.shortfall == {}
    assert report.prompt_tokens > 0
    sent = fake_openai.requests_to("POST", "/v1/chat/completions")[0].json
    assert sent["response_format"]["json_schema"]["name"] == "synthetic_tickets"
    assert "Department: Technical" in sent["messages"][1]["content"]


async def test_near_duplicates_of_existing_data_are_rejected(
    llm_client: OpenAIClient, taxonomy: Taxonomy
) -> None:
    first = await generate_examples(llm_client, taxonomy, 2, seed=5)
    # The same tickets, lightly edited, already exist: regenerating with the same seed must
    # reject them as near duplicates rather than keep them.
    existing = [Example(e.text.replace("Hi,", "Hello,") + "!", e.label) for e in first.examples]
    again = await generate_examples(llm_client, taxonomy, 2, seed=5, existing=existing)
    assert again.rejected["near_duplicate"] + again.rejected["duplicate"] >= len(existing)
    kept = {e.text for e in again.examples}
    assert not kept & {e.text for e in first.examples}


async def test_a_shortfall_is_reported_not_hidden(
    llm_client: OpenAIClient, taxonomy: Taxonomy, fake_openai: FakeOpenAI
) -> None:
    fake_openai.generation_noise = False
    report = await generate_examples(llm_client, taxonomy, 3, seed=2, near_duplicate=0.0)
    # A threshold of 0 makes every ticket a near duplicate of the first one kept at all.
    assert report.shortfall == {
        "Technical": 2,
        "Billing": 3,
        "Account": 3,
        "Product": 3,
        "Other": 3,
    }


async def test_same_seed_same_tickets(llm_client: OpenAIClient, taxonomy: Taxonomy) -> None:
    a = await generate_examples(llm_client, taxonomy, 3, seed=9)
    b = await generate_examples(llm_client, taxonomy, 3, seed=9)
    assert a.examples == b.examples


def test_written_file_is_chat_format_tagged_generated(tmp_path: Path) -> None:
    examples = [
        Example(f"ticket {i}", label, Source.GENERATED)
        for i, label in enumerate(["Billing", "Billing", "Other", "Other"])
    ]
    train, test = split_per_label(examples, 1, seed=0)
    assert (len(train), len(test)) == (2, 2)
    path = tmp_path / "gen.jsonl"
    write_generated(path, train, ["Billing", "Other"])
    record = json.loads(path.read_text().splitlines()[0])
    assert record["source"] == "generated"
    assert record["messages"][0]["role"] == "system"
    assert {e.source for e in read_examples(path)} == {Source.GENERATED}
