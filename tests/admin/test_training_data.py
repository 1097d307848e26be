from __future__ import annotations

from datetime import UTC, datetime, timedelta

from admin.training_data import assemble_training_data, data_hash
from classifier.examples import Example, Source
from classifier.taxonomy import Taxonomy
from data.db.training_set import StoredExample

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _stored(
    n: int, text: str, label: str, *, source: str = "correction", holdout: bool = False
) -> StoredExample:
    return StoredExample(
        id=n,
        ticket_id=n,
        text=text,
        label=label,
        source=source,
        holdout=holdout,
        updated_at=T0 + timedelta(minutes=n),
    )


def test_human_labels_win_holdout_never_trains_and_counts_add_up(taxonomy: Taxonomy) -> None:
    starter_train = [
        Example("I was charged twice", "Billing", Source.STARTER),
        Example("App crashes on start", "Technical", Source.STARTER),
        Example("Reset my password", "Account", Source.STARTER),
    ]
    starter_test = [Example("Refund please", "Billing", Source.STARTER)]
    generated = [
        Example("Invoice missing VAT", "billing", Source.GENERATED),  # case is normalised
        Example("app crashes on START", "Product", Source.GENERATED),  # duplicate of starter
    ]
    stored = [
        # The bot's own label for a ticket, then two human corrections of the same text:
        # the human label beats the bot's and the latest human label wins.
        _stored(1, "Where is my export?", "Technical", source="ticket"),
        _stored(2, "where is my  export?", "Billing"),
        _stored(3, "Where is my export?", "Product"),
        # The starter says Technical; a person says Product.
        _stored(4, "App crashes on start", "Product"),
        # Held out: never trains, even though the starter has the same text.
        _stored(5, "Reset my password", "Account", holdout=True),
        _stored(6, "Unknown dept", "Legal"),
    ]
    data = assemble_training_data(
        taxonomy,
        starter_train=starter_train,
        starter_test=starter_test,
        stored=stored,
        generated=generated,
    )
    train = {(e.text.casefold(), e.label, e.source) for e in data.train}
    assert train == {
        ("i was charged twice", "Billing", Source.STARTER),
        ("app crashes on start", "Product", Source.CORRECTION),
        ("invoice missing vat", "Billing", Source.GENERATED),
        ("where is my export?", "Product", Source.CORRECTION),
    }
    assert [(e.text, e.label) for e in data.holdout] == [
        ("Refund please", "Billing"),
        ("Reset my password", "Account"),
    ]
    counts = data.counts()
    assert counts["by_label"] == {"Billing": 2, "Product": 2}
    assert counts["by_source"] == {"correction": 2, "generated": 1, "starter": 1}
    assert counts["holdout_by_label"] == {"Account": 1, "Billing": 1}
    assert (counts["dropped_unknown_label"], counts["dropped_in_holdout"]) == (1, 1)


def test_data_hash_ignores_order_and_spacing() -> None:
    a = [Example("A  b", "X"), Example("c", "Y")]
    b = [Example("c", "Y"), Example("a b", "X")]
    assert data_hash(a) == data_hash(b)
    assert data_hash(a) != data_hash([Example("c", "X"), Example("a b", "X")])
