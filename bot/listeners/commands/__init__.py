"""Slash commands: /retrain and /evalreport (admins only; others get a polite refusal) and
/triage stats (agents and admins)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.admin_payloads import UsageError, parse_evalreport, parse_retrain, parse_triage
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    """Listen to /retrain and /evalreport; answer ephemerally within Slack's 3 s."""
    commands = services.commands

    @app.command("/retrain")
    async def on_retrain(ack: AsyncAck, command: dict[str, Any]) -> None:
        try:
            parsed = parse_retrain(command)
        except UsageError as exc:
            await commands.access.refuse_usage(command, "retrain")
            await ack(text=str(exc))
            return
        await ack(text=await commands.retrain(parsed))

    @app.command("/evalreport")
    async def on_evalreport(ack: AsyncAck, command: dict[str, Any]) -> None:
        try:
            parsed = parse_evalreport(command)
        except UsageError as exc:
            await commands.access.refuse_usage(command, "evalreport")
            await ack(text=str(exc))
            return
        await ack(text=await commands.evalreport(parsed))

    @app.command("/triage")
    async def on_triage(ack: AsyncAck, command: dict[str, Any]) -> None:
        try:
            parsed = parse_triage(command)
        except UsageError as exc:
            await commands.access.refuse_usage(command, "stats")
            await ack(text=str(exc))
            return
        person = await services.people.who(parsed.user)
        await ack(text=await commands.stats(parsed, may_see=person.is_agent))
