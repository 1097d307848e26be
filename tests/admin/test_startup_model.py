"""Start-up's model: the first one for any taxonomy, and a new one when the taxonomy changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.learner_setup import learner_context
from admin.settings import load_settings
from admin.startup_model import describe_change, ensure_model_for_taxonomy, stored_labels
from classifier.learners import LearnerContext
from classifier.taxonomy import parse_taxonomy
from data.db import model_registry as store
from data.db.database import Database
from tests.admin.conftest import STARTER_TRAIN, add_labelled_ticket, learner_factory, write_jsonl
from tests.admin.keyword_learner import load_test_model
from tests.admin.test_day_one import SHOP
from tests.fakes.openai_api import API_KEY, FakeOpenAI

TRADE = SHOP.replace('name = "Wholesale"', 'name = "Trade"\nrenamed_from = "Wholesale"')
SMALLER = SHOP[: SHOP.index('[[department]]\nname = "Wholesale"')]


@pytest.fixture
def starter(tmp_path: Path) -> tuple[Path, ...]:
    return (write_jsonl(tmp_path / "train.jsonl", STARTER_TRAIN),)


async def _start(db: Database, toml: str, starter: tuple[Path, ...], learner: str = "auto"):  # type: ignore[no-untyped-def]
    return await ensure_model_for_taxonomy(
        db,
        learner,
        parse_taxonomy(toml),
        LearnerContext(),
        starter_train=starter,
        learners=learner_factory(),
    )


async def _active_labels(db: Database) -> tuple[str, ...] | None:
    async with db.transaction() as conn:
        active = await store.get_active_model(conn)
        assert active is not None
        return stored_labels(await store.get_artefact(conn, active.id))


async def test_first_start_with_a_new_taxonomy_and_no_data_trains_a_model_for_it(
    db: Database, starter: tuple[Path, ...]
) -> None:
    first = await _start(db, SHOP, starter)
    assert first.trained_id == 1
    assert first.message is None  # nothing changed: there was no model before
    assert await _active_labels(db) == ("Shipping", "Returns", "Warranty", "Wholesale")
    # The next start with the same departments keeps it.
    assert (await _start(db, SHOP, starter)).trained_id is None


async def test_a_changed_taxonomy_is_trained_for_promoted_and_announced(
    db: Database, starter: tuple[Path, ...]
) -> None:
    await _start(db, SHOP, starter)
    async with db.transaction() as conn:
        await add_labelled_ticket(
            conn, "order of 300 mugs for our cafe", "Wholesale", holdout=False
        )
    renamed = await _start(db, TRADE, starter)
    assert renamed.trained_id == 2
    assert renamed.message is not None
    assert "(renamed: Wholesale -> Trade)" in renamed.message
    assert "model #2" in renamed.message
    async with db.transaction() as conn:
        entry = await store.get_model(conn, 2)
        artefact = await store.get_artefact(conn, 2)
    assert entry.counts["by_label"] == {"Trade": 1}  # the correction carried over
    # A department removed: the new model can never route there.
    removed = await _start(db, SMALLER, starter)
    assert removed.message is not None
    assert "removed: Trade" in removed.message
    labels = await _active_labels(db)
    assert labels == ("Shipping", "Returns", "Warranty")
    model = load_test_model(artefact)
    assert "Trade" in model.labels  # (the previous one could)


def test_describe_change_names_added_and_removed_departments() -> None:
    taxonomy = parse_taxonomy(SHOP)
    change = describe_change(("Shipping", "Returns", "Legal"), taxonomy)
    assert change == "added: Warranty, Wholesale; removed: Legal"


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


async def test_the_openai_learner_works_at_first_start_with_no_data(
    db: Database, starter: tuple[Path, ...], fake_openai: FakeOpenAI
) -> None:
    settings = load_settings(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=fake_openai.base_url)
    taxonomy = parse_taxonomy(SHOP)
    context = learner_context(settings, taxonomy)
    try:
        started = await ensure_model_for_taxonomy(
            db, "openai", taxonomy, context, starter_train=starter
        )
    finally:
        await context.openai.aclose()
    assert started.trained_id == 1
    async with db.transaction() as conn:
        active = await store.get_active_model(conn)
    assert active is not None
    assert active.learner == "openai"
