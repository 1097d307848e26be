"""``triage config``: validate and show the configuration."""

from __future__ import annotations

from rich.table import Table

from admin.cli.terminal import settings, stdout, taxonomy
from admin.settings import mask_credentials


def show_config() -> None:
    """Validate the settings and the taxonomy file, and show them (secrets masked)."""
    config = settings()
    departments = taxonomy(config)
    table = Table(title=f"Departments ({config.taxonomy})")
    for column in ("name", "channel", "emoji", "description"):
        table.add_column(column)
    for dept in departments:
        table.add_row(dept.name, dept.channel, f":{dept.emoji}:", dept.description)
    stdout.print(table)
    for name, value in config.model_dump().items():
        if name == "taxonomy":
            continue
        shown = "(set)" if "token" in name or "secret" in name or "key" in name else value
        if isinstance(shown, str):
            shown = mask_credentials(shown)  # a database or API URL may carry a password
        if value is None:
            shown = "(not set)"
        stdout.print(f"{name} = {shown}", highlight=False, soft_wrap=True)
