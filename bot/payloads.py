"""Slack payloads the bot reads, parsed into small typed models at the boundary.

Listeners hand the raw Bolt ``body``/``event`` dicts to these parsers and pass the result on;
nothing past this module looks inside a Slack payload.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

#: action_id prefix of the department buttons on a card; the department name follows.
ROUTE_ACTION_PREFIX = "triage_route:"

#: action_id prefix of the desk buttons on a card (Take it, Resolve, Reopen); the action follows.
DESK_ACTION_PREFIX = "triage_desk:"
TAKE = "take"
RESOLVE = "resolve"
REOPEN = "reopen"
DESK_ACTIONS = (TAKE, RESOLVE, REOPEN)

#: Message subtypes that are a person's new message (with or without files); a
#: ``thread_broadcast`` is a thread reply also shown in the channel.
_PERSON_SUBTYPES = frozenset({None, "file_share", "me_message", "thread_broadcast"})


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
    #: The author's team when the event names it (``user_team``: Slack Connect events do).
    team: str | None = None
    #: A direct message to the bot (``channel_type: im``).
    direct: bool = False


class ThreadReply(_Frozen):
    """A person's reply in a thread: a follow-up when the thread is a ticket's."""

    workspace: str
    channel: str
    ts: str
    thread_ts: str
    user: str
    text: str
    team: str | None = None
    direct: bool = False


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


MessagePayload = NewMessage | ThreadReply | EditedMessage | SkippedMessage


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
    user = event.get("user")
    if not user:
        return SkippedMessage(channel=channel, ts=ts, reason="no author")
    team = str(event.get("user_team") or event.get("team") or "") or None
    direct = event.get("channel_type") == "im"
    thread = event.get("thread_ts")
    if thread and thread != ts:
        return ThreadReply(
            workspace=_workspace(body),
            channel=channel,
            ts=ts,
            thread_ts=str(thread),
            user=str(user),
            text=str(event.get("text") or ""),
            team=team,
            direct=direct,
        )
    return NewMessage(
        workspace=_workspace(body),
        channel=channel,
        ts=ts,
        user=str(user),
        text=str(event.get("text") or ""),
        has_files=bool(event.get("files")),
        team=team,
        direct=direct,
    )


#: callback_id of the "Send to triage" message shortcut (manifest.yml).
SEND_TO_TRIAGE = "send_to_triage"


class ShortcutRequest(_Frozen):
    """Someone used "Send to triage" on a message (a ``message_action`` payload)."""

    workspace: str
    channel: str
    ts: str
    #: The message's author: a user id, or the bot id of an app's message.
    author: str
    #: The message was posted by an app (``bot_id`` or subtype ``bot_message``).
    by_app: bool
    bot_id: str | None
    text: str
    #: Who used the shortcut, and their team (another organisation's in Slack Connect).
    user: str
    team: str | None = None


def parse_shortcut(body: dict[str, Any]) -> ShortcutRequest | None:
    """The message a ``message_action`` payload points at, or None if it is malformed."""
    message = body.get("message") or {}
    user = (body.get("user") or {}).get("id")
    channel = (body.get("channel") or {}).get("id")
    ts = message.get("ts") or body.get("message_ts")
    if body.get("type") != "message_action" or not user or not channel or not ts:
        return None
    bot_id = message.get("bot_id") or None
    by_app = bool(bot_id) or message.get("subtype") == "bot_message"
    team = (body.get("user") or {}).get("team_id")
    return ShortcutRequest(
        workspace=_workspace(body),
        channel=str(channel),
        ts=str(ts),
        author=str(message.get("user") or bot_id or ""),
        by_app=by_app,
        bot_id=str(bot_id) if bot_id else None,
        text=str(message.get("text") or ""),
        user=str(user),
        team=str(team) if team else None,
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
    #: The event's own time: one reaction (a redelivered event is the same request).
    event_ts: str = ""


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
        event_ts=str(event.get("event_ts") or ""),
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


class DeskPress(_Frozen):
    """Someone pressed Take it, Resolve or Reopen on a card."""

    action: Literal["take", "resolve", "reopen"]
    user: str
    channel: str
    message_ts: str
    ticket_id: int
    #: The department the card was drawn for.
    department: str
    #: Slack's ``action_ts``: one press (a press delivered twice is one request).
    action_ts: str
    team: str | None = None


def parse_desk_press(body: dict[str, Any]) -> DeskPress | None:
    """The desk button pressed in a block_actions payload, or None if malformed."""
    actions = body.get("actions") or []
    container = body.get("container") or {}
    action = next(
        (a for a in actions if str(a.get("action_id", "")).startswith(DESK_ACTION_PREFIX)), None
    )
    user = (body.get("user") or {}).get("id")
    if action is None or not user:
        return None
    name = str(action["action_id"])[len(DESK_ACTION_PREFIX) :]
    ticket, _, department = str(action.get("value", "")).partition(":")
    if name not in DESK_ACTIONS or not ticket.isdigit():
        return None
    team = (body.get("user") or {}).get("team_id")
    return DeskPress(
        action=name,
        user=str(user),
        channel=str(container.get("channel_id") or (body.get("channel") or {}).get("id") or ""),
        message_ts=str(container.get("message_ts") or ""),
        ticket_id=int(ticket),
        department=department,
        action_ts=str(action.get("action_ts") or body.get("trigger_id") or ""),
        team=str(team) if team else None,
    )
