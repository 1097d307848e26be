"""Bolt listeners, one package per Slack surface, each with ``register(app, services)``.

To add a surface (slash commands, App Home, ...): create ``bot/listeners/<surface>/__init__.py``
with a ``register(app, services)`` function and add it to ``SURFACES`` below.

The app runs with ``process_before_response=True`` (the ack follows the listener), so a listener
must return within Slack's 3 seconds: ``await ack()`` first, then either do something quick or
start the long work without awaiting it, e.g. a Bolt lazy listener
(``app.command("/retrain")(ack=..., lazy=[run_retrain])``) or ``asyncio.create_task`` on a job
whose state lives in the database, owned by a service whose background task the runtime
supervises (``bot.runtime``); a listener never starts background work of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt.async_app import AsyncApp

from bot.listeners import (
    actions,
    app_home,
    commands,
    members,
    messages,
    reactions,
    shortcuts,
)
from bot.services import Services

Register = Callable[[AsyncApp, Services], None]

#: Every surface's register function, in the order they are registered.
SURFACES: tuple[Register, ...] = (
    messages.register,
    reactions.register,
    actions.register,
    commands.register,
    app_home.register,
    members.register,
    shortcuts.register,
)


def register_all(app: AsyncApp, services: Services) -> None:
    """Register every surface's listeners on ``app``."""
    for register in SURFACES:
        register(app, services)
