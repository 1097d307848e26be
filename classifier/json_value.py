"""JSON values: the type of model metadata, selection records and reports as JSON holds them.

A model artefact's header (``classifier.artifacts``), what the embedding learner's selection
stores and the ``to_dict`` reports are free-form JSON, so their type is ``JsonValue`` rather
than ``Any``: a reader has to say what it expects before it uses a value. The readers below
do that and fail like the built-ins they stand for (``KeyError`` for a missing key,
``TypeError`` for a value of the wrong kind, ``ValueError`` for an unparsable string), so
callers keep catching what they caught before.
"""

from __future__ import annotations

from typing import TypeAlias

JsonScalar: TypeAlias = str | int | float | bool | None
JsonValue: TypeAlias = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]
#: A JSON object, e.g. a model artefact's ``meta``.
JsonObject: TypeAlias = dict[str, JsonValue]


def json_field(value: JsonValue, key: str) -> JsonValue:
    """``value[key]`` of a JSON object; TypeError when ``value`` is not one, KeyError when the
    key is missing."""
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, not {type(value).__name__}")
    return value[key]


def json_int(value: JsonValue) -> int:
    """``int(value)`` of a JSON number or string; TypeError for anything else."""
    if isinstance(value, str | int | float):
        return int(value)
    raise TypeError(f"expected a number, not {type(value).__name__}")


def json_float(value: JsonValue) -> float:
    """``float(value)`` of a JSON number or string; TypeError for anything else."""
    if isinstance(value, str | int | float):
        return float(value)
    raise TypeError(f"expected a number, not {type(value).__name__}")


def json_strings(value: JsonValue | None) -> list[str] | None:
    """``value`` if it is a list of strings (e.g. a model's label list), else None."""
    if not isinstance(value, list):
        return None
    strings = [item for item in value if isinstance(item, str)]
    return strings if len(strings) == len(value) else None
