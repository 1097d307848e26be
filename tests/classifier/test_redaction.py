from __future__ import annotations

import pytest

from classifier.redaction import redact_pii

#: Real formats that must be masked: (text as written in a ticket, placeholder expected).
PII = [
    # E-mails, with plus-addressing and sub-domains.
    ("jane.doe+billing@example.co.uk", "[email]"),
    ("j.smith@sub.example.org", "[email]"),
    ("first_last-99@example.io", "[email]"),
    ("X+tag@example.com", "[email]"),
    # IBANs (valid mod-97 checksum), grouped and compact.
    ("DE89 3704 0044 0532 0130 00", "[iban]"),
    ("DE89370400440532013000", "[iban]"),
    ("GB82 WEST 1234 5698 7654 32", "[iban]"),
    ("GB82WEST12345698765432", "[iban]"),
    ("FR14 2004 1010 0505 0001 3M02 606", "[iban]"),
    ("NL91 ABNA 0417 1643 00", "[iban]"),
    ("ES91 2100 0418 4502 0005 1332", "[iban]"),
    ("IT60 X054 2811 1010 0000 0123 456", "[iban]"),
    ("CH93 0076 2011 6238 5295 7", "[iban]"),
    ("BE68 5390 0754 7034", "[iban]"),
    # Card numbers passing the Luhn check, with spaces, dashes, dots or nothing.
    ("4111 1111 1111 1111", "[card]"),
    ("4111-1111-1111-1111", "[card]"),
    ("4111.1111.1111.1111", "[card]"),
    ("4012888888881881", "[card]"),
    ("5555 5555 5555 4444", "[card]"),
    ("5105-1051-0510-5100", "[card]"),
    ("3782 822463 10005", "[card]"),  # American Express, 4-6-5
    ("6011 1111 1111 1117", "[card]"),
    ("3530 1113 3330 0000", "[card]"),
    ("4222222222222", "[card]"),  # 13 digits
    # Phone numbers of twelve countries, international and national.
    ("+33 6 12 34 56 78", "[phone]"),  # France
    ("06 12 34 56 78", "[phone]"),
    ("06.12.34.56.78", "[phone]"),
    ("+49 30 1234567", "[phone]"),  # Germany
    ("030/1234567", "[phone]"),
    ("+49 (0)30 1234 5678", "[phone]"),
    ("0171 2345678", "[phone]"),
    ("+44 20 7946 0958", "[phone]"),  # United Kingdom
    ("020 7946 0958", "[phone]"),
    ("07700 900123", "[phone]"),
    ("(555) 010-9999", "[phone]"),  # United States
    ("+1 415-555-0132", "[phone]"),
    ("415.555.0132", "[phone]"),
    ("415-555-0132", "[phone]"),
    ("+34 612 34 56 78", "[phone]"),  # Spain
    ("+39 06 6982 1234", "[phone]"),  # Italy
    ("06 6982 1234", "[phone]"),
    ("+31 20 123 4567", "[phone]"),  # Netherlands
    ("06-12345678", "[phone]"),
    ("+81 3-1234-5678", "[phone]"),  # Japan
    ("03-1234-5678", "[phone]"),
    ("+91 98765 43210", "[phone]"),  # India
    ("+55 11 91234-5678", "[phone]"),  # Brazil
    ("+61 2 9876 5432", "[phone]"),  # Australia
    ("0412 345 678", "[phone]"),
    ("+41 44 668 18 00", "[phone]"),  # Switzerland
]

#: Look-alikes that must stay as written.
LOOK_ALIKES = [
    "2024-01-15 10:30",
    "2024-01-15T10:30:00Z",
    "15/01/2024",
    "01/15/2024",
    "15.01.2024",
    "10:30:45",
    "v2.14.0",
    "10.0.19045.3693",
    "1.2.3",
    "order 12345678",
    "order #123456789",
    "ORD-2024-000123",
    "invoice 2024-001",
    "INV-20240115-0042",
    "€1,234.56",
    "1.234.567,89 EUR",
    "$ 12 345,00",
    "192.168.100.200",
    "1700000999.000100",  # a Slack message ts
    "1234 5678 9012 3456",  # fails the Luhn check
    "GB82 WEST 1234 5698 7654 33",  # fails the IBAN checksum
    "+1 vote",
    "port 8080",
    "3.14159265358979",
    "123e4567-e89b-12d3-a456-426614174000",
    "build 20240115.1",
    "ISO 8601",
]


@pytest.mark.parametrize(("written", "placeholder"), PII)
def test_real_formats_are_masked(written: str, placeholder: str) -> None:
    assert redact_pii(f"please use {written} today.") == f"please use {placeholder} today."
    assert redact_pii(written) == placeholder


@pytest.mark.parametrize("written", LOOK_ALIKES)
def test_look_alikes_stay(written: str) -> None:
    assert redact_pii(f"see {written} for details") == f"see {written} for details"


def test_the_table_is_as_large_as_promised() -> None:
    countries = {
        "+33",
        "+49",
        "+44",
        "+1 ",
        "+34",
        "+39",
        "+31",
        "+81",
        "+91",
        "+55",
        "+61",
        "+41",
    }
    assert len(PII) >= 40
    assert len(LOOK_ALIKES) >= 20
    assert len({w[:3] for w, p in PII if p == "[phone]" and w.startswith("+")} & countries) >= 8


def test_a_ticket_with_everything_keeps_its_dates_and_amounts() -> None:
    text = (
        "On 2024-01-15 10:30 I paid €1,234.56 (order 12345678) with 4111.1111.1111.1111 "
        "from DE89 3704 0044 0532 0130 00; call me on +33 6 12 34 56 78 or 030/1234567, "
        "or write to jane.doe+billing@example.co.uk. App v2.14.0."
    )
    assert redact_pii(text) == (
        "On 2024-01-15 10:30 I paid €1,234.56 (order 12345678) with [card] "
        "from [iban]; call me on [phone] or [phone], "
        "or write to [email]. App v2.14.0."
    )


#: Inputs that made earlier patterns backtrack (quadratic or worse). How long redaction takes on
#: them is measured in ``bench/redaction.py``, not asserted here; here they must come back whole.
PATHOLOGICAL = (
    "x" * 40_000,
    "1" * 40_000,
    "a." * 20_000,
    "a@" * 20_000,
    "1 " * 20_000,
    "+1-" * 13_000,
    "DE89 " * 8_000,
    "0(" * 20_000,
)


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=lambda text: repr(text[:4]))
def test_long_look_alikes_come_back_whole(text: str) -> None:
    assert redact_pii(text) == text
