from __future__ import annotations

import time

import pytest

from bot.redaction import redact_pii


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+x@example.co.uk now", "write to [email] now"),
        ("card 4111 1111 1111 1111 please", "card [card] please"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("call +44 20 7946 0958 today", "call [phone] today"),
        ("call (555) 010-9999", "call [phone]"),
        ("order 12345 and invoice 2024-001", "order 12345 and invoice 2024-001"),
        ("not a card 1234 5678 9012 3456", "not a card 1234 5678 9012 3456"),
    ],
)
def test_redacts_emails_cards_and_phones(text: str, expected: str) -> None:
    assert redact_pii(text) == expected


def test_long_texts_do_not_backtrack() -> None:
    started = time.perf_counter()
    for text in ("x" * 40_000, "1" * 40_000, "a." * 20_000, "a@" * 20_000):
        redact_pii(text)
    assert time.perf_counter() - started < 2.0
