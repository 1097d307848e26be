"""Departments: the label set, read from a TOML file and validated."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.business_hours import BusinessHours, parse_business_hours
from classifier.errors import TaxonomyError

_EMOJI_NAME = re.compile(r"^[a-z0-9_+\-']+$")
#: A Slack user group id (``S`` and upper-case letters and digits), the only thing a nudge
#: mentions: a mention is built from this id, never from a name or from ticket text.
_USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")


@dataclass(frozen=True)
class Department:
    """One department a ticket can be routed to."""

    name: str
    description: str
    channel: str
    emoji: str
    keywords: tuple[str, ...] = ()
    #: Typical tickets of this department, written by the team: training data on day one.
    examples: tuple[str, ...] = ()
    #: Earlier names of this department: their stored tickets and corrections carry over.
    renamed_from: tuple[str, ...] = ()
    #: Service targets: minutes to a first response (a nudge when passed, an escalation at
    #: twice it) and hours to resolution (a breach in the figures); None = no target.
    first_response_minutes: int | None = None
    resolution_hours: float | None = None
    #: When the targets' clocks run; None = all the time.
    hours: BusinessHours | None = None
    #: The Slack user group (id ``S...``) a nudge mentions, if any.
    oncall_usergroup: str | None = None


@dataclass(frozen=True)
class Taxonomy:
    """The ordered, validated list of departments."""

    departments: tuple[Department, ...]
    _by_name: dict[str, Department] = field(init=False, repr=False, compare=False)
    _by_emoji: dict[str, Department] = field(init=False, repr=False, compare=False)
    _renames: dict[str, Department] = field(init=False, repr=False, compare=False)

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
        object.__setattr__(self, "_renames", _renames(self.departments, by_name))

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

    def current(self, name: str) -> Department | None:
        """The department called ``name`` now or before a rename (``renamed_from``), or None."""
        key = name.strip().casefold()
        return self._by_name.get(key) or self._renames.get(key)

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


def _renames(
    departments: Iterable[Department], by_name: dict[str, Department]
) -> dict[str, Department]:
    renames: dict[str, Department] = {}
    for dept in departments:
        for old in dept.renamed_from:
            key = old.casefold()
            if key in by_name:
                raise TaxonomyError(
                    f"{dept.name!r} is renamed from {old!r}, but {old!r} is still a department; "
                    "remove renamed_from or the old department."
                )
            if key in renames and renames[key] is not dept:
                raise TaxonomyError(
                    f"Both {renames[key].name!r} and {dept.name!r} are renamed from {old!r}; "
                    "only one department can take over its tickets."
                )
            renames[key] = dept
    return renames


_REQUIRED = ("name", "channel", "emoji")
_OPTIONAL = (
    "description",
    "keywords",
    "examples",
    "renamed_from",
    "first_response_minutes",
    "resolution_hours",
    "hours",
    "oncall_usergroup",
)
#: The longest example text kept (what the encoder and TF-IDF read is shorter still); a longer
#: one is almost always a pasted document, so it is refused rather than silently cut.
MAX_EXAMPLE_CHARS = 5_000


def _strings(raw: Any, key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise TaxonomyError(f"{where}: {key} must be a list of strings.")
    return tuple(dict.fromkeys(" ".join(k.split()) for k in value if k.strip()))


def _positive(raw: Any, key: str, where: str, *, whole: bool) -> Any:
    """An optional target: a positive number (a whole one when ``whole``), or None."""
    value = raw.get(key)
    if value is None:
        return None
    kind = "whole number" if whole else "number"
    numeric = isinstance(value, int) or (not whole and isinstance(value, float))
    if isinstance(value, bool) or not numeric:
        raise TaxonomyError(f"{where}: {key} must be a {kind}, not {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise TaxonomyError(
            f"{where}: {key} is {value!r}; a target must be more than 0 (leave it out for none)."
        )
    return value if whole else float(value)


def _targets(raw: Any, where: str) -> dict[str, Any]:
    """first_response_minutes, resolution_hours, hours and oncall_usergroup, validated."""
    hours_text = raw.get("hours")
    if hours_text is not None and (not isinstance(hours_text, str) or not hours_text.strip()):
        raise TaxonomyError(
            f'{where}: hours must be a string like "Mon-Fri 09:00-18:00 Europe/Berlin".'
        )
    oncall = raw.get("oncall_usergroup")
    if oncall is not None and (not isinstance(oncall, str) or not _USERGROUP_ID.match(oncall)):
        raise TaxonomyError(
            f"{where}: oncall_usergroup {oncall!r} is not a Slack user group id (like "
            "'S0123ABCD'; Slack shows it in the group's profile)."
        )
    return {
        "first_response_minutes": _positive(raw, "first_response_minutes", where, whole=True),
        "resolution_hours": _positive(raw, "resolution_hours", where, whole=False),
        "hours": None if hours_text is None else parse_business_hours(hours_text, where),
        "oncall_usergroup": oncall,
    }


def _department(raw: Any, index: int, source: str) -> Department:
    where = f"{source}: department #{index + 1}"
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{where} must be a table with {', '.join(_REQUIRED)}.")
    missing = [k for k in _REQUIRED if not isinstance(raw.get(k), str) or not raw[k].strip()]
    name = raw.get("name") if isinstance(raw.get("name"), str) else None
    if name:
        where = f"{where} ({name.strip()})"
    if missing:
        raise TaxonomyError(f"{where} is missing {', '.join(missing)} (each a non-empty string).")
    unknown = set(raw) - {*_REQUIRED, *_OPTIONAL}
    if unknown:
        raise TaxonomyError(f"{where} has unknown field(s): {', '.join(sorted(unknown))}.")
    emoji = raw["emoji"].strip().strip(":")
    if not _EMOJI_NAME.match(emoji):
        raise TaxonomyError(
            f"{where}: emoji {raw['emoji']!r} is not a Slack emoji name (like 'wrench')."
        )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise TaxonomyError(f"{where}: description must be a string.")
    keywords = _strings(raw, "keywords", where)
    examples = _strings(raw, "examples", where)
    too_long = [e for e in examples if len(e) > MAX_EXAMPLE_CHARS]
    if too_long:
        raise TaxonomyError(
            f"{where}: an example has {len(too_long[0]):,} characters; keep examples under "
            f"{MAX_EXAMPLE_CHARS:,} (a typical ticket, not a document)."
        )
    if not description.strip() and not examples:
        raise TaxonomyError(
            f"{where} has an empty description and no examples: write what belongs there "
            "(description) or a few typical tickets (examples), so the bot can learn it."
        )
    return Department(
        name=raw["name"].strip(),
        description=" ".join(description.split()),
        channel=raw["channel"].strip(),
        emoji=emoji,
        keywords=keywords,
        examples=examples,
        renamed_from=_strings(raw, "renamed_from", where),
        **_targets(raw, where),
    )


def _check_examples(departments: Sequence[Department], source: str) -> None:
    """An example listed under two departments teaches the model nothing but confusion."""
    seen: dict[str, str] = {}
    for dept in departments:
        for example in dept.examples:
            key = " ".join(example.casefold().split())
            other = seen.setdefault(key, dept.name)
            if other != dept.name:
                raise TaxonomyError(
                    f"{source}: the example {_short(example)!r} is listed under both {other!r} "
                    f"and {dept.name!r}; keep it under one department."
                )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    departments = tuple(_department(item, i, source) for i, item in enumerate(raw))
    if len(departments) == 1:
        raise TaxonomyError(
            f"{source} lists one department ({departments[0].name!r}); with nothing to choose "
            "between there is nothing to route. Add at least one more [[department]]."
        )
    _check_examples(departments, source)
    return Taxonomy(departments)


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and validate the taxonomy file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonomyError(f"Taxonomy file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxonomyError(f"Taxonomy file {path} cannot be read: {exc}.") from None
    return parse_taxonomy(text, str(path))
