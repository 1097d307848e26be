"""The declared dependencies admit only releases the code works with, and the image installs
exactly the hashed lock, with PyTorch alone from its own index."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
IMAGE_EXTRAS = ("embeddings", "postgres")  # what the Dockerfile installs


def _project() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return data


def _requirements(extras: tuple[str, ...] = ()) -> dict[str, Requirement]:
    project = _project()
    lines = list(project["dependencies"])  # type: ignore[call-overload]
    optional = project["optional-dependencies"]
    for extra in extras:
        lines += optional[extra]  # type: ignore[index]
    reqs = [Requirement(line) for line in lines]
    return {_canonical(r.name): r for r in reqs}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, hashes) of a pip-compile output."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        if line[:1].isalnum():
            name, version = line.split("==", 1)
            current = _canonical(name)
            pins[current] = (Version(version.split()[0].rstrip("\\")), [])
        elif "--hash=sha256:" in line and current is not None:
            pins[current][1].append(line.split("--hash=sha256:", 1)[1].split()[0])
    return pins


@pytest.mark.parametrize(
    ("package", "too_old", "oldest_good"),
    [
        # classifier/llm/client.py imports httpx2, which openai depends on from 3.0 on only.
        ("openai", "2.54.0", "3.0.0"),
        ("httpx2", "2.6.0", "2.7.0"),
        # CVE-2025-53643 (HTTP request smuggling in aiohttp's parser) is fixed in 3.12.14.
        ("aiohttp", "3.12.13", "3.12.14"),
        # Older slack_sdk pings Socket Mode with a str, which aiohttp >= 3.11 refuses.
        ("slack-sdk", "3.33.3", "3.33.4"),
    ],
)
def test_lower_bounds_exclude_releases_the_code_cannot_use(
    package: str, too_old: str, oldest_good: str
) -> None:
    spec = _requirements()[package].specifier
    assert not spec.contains(too_old)
    assert spec.contains(oldest_good)


@pytest.mark.parametrize(
    "package",
    ["slack-bolt", "slack-sdk", "openai", "httpx2", "aiohttp", "sqlalchemy", "alembic", "pydantic"],
)
def test_sdks_are_capped_below_their_next_major_version(package: str) -> None:
    spec = _requirements()[package].specifier
    caps = [Version(s.version) for s in spec if s.operator == "<"]
    assert caps, f"{package} has no upper bound"
    lower = min(Version(s.version) for s in spec if s.operator == ">=")
    assert caps[0] == Version(f"{lower.major + 1}"), f"{package}: cap at the next major"


def test_the_lock_pins_every_image_requirement_within_its_range_with_hashes() -> None:
    locked = {
        **_lock(ROOT / "requirements" / "image.txt"),
        **_lock(ROOT / "requirements" / "torch-cpu.txt"),
    }
    assert locked, "requirements/image.txt is empty: run `make lock`"
    for name, requirement in _requirements(IMAGE_EXTRAS).items():
        assert name in locked, f"{name} is not in the lock: run `make lock`"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} is outside {requirement.specifier}: run `make lock`"
        )
    for name, (_version, hashes) in locked.items():
        assert hashes, f"{name} has no hash in the lock"
    # The build backend is locked too: the image builds the project without isolation.
    assert "setuptools" in locked


def test_torch_has_a_file_of_its_own_and_the_image_lock_does_not_carry_it() -> None:
    assert "torch" not in _lock(ROOT / "requirements" / "image.txt")
    torch_lock = _lock(ROOT / "requirements" / "torch-cpu.txt")
    assert set(torch_lock) <= {"torch"}
    if "torch" in _requirements(IMAGE_EXTRAS):
        assert "torch" in torch_lock


def test_the_image_installs_the_lock_with_hashes_and_torch_alone_from_its_index() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # A RUN instruction with its continuation lines joined.
    runs = [
        " ".join(part.strip() for part in block.split("\\\n"))
        for block in re.findall(r"^RUN (.*?)(?<!\\)$", dockerfile, flags=re.M | re.S)
    ]
    installs = [
        cmd.strip()
        for run in runs
        for cmd in re.split(r"&&|;|\bthen\b", run)
        if "pip install" in cmd
    ]
    assert "--extra-index-url" not in dockerfile  # dependency confusion: every index for all
    assert any("--require-hashes -r requirements/image.txt" in c for c in installs)
    (torch_install,) = [c for c in installs if "torch-cpu.txt" in c]
    assert "--index-url" in torch_install
    assert "--require-hashes" in torch_install
    for command in installs:
        assert "--no-deps" in command, f"resolves at build time: {command}"
        if "--index-url" in command:
            assert "torch-cpu.txt" in command, f"another index for more than torch: {command}"
    assert "pip check" in dockerfile


def test_the_docker_install_check_replays_the_locked_steps() -> None:
    script = (ROOT / ".ci" / "docker-install-check").read_text()
    assert "--require-hashes -r requirements/image.txt" in script
    assert "--require-hashes -r requirements/torch-cpu.txt" in script
    assert "pip check" in script


def test_every_runtime_dependency_has_a_lower_bound_that_make_lowest_installs() -> None:
    spec = importlib.util.spec_from_file_location("lowest", ROOT / "requirements" / "lowest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project = _project()
    pins = [Requirement(line) for line in module.lowest(project["dependencies"])]
    assert {_canonical(p.name) for p in pins} == set(_requirements())
    for pin in pins:
        (only,) = pin.specifier
        assert only.operator == "=="
        assert _requirements()[_canonical(pin.name)].specifier.contains(only.version)
