"""Block actions: a department button on a low-confidence card; Take it / Resolve / Reopen on
a card (``bot.desk``); Retry on a failure notice. Each acknowledges before its Slack work; a desk
press is stored first (one short transaction), so an acknowledged press survives a crash."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.failure_notice import RETRY_TICKET_ACTION, parse_retry_ticket
from bot.payloads import (
    DESK_ACTION_PREFIX,
    ROUTE_ACTION_PREFIX,
    parse_desk_press,
    parse_route_choice,
)
from bot.services import Services

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the department buttons (action_id ``triage_route:<department>``)."""

    @app.action(re.compile(f"^{re.escape(ROUTE_ACTION_PREFIX)}"))
    async def on_route_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        choice = parse_route_choice(body)
        if choice is None:
            return
        outcome = await services.corrections.choose(choice)
        log.info("button %s by %s: %s", choice.label, choice.user, outcome)

    @app.action(re.compile(f"^{re.escape(DESK_ACTION_PREFIX)}"))
    async def on_desk_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        press = parse_desk_press(body)
        if press is None:
            await ack()
            return
        # Stored, then acknowledged (an acknowledged press is never delivered again); its
        # Slack side (the card, the status emoji, the thread line or the refusal) is queued:
        # Bolt answers Slack only once this function returns (process_before_response).
        answer = await services.desk.record_press(press)
        await ack()
        services.desk.follow_up(answer)
        log.info(
            "desk %s on #%s by %s: %s", press.action, press.ticket_id, press.user, answer.outcome
        )

    @app.action(RETRY_TICKET_ACTION)
    async def on_retry_ticket_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = parse_retry_ticket(body)
        if press is not None:
            await services.home.retry_ticket(press)
