"""Slash commands: /retrain and /evalreport (admins only; others get a polite refusal)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.admin_desk import AdminDesk, admin_desk
from bot.admin_payloads import UsageError, parse_evalreport, parse_retrain
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    """Listen to /retrain and /evalreport; answer ephemerally within Slack's 3 s."""

    # Looked up per request, so the desk can be replaced (tests give it test learners).
    def desk() -> AdminDesk:
        return admin_desk(services)

    with contextlib.suppress(RuntimeError):  # no running loop: started by the first request
        asyncio.get_running_loop()
        desk().start()

    @app.command("/retrain")
    async def on_retrain(ack: AsyncAck, command: dict[str, Any]) -> None:
        desk().start()
        try:
            parsed = parse_retrain(command)
        except UsageError as exc:
            await ack(text=str(exc))
            return
        await ack(text=await desk().retrain(parsed))

    @app.command("/evalreport")
    async def on_evalreport(ack: AsyncAck, command: dict[str, Any]) -> None:
        desk().start()
        try:
            parsed = parse_evalreport(command)
        except UsageError as exc:
            await ack(text=str(exc))
            return
        await ack(text=await desk().evalreport(parsed))
