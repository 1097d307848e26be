"""The ``triage`` command line, built in one place: ``build_app`` registers every command.

Each command is a plain function in the module of its area (``config``, ``corrections``,
``history``, ``llm``, ``local``, ``registry``, ``report``, ``retrain``, ``stats``,
``tickets``); here each is given its name, its group and the one error wrapper
(``admin.cli.terminal.user_errors``).
``triage serve`` comes from the bot's entry point (``bot.cli``), the one place allowed to import
the bot, which passes it in with the bot's own user-facing errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import typer

from admin.cli import (
    config,
    corrections,
    history,
    llm,
    local,
    registry,
    report,
    retrain,
    stats,
    tickets,
)
from admin.cli.terminal import USER_ERRORS, UserErrors, user_errors

HELP = (
    "Triage support tickets: train and evaluate classifiers, run the Slack bot, and "
    "administer models. Every command works offline with the embedded local model."
)


def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level to stderr."),
) -> None:
    """Triage support tickets (see the commands below)."""
    if verbose:
        logging.getLogger().setLevel(logging.INFO)


def build_app(
    *, serve: Callable[[], None] | None = None, bot_errors: UserErrors | None = None
) -> typer.Typer:
    """The ``triage`` Typer app with every command; ``serve`` adds ``triage serve`` and
    ``bot_errors`` the bot's user-facing errors (with the words shown before each)."""
    errors = {**USER_ERRORS, **(bot_errors or {})}
    app = typer.Typer(
        name="triage",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback()(_root)

    def add(group: typer.Typer, name: str, command: Callable[..., None]) -> None:
        group.command(name)(user_errors(command, errors))

    def subgroup(name: str, help_text: str) -> typer.Typer:
        group = typer.Typer(help=help_text, no_args_is_help=True)
        app.add_typer(group, name=name)
        return group

    add(app, "config", config.show_config)

    corrections_app = subgroup(
        "corrections", "Corrections: who labelled which ticket, and undoing one person's labels."
    )
    add(corrections_app, "list", corrections.list_command)
    add(corrections_app, "revert", corrections.revert_command)

    add(app, "import", history.import_command)
    add(app, "export", history.export_command)

    finetune_app = subgroup(
        "finetune", "Fine-tune an OpenAI model on labelled tickets: start, resume, status, cancel."
    )
    add(app, "generate", llm.generate)
    add(finetune_app, "export", llm.finetune_export)
    add(finetune_app, "start", llm.finetune_start)
    add(finetune_app, "resume", llm.finetune_resume)
    add(finetune_app, "status", llm.finetune_status)
    add(finetune_app, "cancel", llm.finetune_cancel)

    add(app, "train", local.train)
    add(app, "evaluate", local.evaluate)
    add(app, "classify", local.classify)
    add(app, "learners", local.learners)

    models_app = subgroup("models", "The model registry: list, activate, roll back.")
    add(models_app, "list", registry.list_command)
    add(models_app, "activate", registry.activate_command)
    add(models_app, "rollback", registry.rollback_command)

    add(app, "report", report.report_command)
    add(app, "retrain", retrain.retrain_command)
    add(app, "stats", stats.stats_command)

    tickets_app = subgroup("tickets", "Tickets: list them, retry the ones that failed to route.")
    add(tickets_app, "list", tickets.list_command)
    add(tickets_app, "retry", tickets.retry_command)

    if serve is not None:
        add(app, "serve", serve)
    return app


def main(app: typer.Typer | None = None) -> None:
    """Entry point: run ``app`` (the admin commands when None) with warnings logged."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    (app or build_app())()
