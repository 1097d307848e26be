from __future__ import annotations

import json
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


def _dept(name: str, emoji: str, **fields: object) -> str:
    lines = [f'[[department]]\nname = "{name}"\nchannel = "C{emoji}"\nemoji = "{emoji}"']
    for key, value in fields.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def test_examples_and_renamed_from_are_read() -> None:
    text = _dept(
        "Shipping",
        "truck",
        description="Parcels and delivery",
        examples=["Where is my parcel?", "  Where is   my parcel?  ", "Delivery is late"],
        renamed_from="Logistics",
    ) + _dept("Returns", "back", description="Sending goods back", keywords=["return"])
    taxonomy = parse_taxonomy(text)
    shipping = taxonomy.get("Shipping")
    assert shipping is not None
    # Whitespace is collapsed, so the repeated example is kept once.
    assert shipping.examples == ("Where is my parcel?", "Delivery is late")
    assert shipping.renamed_from == ("Logistics",)
    assert taxonomy.current("logistics") == shipping
    assert taxonomy.current("Returns") == taxonomy.get("Returns")
    assert taxonomy.current("Tech") is None
    assert "Logistics" not in taxonomy


def test_a_department_with_examples_needs_no_description() -> None:
    text = _dept("A", "a", examples=["my parcel is late"]) + _dept("B", "b", description="d")
    assert parse_taxonomy(text).labels == ("A", "B")


def test_empty_description_and_no_examples_is_refused_naming_the_department() -> None:
    text = _dept("Shipping", "truck", description="   ") + _dept("B", "b", description="d")
    with pytest.raises(TaxonomyError, match=r"\(Shipping\) has an empty description and no ex"):
        parse_taxonomy(text)


def test_an_example_under_two_departments_is_refused() -> None:
    text = _dept("A", "a", description="d", examples=["Where is my order?"]) + _dept(
        "B", "b", description="d", examples=["where is my  ORDER?"]
    )
    with pytest.raises(TaxonomyError, match="listed under both 'A' and 'B'"):
        parse_taxonomy(text)


def test_a_10000_character_example_is_refused_with_its_size() -> None:
    text = _dept("A", "a", description="d", examples=["x" * 10_000]) + _dept(
        "B", "b", description="d"
    )
    with pytest.raises(TaxonomyError, match="10,000 characters; keep examples under 5,000"):
        parse_taxonomy(text)


def test_a_taxonomy_of_one_department_is_refused() -> None:
    with pytest.raises(TaxonomyError, match="lists one department \\('A'\\)"):
        parse_taxonomy(_dept("A", "a", description="d"))


def test_renamed_from_a_name_still_in_use_is_refused() -> None:
    text = _dept("A", "a", description="d", renamed_from="B") + _dept("B", "b", description="d")
    with pytest.raises(TaxonomyError, match="'A' is renamed from 'B', but 'B' is still"):
        parse_taxonomy(text)


TARGETS = """
[[department]]
name = "Billing"
description = "money"
channel = "C1"
emoji = "moneybag"
{extra}

[[department]]
name = "Other"
description = "the rest"
channel = "C2"
emoji = "question"
"""


def test_targets_hours_and_oncall_group_are_read() -> None:
    taxonomy = parse_taxonomy(
        TARGETS.format(
            extra="first_response_minutes = 30\nresolution_hours = 8\n"
            'hours = "Mon-Fri 09:00-18:00 Europe/Berlin"\noncall_usergroup = "S0BILLING"'
        )
    )
    billing, other = taxonomy.departments
    assert billing.first_response_minutes == 30
    assert billing.resolution_hours == 8.0
    assert billing.hours is not None
    assert billing.hours.zone.key == "Europe/Berlin"
    assert billing.oncall_usergroup == "S0BILLING"
    assert (other.first_response_minutes, other.resolution_hours, other.hours) == (None,) * 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("first_response_minutes = 0", "first_response_minutes is 0; a target must be more"),
        ("first_response_minutes = -15", r"first_response_minutes is -15; a target must be more"),
        ("first_response_minutes = 1.5", "first_response_minutes must be a whole number"),
        ("first_response_minutes = true", "first_response_minutes must be a whole number"),
        ("resolution_hours = 0.0", "resolution_hours is 0.0; a target must be more than 0"),
        ("resolution_hours = -1", "resolution_hours is -1; a target must be more than 0"),
        ("resolution_hours = nan", "resolution_hours is nan"),
        ("resolution_hours = inf", "resolution_hours is inf"),
        ('resolution_hours = "8"', "resolution_hours must be a number"),
        ('oncall_usergroup = "@billing-oncall"', "is not a Slack user group id"),
        ('oncall_usergroup = "<!channel>"', "is not a Slack user group id"),
        ("hours = 9", "hours must be a string"),
        (
            'hours = "Mon-Fri 09:00-18:00 Europe/Berln"',
            r"department #1 \(Billing\): unknown time zone 'Europe/Berln'",
        ),
    ],
)
def test_bad_targets_are_refused_naming_the_department(extra: str, message: str) -> None:
    with pytest.raises(TaxonomyError, match=message):
        parse_taxonomy(TARGETS.format(extra=extra), "taxonomy.toml")
