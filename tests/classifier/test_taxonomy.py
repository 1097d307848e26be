from __future__ import annotations

from pathlib import Path

import pytest

from classifier.errors import TaxonomyError
from classifier.taxonomy import Taxonomy, load_taxonomy, parse_taxonomy

DEPT = """
[[department]]
name = "{name}"
description = "d"
channel = "C1"
emoji = "{emoji}"
"""


def test_default_taxonomy_has_the_seed_departments(taxonomy: Taxonomy) -> None:
    assert taxonomy.labels == ("Technical", "Billing", "Account", "Product", "Other")
    assert all(d.channel and d.emoji and d.description for d in taxonomy)


def test_lookup_by_name_is_case_insensitive_and_by_emoji_ignores_colons(
    taxonomy: Taxonomy,
) -> None:
    assert taxonomy.canonical("billing") == "Billing"
    billing = taxonomy.get("Billing")
    assert billing is not None
    assert taxonomy.by_emoji(f":{billing.emoji}:") == billing
    assert taxonomy.by_emoji("thumbsup") is None


def test_unknown_department_names_the_known_ones(taxonomy: Taxonomy) -> None:
    with pytest.raises(TaxonomyError, match="'Legal' is not a department; known departments"):
        taxonomy.canonical("Legal")


def test_duplicate_names_are_rejected() -> None:
    text = DEPT.format(name="A", emoji="x") + DEPT.format(name="a", emoji="y")
    with pytest.raises(TaxonomyError, match="'a' appears more than once"):
        parse_taxonomy(text)


def test_duplicate_emoji_are_rejected() -> None:
    text = DEPT.format(name="A", emoji="x") + DEPT.format(name="B", emoji="x")
    with pytest.raises(TaxonomyError, match="Emoji 'x' is used by both 'A' and 'B'"):
        parse_taxonomy(text)


def test_empty_list_is_rejected() -> None:
    with pytest.raises(TaxonomyError, match="no \\[\\[department\\]\\]"):
        parse_taxonomy("title = 'x'\n")


def test_missing_field_is_named() -> None:
    text = '[[department]]\nname = "A"\ndescription = "d"\nemoji = "x"\n'
    with pytest.raises(TaxonomyError, match="department #1 \\(A\\) is missing channel"):
        parse_taxonomy(text)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="not valid TOML"):
        parse_taxonomy("[[department]\n")
    with pytest.raises(TaxonomyError, match="does not exist"):
        load_taxonomy(tmp_path / "nope.toml")


def test_from_labels_builds_a_bare_label_set() -> None:
    assert Taxonomy.from_labels(["b", "a", "b"]).labels == ("b", "a")
