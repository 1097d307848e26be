"""Optional PII redaction of ticket text that leaves the process or becomes training data.

Replaces e-mail addresses, IBANs (checked with their mod-97 checksum), card numbers (13-19
digits, written whole or in groups, passing the Luhn check) and phone numbers with placeholders.
Tickets themselves are stored as posted: they are already in Slack.

Phone numbers are recognised by their shape, not by their length alone, so dates, times,
version strings, amounts and order numbers stay: an international number (``+`` and 8-15
digits), a national one with its trunk ``0`` (9-12 digits: ``06 12 34 56 78``, ``030/1234567``,
``020 7946 0958``), or the North American ``(555) 010-9999`` / ``415-555-0132`` forms.
"""

from __future__ import annotations

import re

# Every pattern is bounded and anchored at the start of a word, so a 40,000-character run
# cannot make it backtrack for long.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_IBAN = re.compile(r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?!\w)")
# Whole, or in groups of four (the last one shorter), or Amex's 4-6-5; one kind of separator.
_CARD = re.compile(
    r"(?<![\w.,/-])"
    r"(?:\d{13,19}|\d{4}([ .-])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|\d{4}([ .-])\d{6}\2\d{5})"
    r"(?![\w/-]|[.,:]\d)"
)
# A run of digits and phone separators; which runs are phone numbers is decided in _phone.
_PHONE = re.compile(r"(?<![\w.,:/+-])\+?\(?\d[\d ()./-]{5,24}\d(?![\w/-]|[.,:]\d)")
_NORTH_AMERICAN = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}([.-]))\d{3}[.-]\d{4}")
_SEPARATORS = re.compile(r"[ ./-]+")


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


def _iban_ok(compact: str) -> bool:
    """ISO 13616: 15-34 characters whose rearranged numeric form is 1 modulo 97."""
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    text = match.group(0)
    # The pattern may have taken a word after the IBAN; try the longest valid prefix.
    cut = len(text)
    while cut > 0:
        compact = text[:cut].replace(" ", "")
        if _iban_ok(compact):
            return "[iban]" + text[cut:]
        space = text.rfind(" ", 0, cut)
        if space < 0:
            break
        cut = space
    return text


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def _is_phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    if text.count("(") != text.count(")") or "((" in text or "))" in text:
        return False
    kinds = set(_SEPARATORS.findall(text.replace("(", "").replace(")", "")))
    if len({kind.strip() or " " for kind in kinds}) > 2 or any(len(kind) > 2 for kind in kinds):
        return False  # "1.2 - 3/4": not how anyone writes a phone number
    if text.startswith("+"):
        return 8 <= len(digits) <= 15
    if _NORTH_AMERICAN.fullmatch(text):
        return True
    return text.lstrip("(").startswith("0") and 9 <= len(digits) <= 12


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    if _is_phone(text):
        return "[phone]"
    # A number next to the phone number ("order 12345 06 12 34 56 78", "06 12 34 56 78 2024"):
    # drop parts from the left, then from the right; linear, so a long run costs little.
    parts = text.split(" ")
    for start in range(1, len(parts)):
        if _is_phone(" ".join(parts[start:])):
            return " ".join([*parts[:start], "[phone]"])
    for end in range(len(parts) - 1, 0, -1):
        if _is_phone(" ".join(parts[:end])):
            return " ".join(["[phone]", *parts[end:]])
    return text


def redact_pii(text: str) -> str:
    """``text`` with e-mails, IBANs, card numbers and phone numbers replaced by placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _IBAN.sub(_iban, text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)
