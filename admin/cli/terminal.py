"""The ``triage`` Typer app and what every command shares: errors, settings, progress bars.

Each command area registers its commands on ``app`` in its own module of this package.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from admin.errors import AdminError
from admin.settings import Settings, SettingsError, load_settings
from classifier.errors import ClassifierError
from classifier.llm.client import OpenAIClient
from classifier.protocols import ProgressCallback, ProgressEvent
from classifier.taxonomy import Taxonomy, load_taxonomy

T = TypeVar("T")

app = typer.Typer(
    name="triage",
    help="Triage support tickets: train and evaluate classifiers, run the Slack bot, and "
    "administer models. Every command works offline with the embedded local model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Errors whose message is meant for the person at the terminal: shown in one line, exit 2.
USER_ERRORS: tuple[type[Exception], ...] = (ClassifierError, AdminError, SettingsError)

stdout = Console()
stderr = Console(stderr=True)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level to stderr."),
) -> None:
    """Triage support tickets (see the commands below)."""
    if verbose:
        logging.getLogger().setLevel(logging.INFO)


def fail(message: str) -> NoReturn:
    """Print one line to stderr and exit with code 2 (bad input or configuration)."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@contextmanager
def user_errors() -> Iterator[None]:
    """The command line's one error wrapper: an error meant for the person at the terminal
    (``USER_ERRORS``) becomes one line on stderr and exit code 2; anything else is a bug and
    keeps its traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        fail(str(exc))


def settings() -> Settings:
    """The settings from the environment (exits with a clear line if invalid)."""
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))


def taxonomy(config: Settings) -> Taxonomy:
    """The configured taxonomy (exits with a clear line if invalid)."""
    try:
        return load_taxonomy(config.taxonomy)
    except ClassifierError as exc:
        fail(str(exc))


def run(coro: Coroutine[Any, Any, T], *, closing: OpenAIClient | None = None) -> T:
    """Run a coroutine to completion from a synchronous command.

    ``closing``: an OpenAI client the coroutine may use; its connections are closed on the
    same event loop before it ends (a command that runs several loops gets fresh connections
    in each, so none is left to be torn down after its loop closed).
    """

    async def body() -> T:
        try:
            return await coro
        finally:
            if closing is not None:
                await closing.aclose()

    return asyncio.run(body())


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressCallback]:
    """A ProgressCallback drawing a bar on stderr (nothing when not a terminal or disabled)."""
    if not enabled or not sys.stderr.isatty():
        yield lambda _event: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[message]}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(event: ProgressEvent) -> None:
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(event.stage, total=1.0, message="")
            task = tasks[event.stage]
            bar.update(
                task,
                completed=event.fraction if event.fraction is not None else None,
                total=1.0 if event.fraction is not None else None,
                message=event.message,
            )

        yield update


def main() -> None:
    """Entry point: run the app, turning known errors into one line and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except USER_ERRORS as exc:  # raised outside a command's own user_errors()
        stderr.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
