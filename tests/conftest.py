"""Fixtures shared by every test package."""

from __future__ import annotations

import gc
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from admin.log_format import NOISY_LOGGERS
from classifier.taxonomy import Taxonomy, load_taxonomy
from data import DEFAULT_TAXONOMY
from tests.databases import drop_postgres_template, migrated_sqlite, postgres_template

POSTGRES_ADMIN_URL = os.environ.get(
    "TRIAGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def pytest_configure(config: pytest.Config) -> None:
    """A command test's terminal is as wide as it says (``COLUMNS`` in the command's
    environment): a size in the session's own environment (pytest-xdist's workers get 80x24)
    would be fixed in the commands' console when it is made, at collection."""
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What is alive once the tests are collected (modules, their functions and classes) lives
    as long as the session: it is frozen out of the garbage collector's reach. Each full
    collection walked all of it again, a quarter of the suite's CPU time; the objects the tests
    make are collected as before."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _new_modules_frozen() -> Iterator[None]:
    """Modules a test imported first (the learners', the encoder's, the SDKs') are frozen
    after it, as the collected ones are (``pytest_collection_finish``): what that test left
    behind is collected first, so nothing but the modules is kept."""
    modules = len(sys.modules)
    yield
    if len(sys.modules) > modules:
        gc.collect()
        gc.freeze()


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
    """A new SQLite database file at the newest schema, in the test's temporary folder."""
    return migrated_sqlite(tmp_path / "triage.db")


async def _postgres_admin(statement: str) -> None:
    import asyncpg  # the postgres extra; imported here so SQLite-only runs need nothing more

    url = POSTGRES_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


_POSTGRES_SERVER = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
_POSTGRES_PREFIX = "triage_test_"


@asynccontextmanager
async def _fresh_postgres(*, migrated: bool) -> AsyncIterator[str]:
    """A new PostgreSQL database, dropped afterwards: at the newest schema (a copy of this
    process's migrated template, ``tests.databases``), or empty.

    Skips the test when no server answers, except in CI (``CI=true``), where it must be there.
    """
    name = f"{_POSTGRES_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        if migrated:
            template = await postgres_template(_postgres_admin, _POSTGRES_SERVER, _POSTGRES_PREFIX)
            await _postgres_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            await _postgres_admin(f'CREATE DATABASE "{name}"')
    except (OSError, ImportError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield f"{_POSTGRES_SERVER}/{name}"
    finally:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", autouse=True)
def _postgres_template_dropped() -> Iterator[None]:
    """The migrated PostgreSQL template, if a test made one, is dropped when the session ends."""
    yield
    drop_postgres_template(_postgres_admin)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new PostgreSQL database at the newest schema for this test (for PostgreSQL-only
    behaviour)."""
    async with _fresh_postgres(migrated=True) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same test on each engine the data layer supports: a new SQLite file, then a new
    PostgreSQL database (skipped as ``postgres_url`` is), each at the newest schema."""
    if request.param == "sqlite":
        yield migrated_sqlite(tmp_path / "triage.db")
        return
    async with _fresh_postgres(migrated=True) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """``database_url`` with no schema at all: for the migrations' own tests."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}"
        return
    async with _fresh_postgres(migrated=False) as url:
        yield url
