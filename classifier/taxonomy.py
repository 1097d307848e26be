"""Departments: the label set, read from a TOML file and validated."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.errors import TaxonomyError

_EMOJI_NAME = re.compile(r"^[a-z0-9_+\-']+$")


@dataclass(frozen=True)
class Department:
    """One department a ticket can be routed to."""

    name: str
    description: str
    channel: str
    emoji: str
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    """The ordered, validated list of departments."""

    departments: tuple[Department, ...]
    _by_name: dict[str, Department] = field(init=False, repr=False, compare=False)
    _by_emoji: dict[str, Department] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.departments:
            raise TaxonomyError(
                "The taxonomy lists no departments; add at least one [[department]]."
            )
        by_name: dict[str, Department] = {}
        by_emoji: dict[str, Department] = {}
        for dept in self.departments:
            key = dept.name.casefold()
            if key in by_name:
                raise TaxonomyError(f"Department name {dept.name!r} appears more than once.")
            if dept.emoji in by_emoji:
                raise TaxonomyError(
                    f"Emoji {dept.emoji!r} is used by both {by_emoji[dept.emoji].name!r} "
                    f"and {dept.name!r}; each department needs its own."
                )
            by_name[key] = dept
            by_emoji[dept.emoji] = dept
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_emoji", by_emoji)

    @property
    def labels(self) -> tuple[str, ...]:
        """Department names in file order."""
        return tuple(d.name for d in self.departments)

    def __iter__(self) -> Iterator[Department]:
        return iter(self.departments)

    def __len__(self) -> int:
        return len(self.departments)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._by_name

    def get(self, name: str) -> Department | None:
        """The department called ``name`` (case-insensitive), or None."""
        return self._by_name.get(name.casefold())

    def by_emoji(self, emoji: str) -> Department | None:
        """The department whose correction emoji is ``emoji`` (colons optional), or None."""
        return self._by_emoji.get(emoji.strip(":"))

    def canonical(self, name: str) -> str:
        """The configured spelling of ``name``; raises TaxonomyError for an unknown department."""
        dept = self.get(name.strip())
        if dept is None:
            raise TaxonomyError(
                f"{name!r} is not a department; known departments: {', '.join(self.labels)}."
            )
        return dept.name

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> Taxonomy:
        """A bare taxonomy for a dataset's own label set (no channels or emoji)."""
        return cls(
            tuple(
                Department(name=label, description=label, channel="", emoji=f"label-{i}")
                for i, label in enumerate(dict.fromkeys(labels))
            )
        )


_REQUIRED = ("name", "description", "channel", "emoji")


def _department(raw: Any, index: int, source: str) -> Department:
    where = f"{source}: department #{index + 1}"
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{where} must be a table with {', '.join(_REQUIRED)}.")
    missing = [k for k in _REQUIRED if not isinstance(raw.get(k), str) or not raw[k].strip()]
    if missing:
        name = raw.get("name") if isinstance(raw.get("name"), str) else None
        label = f"{where} ({name})" if name else where
        raise TaxonomyError(f"{label} is missing {', '.join(missing)} (each a non-empty string).")
    unknown = set(raw) - {*_REQUIRED, "keywords"}
    if unknown:
        raise TaxonomyError(f"{where} has unknown field(s): {', '.join(sorted(unknown))}.")
    emoji = raw["emoji"].strip().strip(":")
    if not _EMOJI_NAME.match(emoji):
        raise TaxonomyError(
            f"{where}: emoji {raw['emoji']!r} is not a Slack emoji name (like 'wrench')."
        )
    keywords = raw.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise TaxonomyError(f"{where}: keywords must be a list of strings.")
    return Department(
        name=raw["name"].strip(),
        description=" ".join(raw["description"].split()),
        channel=raw["channel"].strip(),
        emoji=emoji,
        keywords=tuple(k.strip() for k in keywords if k.strip()),
    )


def parse_taxonomy(text: str, source: str = "<taxonomy>") -> Taxonomy:
    """Parse TOML text with a ``[[department]]`` array into a validated Taxonomy."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"{source} is not valid TOML: {exc}.") from None
    raw = doc.get("department")
    if raw is None:
        raise TaxonomyError(f"{source} has no [[department]] entries.")
    if not isinstance(raw, list):
        raise TaxonomyError(f"{source}: 'department' must be an array of tables ([[department]]).")
    return Taxonomy(tuple(_department(item, i, source) for i, item in enumerate(raw)))


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and validate the taxonomy file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonomyError(f"Taxonomy file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxonomyError(f"Taxonomy file {path} cannot be read: {exc}.") from None
    return parse_taxonomy(text, str(path))
