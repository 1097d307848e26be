"""The Bolt app factory."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult

from admin.settings import Settings
from bot.errors import BotError
from bot.listeners import register_all
from bot.services import Services

errors_log = logging.getLogger("bot.errors")


def create_app(settings: Settings, services: Services) -> AsyncApp:
    """The Bolt app with every listener registered.

    ``process_before_response`` is on: a listener only stores what happened and queues the
    ticket (milliseconds), so Slack's acknowledgement comes after the ticket is durable. A
    failure to store gives Slack an error and it retries; the stored ticket makes the retry a
    no-op. Slow work (classification, Slack calls) runs in ``services.queue``.
    """
    config = services.slack_config
    bolt_log = logging.getLogger("bot.bolt")
    bolt_log.setLevel(settings.log_level)

    async def authorize(**_kwargs: Any) -> AuthorizeResult:
        # The identity comes from the auth.test done once at start-up (bot.runtime), so
        # Bolt does not call auth.test again, and its self-event filter knows the bot.
        identity = services.slack.identity
        if identity is None:
            raise BotError("The bot is not connected to Slack yet.")
        return AuthorizeResult(
            enterprise_id=None,
            team_id=identity.team_id,
            bot_user_id=identity.user_id,
            bot_id=identity.bot_id,
            bot_token=config.bot_token,
        )

    app = AsyncApp(
        name="triage-bot",
        authorize=authorize,
        signing_secret=config.signing_secret,
        client=services.slack.client,
        process_before_response=True,
        logger=bolt_log,
    )
    register_all(app, services)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # The one place unhandled listener errors end: details go to the log, never to a
        # person. Bolt then answers Slack with an error, so Slack retries the event; the
        # ticket is stored idempotently, so the retry loses nothing and doubles nothing.
        event = body.get("event") if isinstance(body.get("event"), dict) else {}
        errors_log.error(
            "listener.failed",
            exc_info=error,
            extra={
                "error_type": type(error).__name__,
                "payload_type": body.get("type"),
                "event_type": event.get("type") if event else None,
                "channel": event.get("channel") if event else None,
                "command": body.get("command"),
            },
        )

    return app
