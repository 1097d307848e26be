"""The "Send to triage" message shortcut: any message the bot can see becomes a ticket."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.errors import SlackCallError
from bot.payloads import parse_shortcut
from bot.services import Services

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the ``send_to_triage`` message shortcut (a ``message_action`` payload)."""

    @app.message_shortcut("send_to_triage")  # bot.payloads.SEND_TO_TRIAGE
    async def on_send_to_triage(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        request = parse_shortcut(body)
        if request is None:
            log.warning("A send_to_triage shortcut without a message; ignored")
            return
        answer = await services.intake.send_to_triage(request)
        log.info("send_to_triage on %s/%s: %s", request.channel, request.ts, answer.outcome)
        try:
            await services.slack.post_ephemeral(request.channel, request.user, answer.reply)
        except SlackCallError:  # e.g. a channel the bot is not in: the ticket stands anyway
            log.info("Could not tell %s what send_to_triage did", request.user)
