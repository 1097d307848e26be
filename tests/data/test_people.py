"""The one rule of who is an agent and who may label a ticket (data/people.py)."""

from __future__ import annotations

import pytest

from data.people import PersonFacts, Refusal, Standing, may_label, standing


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (PersonFacts("U1", False, False, True, False), Standing.AGENT),
        (PersonFacts("U1", False, False, False, True), Standing.AGENT),
        (PersonFacts("U1", False, False, True, None), Standing.AGENT),  # one list suffices
        (PersonFacts("U1", False, False, False, False), Standing.REQUESTER),
        (PersonFacts("U1", False, True, True, True), Standing.EXTERNAL),  # never an agent
        (PersonFacts("U1", True, False, True, False), Standing.BOT),
        (PersonFacts("U1", None, False, True, False), Standing.UNKNOWN),  # lookup failed
        (PersonFacts("U1", False, None, True, False), Standing.UNKNOWN),
        (PersonFacts("U1", False, False, None, False), Standing.UNKNOWN),  # list unreadable
        (PersonFacts("U1", False, False, False, None), Standing.UNKNOWN),
    ],
)
def test_standing_fails_closed(facts: PersonFacts, expected: Standing) -> None:
    assert standing(facts).standing is expected


@pytest.mark.parametrize(
    ("facts", "author", "expected"),
    [
        (PersonFacts("U1", False, False, True, False), "U1", None),  # an agent's own ticket
        (PersonFacts("U1", False, False, True, False), "U2", None),
        (PersonFacts("U1", False, False, False, False), "U1", Refusal.AUTHOR),
        (PersonFacts("U1", False, False, False, False), "U2", Refusal.NOT_AN_AGENT),
        (PersonFacts("U1", False, True, True, False), "U1", Refusal.EXTERNAL),
        (PersonFacts("U1", True, False, True, False), "U2", Refusal.BOT),
        (PersonFacts("U1", None, None, None, None), "U2", Refusal.UNSURE),
    ],
)
def test_only_agents_label(facts: PersonFacts, author: str, expected: Refusal | None) -> None:
    assert may_label(standing(facts), author) == expected
