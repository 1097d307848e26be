"""The bot package's exceptions.

    BotError                    anything this package raises on purpose
    ├── SlackConfigError        a Slack setting is missing or malformed (names the setting only)
    │   └── SampleChannelsError the taxonomy still has the shipped sample channel ids
    ├── ModelNotReadyError      no active model is loaded yet
    └── SlackCallError          a Slack Web API call failed (raised by ``bot.slack_gateway``)
        ├── TransientSlackError still rate limited, a 5xx or a connection error: retry later
        │   └── RateLimitedError    a 429 not waited out in place; ``retry_after`` says when
        └── PermanentSlackError Slack said no (not_in_channel, invalid_auth, ...): retrying
                                will not help until someone fixes the setup; ``hint`` says how

``str()`` of each is safe to log and to show an admin; people in Slack never see exception text.
"""

from __future__ import annotations


class BotError(Exception):
    """Base class of the bot package's errors."""


class SlackConfigError(BotError):
    """A Slack setting is missing or malformed; the message names it, never its value."""


class SampleChannelsError(SlackConfigError):
    """The departments still point at the sample channels of the shipped taxonomy."""


class ModelNotReadyError(BotError):
    """The active classifier is not loaded yet."""


class SlackCallError(BotError):
    """A Slack Web API call failed."""

    def __init__(self, method: str, error: str, hint: str = "") -> None:
        super().__init__(f"Slack {method} failed: {error}." + (f" {hint}" if hint else ""))
        self.method = method
        self.error = error
        self.hint = hint


class TransientSlackError(SlackCallError):
    """Worth retrying later: rate limited after the client's own retries, 5xx, network."""


class RateLimitedError(TransientSlackError):
    """Slack answered 429 and the call did not wait: try again after ``retry_after`` seconds."""

    def __init__(self, method: str, retry_after: float) -> None:
        super().__init__(method, "ratelimited")
        self.retry_after = retry_after


class PermanentSlackError(SlackCallError):
    """Retrying will not help until the setup is fixed (see ``hint``)."""
