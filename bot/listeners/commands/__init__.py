"""Slash commands: /retrain and /evalreport (admins only; others get a polite refusal) and
/triage stats (agents and admins)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.admin_payloads import UsageError, parse_evalreport, parse_retrain, parse_triage
from bot.services import Services

T = TypeVar("T")


def register(app: AsyncApp, services: Services) -> None:
    """Listen to /retrain and /evalreport; answer ephemerally within Slack's 3 s."""
    commands = services.commands

    async def parsed(
        ack: AsyncAck, command: dict[str, Any], parse: Callable[[dict[str, Any]], T], name: str
    ) -> T | None:
        """The command parsed, or None once a misuse was audited and answered with usage."""
        try:
            return parse(command)
        except UsageError as exc:
            await commands.access.refuse_usage(command, name)
            await ack(text=str(exc))
            return None

    @app.command("/retrain")
    async def on_retrain(ack: AsyncAck, command: dict[str, Any]) -> None:
        if (retrain := await parsed(ack, command, parse_retrain, "retrain")) is not None:
            await ack(text=await commands.retrain(retrain))

    @app.command("/evalreport")
    async def on_evalreport(ack: AsyncAck, command: dict[str, Any]) -> None:
        if (report := await parsed(ack, command, parse_evalreport, "evalreport")) is not None:
            await ack(text=await commands.evalreport(report))

    @app.command("/triage")
    async def on_triage(ack: AsyncAck, command: dict[str, Any]) -> None:
        if (stats := await parsed(ack, command, parse_triage, "stats")) is not None:
            person = await services.people.who(stats.user)
            await ack(text=await commands.stats(stats, may_see=person.is_agent))
