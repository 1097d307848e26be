"""What the admin commands share: opening the database and the job context from settings."""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from typing import TypeVar

from admin.cli.terminal import run, settings, taxonomy
from admin.context import AdminContext, build_admin_context
from admin.learner_setup import learner_context
from data.db.database import Database

T = TypeVar("T")


def cli_user() -> str:
    """Who runs a terminal command, as recorded in the registry and the audit log."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return f"cli:{name}"[:32]


async def open_context(body: Callable[[AdminContext], Awaitable[T]]) -> T:
    """Run ``body`` with a migrated database (TRIAGE_DATABASE_URL) and the admin context."""
    config = settings()
    departments = taxonomy(config)
    db = Database(config.database_url)
    await db.start()
    try:
        context = learner_context(config, departments)
        try:
            return await body(build_admin_context(config, db, departments, context))
        finally:
            if context.openai is not None:
                await context.openai.aclose()
    finally:
        await db.close()


def run_with_context(body: Callable[[AdminContext], Awaitable[T]]) -> T:
    """Run ``body`` (see ``open_context``); a user-facing error becomes one line and exit 2."""
    return run(open_context(body))
