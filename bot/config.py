"""The Slack part of the settings, checked once at start-up.

``slack_config`` turns the optional Slack fields of ``Settings`` into a ``SlackConfig`` or stops
with one sentence naming the setting that is missing or malformed (never its value).
"""

from __future__ import annotations

from dataclasses import dataclass

from admin.settings import Settings
from bot.errors import SlackConfigError


@dataclass(frozen=True)
class SlackConfig:
    """What the bot needs to talk to Slack."""

    bot_token: str
    signing_secret: str
    app_token: str | None
    api_url: str

    @property
    def socket_mode(self) -> bool:
        """Socket Mode when an app-level token is set, else the HTTP Events API."""
        return self.app_token is not None


def slack_config(settings: Settings) -> SlackConfig:
    """The checked Slack settings, or SlackConfigError naming the first bad one."""
    token = settings.slack_bot_token.get_secret_value().strip() if settings.slack_bot_token else ""
    if not token:
        raise SlackConfigError(
            "SLACK_BOT_TOKEN is not set; copy the Bot User OAuth Token (xoxb-...) from your "
            "Slack app's OAuth & Permissions page."
        )
    if not token.startswith("xoxb-"):
        raise SlackConfigError(
            "SLACK_BOT_TOKEN is not a bot token; it must start with xoxb- (user and app-level "
            "tokens do not work here)."
        )
    secret = (
        settings.slack_signing_secret.get_secret_value().strip()
        if settings.slack_signing_secret
        else ""
    )
    if not secret:
        raise SlackConfigError(
            "SLACK_SIGNING_SECRET is not set; copy the Signing Secret from your Slack app's "
            "Basic Information page."
        )
    if any(c.isspace() for c in secret):
        raise SlackConfigError("SLACK_SIGNING_SECRET is malformed; it must not contain spaces.")
    app_token = (
        settings.slack_app_token.get_secret_value().strip() if settings.slack_app_token else ""
    )
    if app_token and not app_token.startswith("xapp-"):
        raise SlackConfigError(
            "SLACK_APP_TOKEN is not an app-level token; it must start with xapp- (or leave it "
            "unset to use the HTTP Events API)."
        )
    api_url = settings.slack_api_url.strip()
    if not api_url.startswith(("http://", "https://")):
        raise SlackConfigError("SLACK_API_URL is malformed; it must be an http(s) URL.")
    if not settings.support_channels:
        raise SlackConfigError(
            "TRIAGE_SUPPORT_CHANNELS is not set; give the comma-separated ids (C...) of the "
            "channels where tickets are posted."
        )
    return SlackConfig(
        bot_token=token,
        signing_secret=secret,
        app_token=app_token or None,
        api_url=api_url if api_url.endswith("/") else api_url + "/",
    )
