"""Channel membership: keeps the list of agents current (``bot.people``)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    """Listen to ``member_joined_channel`` and ``member_left_channel``."""

    @app.event("member_joined_channel")
    async def on_joined(event: dict[str, Any]) -> None:
        services.people.joined(str(event.get("channel", "")), str(event.get("user", "")))

    @app.event("member_left_channel")
    async def on_left(event: dict[str, Any]) -> None:
        services.people.left(str(event.get("channel", "")), str(event.get("user", "")))
