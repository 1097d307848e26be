"""The program's entry point: the ``triage`` command line plus ``triage serve``.

It lives in ``bot`` because it is the one place allowed to import the bot; every other command
comes from ``admin.cli``.
"""

from __future__ import annotations

from admin.cli import app
from admin.cli import main as admin_main


def main() -> None:
    """Run ``triage``."""
    admin_main()


__all__ = ["app", "main"]
