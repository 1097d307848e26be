"""Fixtures for the admin jobs: a migrated SQLite database, starter files, a job context."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.context import AdminContext
from admin.settings import Settings, load_settings
from classifier.errors import ClassifierError
from classifier.protocols import Learner
from classifier.taxonomy import Taxonomy
from data.db.database import Database
from data.db.schema import tickets, training_examples
from data.db.training_set import is_holdout_ticket
from tests.admin.keyword_learner import ConstantLearner, KeywordLearner, load_test_model
from tests.databases import sqlite_threads_finished

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_TS = itertools.count(1)

STARTER_TRAIN = [
    ("the app crashes with an error", "Technical"),
    ("page is slow and shows error 500", "Technical"),
    ("I was charged twice on my invoice", "Billing"),
    ("please refund the payment", "Billing"),
    ("reset my password please", "Account"),
    ("change the email address of my account", "Account"),
    ("how do I export a dashboard", "Product"),
    ("feature request dark mode", "Product"),
    ("partnership proposal from our company", "Other"),
    ("press inquiry about your company", "Other"),
]
STARTER_TEST = [
    ("error when the app starts", "Technical"),
    ("refund my invoice", "Billing"),
    ("forgot my password", "Account"),
    ("how do I share a dashboard", "Product"),
    ("a partnership idea", "Other"),
    # Nothing in the starter training data teaches these; corrections will.
    ("okta sso login is rejected", "Account"),
    ("saml sso setup for okta", "Account"),
]


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows),
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    database = Database(sqlite_url)
    await database.start()
    yield database
    await database.close()
    await sqlite_threads_finished()  # a job's heartbeat, cancelled mid-query, closed its own


def learner_factory(extra: dict[str, Learner] | None = None) -> Callable[[str], Learner]:
    learners: dict[str, Learner] = {
        "auto": KeywordLearner(),
        "keywords": KeywordLearner(),
        "constant": ConstantLearner(),
        **(extra or {}),
    }

    def build(name: str) -> Learner:
        if name not in learners:
            raise ClassifierError(f"Unknown learner {name!r}.")
        return learners[name]

    return build


@pytest.fixture
def make_context(db: Database, taxonomy: Taxonomy, tmp_path: Path) -> Callable[..., AdminContext]:
    train = write_jsonl(tmp_path / "train.jsonl", STARTER_TRAIN)
    test = write_jsonl(tmp_path / "test.jsonl", STARTER_TEST)

    def make(
        *,
        settings: Settings | None = None,
        learners: dict[str, Learner] | None = None,
        **overrides: Any,
    ) -> AdminContext:
        values: dict[str, Any] = {
            "db": db,
            "settings": settings or load_settings(admin_users="UADMIN", learner="auto"),
            "taxonomy": taxonomy,
            "learners": learner_factory(learners),
            "load_model": load_test_model,
            "starter_train": (train,),
            "starter_test": (test,),
            "poll_seconds": 0.02,
        }
        values.update(overrides)
        return AdminContext(**values)

    return make


async def add_routed_ticket(conn: AsyncConnection, text: str, *, holdout: bool) -> int:
    """Store a routed ticket (created at ``T0``) on the requested side of the fixed holdout."""
    while True:
        result = await conn.execute(
            tickets.insert()
            .values(
                workspace="T1",
                channel="C1",
                ts=f"{next(_TS)}.000100",
                user="U9",
                text=text,
                status="routed",
                attempts=1,
                created_at=T0,
                updated_at=T0,
            )
            .returning(tickets.c.id)
        )
        ticket_id = int(result.scalar_one())
        if is_holdout_ticket(ticket_id) == holdout:
            return ticket_id


async def add_labelled_ticket(
    conn: AsyncConnection, text: str, label: str, *, holdout: bool, source: str = "correction"
) -> int:
    """Store a ticket with a human label, on the requested side of the fixed holdout."""
    ticket_id = await add_routed_ticket(conn, text, holdout=holdout)
    await conn.execute(
        training_examples.insert().values(
            text=text,
            label=label,
            source=source,
            ticket_id=ticket_id,
            holdout=False,
            created_at=T0,
            updated_at=T0,
        )
    )
    return ticket_id
