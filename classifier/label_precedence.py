"""Which label counts: a human label beats the bot's, and the latest human label wins.

The one place this rule is written. A person's label for a ticket (a correction) stands until
it is undone; of a ticket's standing corrections, the latest recorded is its human label
(``standing_label``); the label a ticket carries is its human label, else the bot's
(``final_label``). Routing (what Slack shows), corrections (what a new one changes from), the
live figures and outcomes (was the bot right), the holdout's settled labels and the recent
corrections all read corrections through these functions.

Training examples follow the same rule as a precedence of sources (``winning_examples``): a
person's correction beats the bot's own label, which beats a generated example, which beats
starter and imported data; of two examples of one text from the same source the later wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol, TypeVar

from classifier.examples import Example, Source, deduplicate


class HumanLabel(Protocol):
    """A person's label for a ticket, as the rule reads it (e.g. a stored correction)."""

    @property
    def ticket_id(self) -> int:
        """The ticket labelled."""
        ...

    @property
    def to_label(self) -> str:
        """The label the person gave."""
        ...

    @property
    def undone_at(self) -> datetime | None:
        """When it was undone (None: it stands)."""
        ...


LabelT = TypeVar("LabelT", bound=HumanLabel)

#: Training examples of one text: the source ranked higher wins (equal ranks: the later one).
SOURCE_PRECEDENCE: Mapping[Source, int] = {
    Source.STARTER: 0,
    Source.IMPORTED: 0,
    Source.TAXONOMY: 0,
    Source.GENERATED: 1,
    Source.TICKET: 2,
    Source.CORRECTION: 3,
}


def standing_label(corrections: Iterable[LabelT]) -> LabelT | None:
    """A ticket's human label: of its ``corrections`` (oldest first, as recorded) the latest
    that is not undone; None when none stands."""
    latest: LabelT | None = None
    for correction in corrections:
        if correction.undone_at is None:
            latest = correction
    return latest


def standing_labels(corrections: Iterable[LabelT]) -> dict[int, LabelT]:
    """Each ticket's human label (``standing_label``), from the corrections of many tickets
    (oldest first, as recorded); tickets with none standing are absent."""
    latest: dict[int, LabelT] = {}
    for correction in corrections:
        if correction.undone_at is None:
            latest[correction.ticket_id] = correction
    return latest


def final_label(bot_label: str, human: HumanLabel | None) -> str:
    """The label a ticket carries: its human label when it has one, else the bot's."""
    return human.to_label if human is not None else bot_label


def winning_examples(examples: Iterable[Example]) -> list[Example]:
    """One example per text (after normalisation), labelled by the example that wins: the
    higher ``SOURCE_PRECEDENCE``, then the later in ``examples``."""
    # A stable sort keeps the given order (oldest first) inside each rank.
    ranked = sorted(examples, key=lambda e: SOURCE_PRECEDENCE.get(e.source, 0))
    return deduplicate(ranked)
