"""What every ``triage`` command shares: the terminal's output, its one error wrapper, the
settings, an event loop and progress bars.

The commands themselves are plain functions in the other modules of this package;
``admin.cli.app.build_app`` registers each of them, wrapped in ``user_errors``.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, ParamSpec, TypeVar

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
P = ParamSpec("P")

#: Errors whose message is meant for the person at the terminal, each with the words shown
#: before it: shown in one line on stderr, exit code 2. Anything else is a bug and keeps its
#: traceback.
UserErrors = Mapping[type[Exception], str]
USER_ERRORS: UserErrors = {ClassifierError: "", AdminError: "", SettingsError: ""}

stdout = Console()
stderr = Console(stderr=True)


def user_errors(command: Callable[P, None], errors: UserErrors = USER_ERRORS) -> Callable[P, None]:
    """The command line's one error wrapper: ``command`` with every error of ``errors``
    turned into one line on stderr and exit code 2 (Typer reads the wrapped signature)."""
    caught = tuple(errors)

    @functools.wraps(command)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except caught as exc:
            prefix = next(words for kind, words in errors.items() if isinstance(exc, kind))
            stderr.print(f"[bold red]error:[/] {prefix}{exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapped


def fail(message: str) -> NoReturn:
    """Stop the command: ``message`` becomes one line on stderr and exit code 2 (bad input or
    configuration; see ``user_errors``)."""
    raise AdminError(message)


def settings() -> Settings:
    """The settings from the environment (a SettingsError names what is wrong)."""
    return load_settings()


def taxonomy(config: Settings) -> Taxonomy:
    """The configured taxonomy (a ClassifierError names what is wrong)."""
    return load_taxonomy(config.taxonomy)


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
