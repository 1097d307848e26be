"""Every setting is in the README's configuration table, under the name users must type."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

from admin.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _environment_names() -> list[str]:
    names = []
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.append(str(alias.choices[0]))
        else:
            names.append(f"TRIAGE_{field_name.upper()}")
    return names


def test_every_setting_is_documented() -> None:
    text = README.read_text(encoding="utf-8")
    table_rows = {
        line.split("|")[1].strip().strip("`")
        for line in text.splitlines()
        if line.startswith("| `")
    }
    missing = [name for name in _environment_names() if name not in table_rows]
    assert not missing, f"document these settings in README.md: {missing}"
    assert "SLACK_BOT_TOKEN" in table_rows
