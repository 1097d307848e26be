"""App Home: the Home tab (model, jobs, activity) and its admin buttons."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.admin_payloads import (
    HOME_AUTO_RETRAIN_ACTION,
    HOME_REPORT_ACTION,
    HOME_RETRAIN_ACTION,
    HOME_RETRY_FAILED_ACTION,
    parse_button_user,
    parse_home_opened,
)
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    """Publish the Home tab when opened; run the admin buttons."""

    home = services.home

    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any]) -> None:
        opened = parse_home_opened(event)
        if opened is not None:
            await home.opened(opened.user)

    @app.action(HOME_RETRAIN_ACTION)
    async def on_retrain_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await home.retrain(parse_button_user(body))

    @app.action(HOME_REPORT_ACTION)
    async def on_report_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await home.report(parse_button_user(body))

    @app.action(HOME_AUTO_RETRAIN_ACTION)
    async def on_auto_retrain_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        value = str((body.get("actions") or [{}])[0].get("value", ""))
        await home.auto_retrain(parse_button_user(body), on=value == "on")

    @app.action(HOME_RETRY_FAILED_ACTION)
    async def on_retry_failed_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await home.retry_failed(parse_button_user(body))
