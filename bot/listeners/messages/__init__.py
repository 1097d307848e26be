"""Message events: new tickets and their edits (filtering and storage in ``bot.intake``)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.payloads import parse_message
from bot.services import Services

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to every ``message`` event."""

    @app.event("message")
    async def on_message(body: dict[str, Any], event: dict[str, Any]) -> None:
        outcome = await services.intake.receive(parse_message(body, event))
        log.debug("message %s/%s: %s", event.get("channel"), event.get("ts"), outcome)
