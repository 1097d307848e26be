"""Tests write only inside their temporary folders (#11): nothing in HOME or the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from admin.settings import Settings


def test_settings_keep_sentence_vectors_in_the_tests_temporary_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cache = Settings().vector_cache_dir

    assert cache.is_relative_to(tmp_path_factory.getbasetemp())
    assert not cache.is_relative_to(Path.home() / ".cache")
