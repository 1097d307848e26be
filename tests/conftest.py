"""Fixtures shared by every test package."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from admin.log_format import NOISY_LOGGERS
from classifier.taxonomy import Taxonomy, load_taxonomy
from data import DEFAULT_TAXONOMY

POSTGRES_ADMIN_URL = os.environ.get(
    "TRIAGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on PostgreSQL carry the ``postgres`` marker (``-m "not postgres"`` leaves them out)."""
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Each test gives the session its logging back. A command under test (``triage serve``)
    sets up the process's logging with a handler on the CliRunner's stream, which closes when
    the command returns: left in place, every later test's log line is a "Logging error"."""
    loggers = [logging.getLogger(), *map(logging.getLogger, NOISY_LOGGERS)]
    saved = [(logger, logger.handlers[:], logger.level) for logger in loggers]
    yield
    for logger, handlers, level in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)


@pytest.fixture(scope="session")
def _vector_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vector-cache")


@pytest.fixture(autouse=True)
def _vector_cache_in_tmp(_vector_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retrains with the embedding learner keep sentence vectors in the session's temporary
    folder, not in ``~/.cache/triage-bot`` (the TRIAGE_VECTOR_CACHE_DIR default)."""
    monkeypatch.setenv("TRIAGE_VECTOR_CACHE_DIR", str(_vector_cache_dir))


@pytest.fixture
def taxonomy() -> Taxonomy:
    """The shipped default departments."""
    return load_taxonomy(DEFAULT_TAXONOMY)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file in the test's temporary folder."""
    return f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}"


async def _postgres_admin(statement: str) -> None:
    import asyncpg  # the postgres extra; imported here so SQLite-only runs need nothing more

    url = POSTGRES_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def _fresh_postgres() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards.

    Skips the test when no server answers, except in CI (``CI=true``), where it must be there.
    """
    name = f"triage_test_{uuid.uuid4().hex[:12]}"
    try:
        await _postgres_admin(f'CREATE DATABASE "{name}"')
    except (OSError, ImportError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for this test (for PostgreSQL-only behaviour)."""
    async with _fresh_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same test on each engine the data layer supports: a fresh SQLite file, then a
    fresh PostgreSQL database (skipped as ``postgres_url`` is)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}"
        return
    async with _fresh_postgres() as url:
        yield url


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[object]:
    """A migrated SQLite engine."""
    from data.db.engine import create_engine, migrate

    engine = create_engine(sqlite_url)
    await migrate(engine)
    yield engine
    await engine.dispose()
