"""The rule itself: a human label beats the bot's, and the latest human label wins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from classifier.examples import Example, Source
from classifier.label_precedence import (
    final_label,
    standing_label,
    standing_labels,
    winning_examples,
)

UNDONE = datetime(2026, 11, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Label:
    ticket_id: int
    to_label: str
    undone_at: datetime | None = None


def test_the_latest_standing_correction_is_the_human_label() -> None:
    history = [Label(1, "Billing"), Label(1, "Account"), Label(1, "Product")]
    assert standing_label(history) == Label(1, "Product")


def test_undoing_the_latest_brings_back_the_one_before() -> None:
    history = [Label(1, "Billing"), Label(1, "Account"), Label(1, "Product", UNDONE)]
    assert standing_label(history) == Label(1, "Account")


def test_no_standing_correction_means_no_human_label() -> None:
    assert standing_label([]) is None
    assert standing_label([Label(1, "Billing", UNDONE), Label(1, "Account", UNDONE)]) is None


def test_each_ticket_gets_its_own_latest_standing_label() -> None:
    mixed = [
        Label(1, "Billing"),
        Label(2, "Technical"),
        Label(1, "Account"),
        Label(3, "Product", UNDONE),
        Label(2, "Other", UNDONE),
    ]
    assert standing_labels(mixed) == {1: Label(1, "Account"), 2: Label(2, "Technical")}


def test_a_human_label_beats_the_bots() -> None:
    assert final_label("Billing", Label(1, "Account")) == "Account"
    assert final_label("Billing", None) == "Billing"
    assert final_label("Billing", standing_label([Label(1, "Account", UNDONE)])) == "Billing"


def test_training_examples_a_correction_beats_every_other_source_in_any_order() -> None:
    text = "I was charged twice"
    examples = [
        Example(text, "Technical", Source.CORRECTION),
        Example(text.upper(), "Billing", Source.TICKET),
        Example(text, "Account", Source.GENERATED),
        Example(f"  {text} ", "Product", Source.STARTER),
    ]
    (winner,) = winning_examples(examples)
    assert (winner.label, winner.source) == ("Technical", Source.CORRECTION)
    (bot,) = winning_examples(examples[1:])
    assert bot.label == "Billing"  # the bot's own label beats generated and starter data
    (generated,) = winning_examples(examples[2:])
    assert generated.label == "Account"


def test_training_examples_the_latest_correction_of_a_text_wins() -> None:
    examples = [
        Example("refund please", "Billing", Source.CORRECTION),
        Example("login fails", "Technical", Source.STARTER),
        Example("Refund please", "Account", Source.CORRECTION),
    ]
    assert winning_examples(examples) == [
        Example("login fails", "Technical", Source.STARTER),
        Example("Refund please", "Account", Source.CORRECTION),
    ]
