"""Reactions: a department emoji on a ticket or its card corrects it; the "not a ticket" emoji
withdraws it (``bot.request_feedback``); removing either undoes. The take and resolve emoji
take or resolve it (``bot.desk``)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.payloads import parse_reaction
from bot.services import Services

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to ``reaction_added`` and ``reaction_removed``."""

    async def on_reaction(event: dict[str, Any]) -> None:
        change = parse_reaction(event)
        if change is None:
            return
        if change.emoji == services.requests.emoji:  # "not a ticket", not a department
            outcome: object = await services.requests.react(change)
        elif change.emoji in services.desk.emoji:
            outcome = (await services.desk.react(change)).outcome
        else:
            outcome = await services.corrections.react(change)
        log.info("reaction %s :%s: by %s: %s", change.action, change.emoji, change.user, outcome)

    app.event("reaction_added")(on_reaction)
    app.event("reaction_removed")(on_reaction)
