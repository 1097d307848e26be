"""Tests write only inside their temporary folders (#11): nothing in HOME or the checkout."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import aiosqlite
import pytest

from admin.settings import Settings
from tests.databases import sqlite_threads_finished

pytest_plugins = ["pytester"]


def test_settings_keep_sentence_vectors_in_the_tests_temporary_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cache = Settings().vector_cache_dir

    assert cache.is_relative_to(tmp_path_factory.getbasetemp())
    assert not cache.is_relative_to(Path.home() / ".cache")


def test_a_test_that_sets_up_logging_leaves_no_handler_on_a_closed_stream(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest("from tests.conftest import _logging_restored  # noqa: F401")
    pytester.makepyfile(
        """
        import io
        import logging
        import sys

        from admin.log_format import configure_logging

        def test_serve_sets_up_logging_on_a_stream_that_closes(monkeypatch):
            stream = io.StringIO()
            monkeypatch.setattr(sys, "stderr", stream)  # what CliRunner does
            configure_logging("INFO")
            stream.close()

        def test_a_later_test_logs():
            streams = [getattr(h, "stream", None) for h in logging.getLogger().handlers]
            assert not any(getattr(s, "closed", False) for s in streams)
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


async def test_a_connection_whose_opening_was_cancelled_is_waited_for() -> None:
    """A bot stopped mid-connect leaves an aiosqlite thread still opening the database; the
    harness waits for it (``sqlite_threads_finished``) so that it answers this test's event
    loop, not a closed one on whichever test runs next."""
    opening = threading.Event()
    may_open = threading.Event()

    def slow_connector() -> sqlite3.Connection:
        opening.set()
        may_open.wait(30)
        return sqlite3.connect(":memory:", check_same_thread=False)

    connection = aiosqlite.Connection(slow_connector, iter_chunk_size=64)
    connecting = asyncio.ensure_future(connection)
    await asyncio.to_thread(opening.wait, 30)
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    del connection, connecting  # the pool never saw it: nothing else holds it

    finished = asyncio.create_task(sqlite_threads_finished())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not finished.done()  # waiting for the thread still opening
    may_open.set()
    async with asyncio.timeout(30):
        await finished
