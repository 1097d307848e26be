"""Every file the packages ship besides their modules is declared as package data, so an
installed bot (a wheel, the Docker image) has it: none of it exists only in a checkout."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "classifier", "admin", "data")


def test_every_tracked_data_file_in_a_package_is_package_data() -> None:
    declared: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]["package-data"]
    tracked = subprocess.run(  # noqa: S603  # git, fixed arguments
        ["git", "ls-files", *PACKAGES],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    data_files = [PurePosixPath(f) for f in tracked if not f.endswith(".py")]
    assert data_files, "git ls-files found nothing"
    missing = [
        str(path)
        for path in data_files
        if not any(
            _matches(path.relative_to(package), pattern)
            for package, patterns in declared.items()
            if path.is_relative_to(package)
            for pattern in patterns
        )
    ]
    assert missing == [], f"add to [tool.setuptools.package-data]: {missing}"


def _matches(path: PurePosixPath, pattern: str) -> bool:
    """setuptools' glob: ``*`` stays within one folder ("*.toml" is the package's own only)."""
    return len(path.parts) == len(PurePosixPath(pattern).parts) and path.match(pattern)
