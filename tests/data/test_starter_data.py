"""The shipped starter dataset: valid labels, enough tickets per department, no repeats, and a
real spread of ticket lengths (the team judges the bot on it, so thin or padded data fails here)."""

from __future__ import annotations

from collections import Counter

import pytest

from classifier.examples import Example, Source, normalise_text, read_examples
from classifier.taxonomy import Taxonomy, load_taxonomy
from data import DEFAULT_TAXONOMY, STARTER_TEST, STARTER_TRAIN

#: Fewest tickets each department must have in each file.
MIN_PER_DEPARTMENT = {"train": 60, "test": 20}

#: Short and long, in words: every department needs tickets on both sides in both files.
SHORT_WORDS = 12
LONG_WORDS = 60

FILES = {"train": STARTER_TRAIN, "test": STARTER_TEST}


@pytest.fixture(scope="module")
def default_taxonomy() -> Taxonomy:
    return load_taxonomy(DEFAULT_TAXONOMY)


@pytest.fixture(scope="module")
def datasets() -> dict[str, list[Example]]:
    return {name: read_examples(path) for name, path in FILES.items()}


def _word_count(example: Example) -> int:
    return len(example.text.split())


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_label_is_a_default_department_spelled_as_configured(
    name: str, datasets: dict[str, list[Example]], default_taxonomy: Taxonomy
) -> None:
    unknown = {e.label for e in datasets[name]} - set(default_taxonomy.labels)
    assert not unknown, f"{FILES[name]} has labels outside the taxonomy: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_record_is_marked_as_starter(name: str, datasets: dict[str, list[Example]]) -> None:
    assert {e.source for e in datasets[name]} == {Source.STARTER}


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_department_has_enough_tickets(
    name: str, datasets: dict[str, list[Example]], default_taxonomy: Taxonomy
) -> None:
    counts = Counter(e.label for e in datasets[name])
    short = {
        label: counts[label]
        for label in default_taxonomy.labels
        if counts[label] < MIN_PER_DEPARTMENT[name]
    }
    assert not short, f"{name}: departments under {MIN_PER_DEPARTMENT[name]} tickets: {short}"


@pytest.mark.parametrize("name", sorted(FILES))
def test_no_duplicate_texts_within_a_file(name: str, datasets: dict[str, list[Example]]) -> None:
    counts = Counter(normalise_text(e.text) for e in datasets[name])
    repeated = [text for text, n in counts.items() if n > 1]
    assert not repeated, f"{name} repeats: {repeated[:5]}"


def test_no_ticket_is_in_both_train_and_test(datasets: dict[str, list[Example]]) -> None:
    train = {normalise_text(e.text) for e in datasets["train"]}
    leaked = [e.text for e in datasets["test"] if normalise_text(e.text) in train]
    assert not leaked, f"test tickets also in train: {leaked[:5]}"


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_department_has_short_and_long_tickets(
    name: str, datasets: dict[str, list[Example]], default_taxonomy: Taxonomy
) -> None:
    for label in default_taxonomy.labels:
        lengths = [_word_count(e) for e in datasets[name] if e.label == label]
        assert min(lengths) < SHORT_WORDS, f"{name}/{label}: no ticket under {SHORT_WORDS} words"
        assert max(lengths) > LONG_WORDS, f"{name}/{label}: no ticket over {LONG_WORDS} words"
