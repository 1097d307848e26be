"""Optional PII redaction of ticket text that leaves the process or becomes training data.

Replaces e-mail addresses, card numbers (13-19 digits passing the Luhn check) and phone numbers
with placeholders. Tickets themselves are stored as posted: they are already in Slack.
"""

from __future__ import annotations

import re

# Bounded and anchored at the start of a word, so a 40,000-character run cannot backtrack.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+(])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w-])"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if _luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    # Nine digits or more (dates, order and invoice numbers are shorter), at most E.164's 15.
    return "[phone]" if 9 <= len(digits) <= 15 else match.group(0)


def redact_pii(text: str) -> str:
    """``text`` with e-mails, card numbers and phone numbers replaced by placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)
