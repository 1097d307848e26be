"""manifest.yml asks for exactly what the code uses: every event, command and action listened
to is subscribed, and every scope is needed by an event, a command or a Web API method called."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

#: Web API method (as the SDK spells it) -> the bot scopes it needs (Slack's method docs).
METHOD_SCOPES: dict[str, set[str]] = {
    "auth_test": set(),
    "chat_postMessage": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "chat_update": {"chat:write"},
    "chat_delete": {"chat:write"},
    "chat_getPermalink": set(),
    "reactions_add": {"reactions:write"},
    "reactions_remove": {"reactions:write"},
    "conversations_info": {"channels:read", "groups:read"},
    "conversations_history": {"channels:history", "groups:history"},
    "conversations_replies": {"channels:history", "groups:history"},
    "conversations_members": {"channels:read", "groups:read"},
    "users_info": {"users:read"},
    "usergroups_users_list": {"usergroups:read"},
    "views_publish": set(),
    "views_open": set(),
    "files_upload_v2": {"files:write"},
    "files_getUploadURLExternal": {"files:write"},
    "files_completeUploadExternal": {"files:write"},
}

#: Event -> the manifest subscriptions and scopes it needs. A "message" listener covers public
#: and private support channels and direct messages to the bot.
EVENT_SUBSCRIPTIONS: dict[str, tuple[set[str], set[str]]] = {
    "message": (
        {"message.channels", "message.groups", "message.im"},
        {"channels:history", "groups:history", "im:history"},
    ),
    "reaction_added": ({"reaction_added"}, {"reactions:read"}),
    "reaction_removed": ({"reaction_removed"}, {"reactions:read"}),
    "app_home_opened": ({"app_home_opened"}, set()),
    "member_joined_channel": ({"member_joined_channel"}, {"channels:read", "groups:read"}),
    "member_left_channel": ({"member_left_channel"}, {"channels:read", "groups:read"}),
}


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return data


def _listened(kind: str) -> set[str]:
    """First string arguments of ``app.<kind>(...)`` calls in the listeners."""
    found: set[str] = set()
    for path in (ROOT / "bot" / "listeners").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == kind
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "app"
                and node.args
            ):
                arg = node.args[0]
                found.add(arg.value if isinstance(arg, ast.Constant) else "<pattern>")
    return found


def _called_methods() -> set[str]:
    """Slack Web API methods used through a client anywhere in bot/ (called or passed on)."""
    called: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.split("_")[0]
                in {
                    "auth",
                    "chat",
                    "reactions",
                    "conversations",
                    "users",
                    "usergroups",
                    "views",
                    "files",
                }
                and "_" in node.attr
            ):
                called.add(node.attr)
    return called


def test_every_event_listened_to_is_subscribed() -> None:
    events = _listened("event")
    assert {"message", "reaction_added", "reaction_removed"} <= events
    subscribed = set(_manifest()["settings"]["event_subscriptions"]["bot_events"])
    needed = set().union(*(EVENT_SUBSCRIPTIONS[event][0] for event in events))
    assert subscribed == needed


def test_every_command_is_declared() -> None:
    commands = _listened("command")
    declared = {c["command"] for c in _manifest()["features"]["slash_commands"]}
    assert declared == commands


def test_actions_need_interactivity() -> None:
    assert _listened("action"), "the department buttons are listened to"
    assert _manifest()["settings"]["interactivity"]["is_enabled"] is True


def test_scopes_are_exactly_the_ones_used() -> None:
    methods = _called_methods()
    unknown = methods - METHOD_SCOPES.keys()
    assert not unknown, f"add these methods' scopes to METHOD_SCOPES: {sorted(unknown)}"
    needed = set().union(*(METHOD_SCOPES[m] for m in methods))
    needed |= set().union(*(EVENT_SUBSCRIPTIONS[e][1] for e in _listened("event")))
    if _listened("command") or _listened("message_shortcut"):
        needed.add("commands")  # slash commands and shortcuts both need it
    requested = set(_manifest()["oauth_config"]["scopes"]["bot"])
    assert requested - needed == set(), "requested but never used"
    assert needed - requested == set(), "used but not requested"


def test_app_home_matches_the_listener() -> None:
    home = _manifest()["features"]["app_home"]["home_tab_enabled"]
    assert home == ("app_home_opened" in _listened("event"))


def test_message_shortcuts_are_declared() -> None:
    listened = _listened("message_shortcut")
    assert "send_to_triage" in listened
    declared = {
        s["callback_id"]
        for s in _manifest()["features"].get("shortcuts", [])
        if s["type"] == "message"
    }
    assert declared == listened


def test_direct_messages_need_the_messages_tab() -> None:
    subscribed = set(_manifest()["settings"]["event_subscriptions"]["bot_events"])
    home = _manifest()["features"]["app_home"]
    assert ("message.im" in subscribed) == home["messages_tab_enabled"]
    assert home["messages_tab_read_only_enabled"] is False
