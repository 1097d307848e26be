"""Small labelled datasets the learner tests train on (seconds, not minutes)."""

from __future__ import annotations

import pytest

from classifier.examples import Example

BILLING = [
    "I was charged twice for my subscription",
    "Please refund the duplicate payment",
    "My invoice shows the wrong amount",
    "The card payment failed but money left my account",
    "How do I update my billing card",
    "Why is there an extra fee on my invoice",
    "I need a receipt for last month's charge",
    "Refund request for an accidental purchase",
]
TECHNICAL = [
    "The app crashes when I open the reports tab",
    "I get error 500 when saving a document",
    "The dashboard page does not load at all",
    "Sync with the calendar integration is broken",
    "The API returns a timeout on every request",
    "Login page shows a blank screen after update",
    "Uploading files fails with a network error",
    "Search results take a minute to load",
]
ACCOUNT = [
    "Please reset my password",
    "How do I change the email address on my account",
    "Add a new user to our team workspace",
    "I want to delete my account permanently",
    "My account is locked after too many attempts",
    "Transfer ownership of the workspace to my colleague",
    "Remove a seat from our organisation",
    "Change my username please",
]


@pytest.fixture(scope="session")
def tickets() -> list[Example]:
    """24 tickets, 8 each of Billing, Technical and Account."""
    return [
        Example(text, label)
        for label, texts in (("Billing", BILLING), ("Technical", TECHNICAL), ("Account", ACCOUNT))
        for text in texts
    ]


LABELS = ("Technical", "Billing", "Account")
