from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier.errors import DatasetError
from classifier.examples import (
    Example,
    Source,
    deduplicate,
    label_counts,
    read_examples,
    sample_per_label,
    stratified_split,
    write_examples,
)


def test_plain_and_chat_lines_are_read_from_one_file(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    chat = {
        "messages": [
            {"role": "system", "content": "Classify."},
            {"role": "user", "content": "I was charged twice"},
            {"role": "assistant", "content": "Billing"},
        ]
    }
    path.write_text(
        json.dumps({"text": "App crashes", "label": "Technical"}) + "\n\n" + json.dumps(chat) + "\n"
    )
    assert read_examples(path) == [
        Example("App crashes", "Technical", Source.IMPORTED),
        Example("I was charged twice", "Billing", Source.IMPORTED),
    ]


def test_round_trip_in_both_formats(tmp_path: Path) -> None:
    examples = [Example("a b", "X", Source.STARTER), Example("c", "Y", Source.GENERATED)]
    write_examples(tmp_path / "plain.jsonl", examples)
    assert read_examples(tmp_path / "plain.jsonl") == examples
    write_examples(tmp_path / "chat.jsonl", examples, chat_system_prompt="Sys")
    lines = (tmp_path / "chat.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["messages"][0] == {"role": "system", "content": "Sys"}
    assert [(e.text, e.label) for e in read_examples(tmp_path / "chat.jsonl")] == [
        ("a b", "X"),
        ("c", "Y"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "ok", "label": "A"}\n{"text": "x"', "bad.jsonl:2: not valid JSON"),
        (b'{"text": "  ", "label": "A"}\n', "bad.jsonl:1: the ticket text is missing or empty"),
        (b'{"text": "x"}\n', "bad.jsonl:1: the label is missing or empty"),
        (b'{"foo": 1}\n', "bad.jsonl:1: expected 'text' and 'label'"),
        (b"[1, 2]\n", "bad.jsonl:1: expected a JSON object"),
        (b'{"text": "caf\xe9", "label": "A"}\n', "bad.jsonl:1: not valid UTF-8"),
        (b"\n\n", "bad.jsonl: the file has no examples"),
        (b'{"messages": [{"role": "user", "content": "x"}]}\n', "needs a user and an assistant"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message.replace("(", "\\(")):
        read_examples(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        read_examples(tmp_path / "none.jsonl")


def test_very_long_text_is_cut_not_rejected(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"text": "x" * 50_000, "label": "A"}) + "\n")
    assert len(read_examples(path)[0].text) == 40_000


def test_deduplicate_keeps_last_label_at_first_position() -> None:
    examples = [Example("Hello  World", "A"), Example("other", "B"), Example("hello world", "C")]
    assert deduplicate(examples) == [Example("hello world", "C"), Example("other", "B")]


def test_stratified_split_is_deterministic_and_keeps_every_label() -> None:
    examples = [Example(f"t{i}", "A" if i % 3 else "B") for i in range(30)]
    train, test = stratified_split(examples, 0.2, seed=7)
    assert (train, test) == stratified_split(examples, 0.2, seed=7)
    assert {e.label for e in test} == {"A", "B"}
    assert len(train) + len(test) == 30
    assert not {e.text for e in train} & {e.text for e in test}
    assert label_counts(test) == {"A": 4, "B": 2}


def test_sample_per_label() -> None:
    examples = [Example(f"t{i}", str(i % 4)) for i in range(40)]
    sample = sample_per_label(examples, 3, seed=1)
    assert label_counts(sample) == {"0": 3, "1": 3, "2": 3, "3": 3}
    assert sample == sample_per_label(examples, 3, seed=1)
