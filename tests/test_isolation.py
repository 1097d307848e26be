"""Tests write only inside their temporary folders (#11): nothing in HOME or the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from admin.settings import Settings

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
