"""The program's entry point: the ``triage`` command line plus ``triage serve``.

It lives in ``bot`` because it is the one place allowed to import the bot; every other command
comes from ``admin.cli``.
"""

from __future__ import annotations

import sys

from admin.cli import app
from admin.cli import main as admin_main
from admin.cli.app import fail, run, settings
from admin.log_format import configure_logging


@app.command("serve")
def serve() -> None:
    """Run the Slack bot (HTTP Events API on PORT, or Socket Mode when SLACK_APP_TOKEN is set)."""
    from bot.errors import SlackCallError, SlackConfigError
    from bot.server import run_bot

    config = settings()
    configure_logging(config.log_level, json_lines=not sys.stderr.isatty())
    try:
        run(run_bot(config))
    except SlackConfigError as exc:
        fail(str(exc))
    except SlackCallError as exc:
        fail(f"Slack did not accept the bot at start-up: {exc}")


def main() -> None:
    """Run ``triage``."""
    admin_main()


__all__ = ["app", "main"]
