"""Slack payloads the bot reads, parsed into small typed models at the boundary.

Listeners hand the raw Bolt ``body``/``event`` dicts to these parsers and pass the result on;
nothing past this module looks inside a Slack payload.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

#: action_id prefix of the department buttons on a card; the department name follows.
ROUTE_ACTION_PREFIX = "triage_route:"

#: Message subtypes that are a person's new top-level message (with or without files).
_PERSON_SUBTYPES = frozenset({None, "file_share", "me_message"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class NewMessage(_Frozen):
    """A person's new top-level message: a ticket candidate."""

    workspace: str
    channel: str
    ts: str
    user: str
    text: str
    has_files: bool = False


class EditedMessage(_Frozen):
    """A person edited a top-level message."""

    workspace: str
    channel: str
    ts: str
    text: str


class SkippedMessage(_Frozen):
    """A message event that is not a ticket; ``reason`` is for the log."""

    channel: str
    ts: str
    reason: str


MessagePayload = NewMessage | EditedMessage | SkippedMessage


def _workspace(body: dict[str, Any]) -> str:
    team = body.get("team_id") or (body.get("team") or {}).get("id") or ""
    return str(team)


def parse_message(body: dict[str, Any], event: dict[str, Any]) -> MessagePayload:
    """Classify a ``message`` event: new ticket, edit of one, or something to skip."""
    channel = str(event.get("channel", ""))
    ts = str(event.get("ts", ""))
    subtype = event.get("subtype")
    if subtype == "message_changed":
        inner = event.get("message") or {}
        if inner.get("bot_id") or inner.get("subtype") == "bot_message":
            return SkippedMessage(channel=channel, ts=ts, reason="edit of a bot message")
        thread = inner.get("thread_ts")
        if thread and thread != inner.get("ts"):
            return SkippedMessage(channel=channel, ts=ts, reason="edit of a thread reply")
        if (inner.get("text") or "") == ((event.get("previous_message") or {}).get("text") or ""):
            # Slack sends message_changed for unfurls and reply counts too; the text is the same.
            return SkippedMessage(channel=channel, ts=ts, reason="message changed, text did not")
        return EditedMessage(
            workspace=_workspace(body),
            channel=channel,
            ts=str(inner.get("ts", "")),
            text=str(inner.get("text") or ""),
        )
    if event.get("bot_id") or subtype == "bot_message" or event.get("bot_profile"):
        return SkippedMessage(channel=channel, ts=ts, reason="written by a bot")
    if subtype not in _PERSON_SUBTYPES:
        return SkippedMessage(channel=channel, ts=ts, reason=f"subtype {subtype}")
    thread = event.get("thread_ts")
    if thread and thread != ts:
        return SkippedMessage(channel=channel, ts=ts, reason="thread reply")
    user = event.get("user")
    if not user:
        return SkippedMessage(channel=channel, ts=ts, reason="no author")
    return NewMessage(
        workspace=_workspace(body),
        channel=channel,
        ts=ts,
        user=str(user),
        text=str(event.get("text") or ""),
        has_files=bool(event.get("files")),
    )


class ReactionChange(_Frozen):
    """Someone added or removed a reaction on a message."""

    action: Literal["added", "removed"]
    user: str
    emoji: str
    channel: str
    ts: str
    #: The reacting user's team when the event names it (Slack Connect events do).
    team: str | None = None


def parse_reaction(event: dict[str, Any]) -> ReactionChange | None:
    """A reaction on a message, or None for reactions on files and the like."""
    item = event.get("item") or {}
    if item.get("type") != "message" or not event.get("user"):
        return None
    # Skin tones arrive as "thumbsup::skin-tone-2"; the department is the base emoji.
    emoji = str(event.get("reaction", "")).split("::", 1)[0]
    return ReactionChange(
        action="added" if event.get("type") == "reaction_added" else "removed",
        user=str(event["user"]),
        emoji=emoji,
        channel=str(item.get("channel", "")),
        ts=str(item.get("ts", "")),
        team=str(event.get("user_team") or "") or None,
    )


class RouteChoice(_Frozen):
    """Someone pressed a department button on a card."""

    user: str
    channel: str
    message_ts: str
    label: str
    ticket_id: int | None
    #: The presser's own team (``user.team_id``): another organisation's in Slack Connect.
    team: str | None = None


def parse_route_choice(body: dict[str, Any]) -> RouteChoice | None:
    """The department button pressed in a block_actions payload, or None if malformed."""
    actions = body.get("actions") or []
    container = body.get("container") or {}
    action = next(
        (a for a in actions if str(a.get("action_id", "")).startswith(ROUTE_ACTION_PREFIX)), None
    )
    user = (body.get("user") or {}).get("id")
    team = (body.get("user") or {}).get("team_id")
    if action is None or not user:
        return None
    value = str(action.get("value", ""))
    return RouteChoice(
        user=str(user),
        channel=str(container.get("channel_id") or (body.get("channel") or {}).get("id") or ""),
        message_ts=str(container.get("message_ts") or ""),
        label=str(action["action_id"])[len(ROUTE_ACTION_PREFIX) :],
        ticket_id=int(value) if value.isdigit() else None,
        team=str(team) if team else None,
    )
