"""The program's entry point: the ``triage`` command line plus ``triage serve``.

It lives in ``bot`` because it is the one place allowed to import the bot; every other command
comes from ``admin.cli``, which builds the app (``admin.cli.app.build_app``).
"""

from __future__ import annotations

import sys

import typer

from admin.cli import app as admin_app
from admin.cli.terminal import run, settings
from admin.log_format import configure_logging
from bot.errors import SlackCallError, SlackConfigError

#: The bot's errors meant for the admin at the terminal, with the words shown before each.
BOT_ERRORS = {
    SlackConfigError: "",
    SlackCallError: "Slack did not accept the bot at start-up: ",
}


def serve() -> None:
    """Run the Slack bot (HTTP Events API on PORT, or Socket Mode when SLACK_APP_TOKEN is set)."""
    from bot.server import run_bot

    config = settings()
    configure_logging(config.log_level, json_lines=not sys.stderr.isatty())
    run(run_bot(config))


def build_app() -> typer.Typer:
    """``triage``: every admin command and ``serve``."""
    return admin_app.build_app(serve=serve, bot_errors=BOT_ERRORS)


def main() -> None:
    """Run ``triage``."""
    admin_app.main(build_app())
