"""The admin surfaces' Slack payloads (slash commands, App Home), parsed at the boundary.

``/retrain [local|openai|openai-finetune] [generate=N] [dry-run]``, ``/retrain cancel``,
``/retrain rollback``, ``/retrain auto off|on``; ``/evalreport [model]``;
``/triage stats [days]``. Anything else is a ``UsageError`` whose message is the usage line.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

#: action_ids of the App Home buttons.
HOME_RETRAIN_ACTION = "triage_admin_retrain"
HOME_REPORT_ACTION = "triage_admin_report"
HOME_RETRY_FAILED_ACTION = "triage_admin_retry_failed"
HOME_AUTO_RETRAIN_ACTION = "triage_admin_auto_retrain"

RETRAIN_USAGE = (
    "Usage: `/retrain [local|openai|openai-finetune] [generate=N] [dry-run]`, "
    "`/retrain cancel`, `/retrain rollback` or `/retrain auto off|on`."
)
EVALREPORT_USAGE = "Usage: `/evalreport [model number]`, e.g. `/evalreport` or `/evalreport 7`."
TRIAGE_USAGE = (
    "Usage: `/triage stats [days]` (1 to 366, default 7): the desk's figures per department."
)

_LEARNERS = ("local", "openai", "openai-finetune")
#: A whole number as people type it: ASCII digits only (``str.isdigit`` also accepts ``²``,
#: which ``int`` then refuses).
_NUMBER = re.compile(r"[0-9]{1,9}")


class UsageError(ValueError):
    """The command's arguments are not understood; ``str()`` is the usage line to show."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RetrainCommand(_Frozen):
    """A parsed /retrain."""

    user: str
    channel: str
    action: Literal["start", "cancel", "rollback", "auto-on", "auto-off"] = "start"
    learner: str = "local"
    generate: int = 0
    dry_run: bool = False


class EvalReportCommand(_Frozen):
    """A parsed /evalreport."""

    user: str
    channel: str
    model: int | None = None


def _who(body: dict[str, Any]) -> tuple[str, str]:
    return str(body.get("user_id", "")), str(body.get("channel_id", ""))


def parse_retrain(body: dict[str, Any]) -> RetrainCommand:
    """Parse the slash command body of /retrain; UsageError when the text is not understood."""
    user, channel = _who(body)
    words = str(body.get("text", "")).lower().split()
    if words in (["cancel"], ["rollback"]):
        return RetrainCommand(user=user, channel=channel, action=words[0])
    if words in (["auto", "on"], ["auto", "off"]):
        return RetrainCommand(user=user, channel=channel, action=f"auto-{words[1]}")
    learner, generate, dry_run = "local", 0, False
    for word in words:
        if word in _LEARNERS:
            learner = word
        elif word in ("dry-run", "dryrun", "--dry-run"):
            dry_run = True
        elif word.startswith("generate="):
            value = word.removeprefix("generate=")
            if not _NUMBER.fullmatch(value) or int(value) > 10_000:
                raise UsageError(
                    "generate=N needs a whole number from 0 to 10000. " + RETRAIN_USAGE
                )
            generate = int(value)
        else:
            raise UsageError(f"I don't understand `{word}`. " + RETRAIN_USAGE)
    return RetrainCommand(
        user=user, channel=channel, learner=learner, generate=generate, dry_run=dry_run
    )


def parse_evalreport(body: dict[str, Any]) -> EvalReportCommand:
    """Parse the slash command body of /evalreport."""
    user, channel = _who(body)
    text = str(body.get("text", "")).strip().lstrip("#")
    if not text:
        return EvalReportCommand(user=user, channel=channel)
    if not _NUMBER.fullmatch(text):
        raise UsageError(EVALREPORT_USAGE)
    return EvalReportCommand(user=user, channel=channel, model=int(text))


class StatsCommand(_Frozen):
    """A parsed ``/triage stats [days]``."""

    user: str
    channel: str
    days: int = 7


def parse_triage(body: dict[str, Any]) -> StatsCommand:
    """Parse the slash command body of /triage; UsageError unless it is ``stats [days]``."""
    user, channel = _who(body)
    words = str(body.get("text", "")).lower().split()
    if not words or words[0] != "stats" or len(words) > 2:
        raise UsageError(TRIAGE_USAGE)
    if len(words) == 1:
        return StatsCommand(user=user, channel=channel)
    if not _NUMBER.fullmatch(words[1]) or not 1 <= int(words[1]) <= 366:
        raise UsageError(f"`{words[1][:20]}` is not a number of days. " + TRIAGE_USAGE)
    return StatsCommand(user=user, channel=channel, days=int(words[1]))


class HomeOpened(_Frozen):
    """Someone opened the app's Home tab."""

    user: str


def parse_home_opened(event: dict[str, Any]) -> HomeOpened | None:
    """The app_home_opened event for the Home tab (None for the Messages tab)."""
    if event.get("tab", "home") != "home" or not event.get("user"):
        return None
    return HomeOpened(user=str(event["user"]))


def parse_button_user(body: dict[str, Any]) -> str:
    """Who pressed an App Home button."""
    return str((body.get("user") or {}).get("id", ""))
