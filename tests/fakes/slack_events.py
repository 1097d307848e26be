"""Signed requests into the app, as Slack sends them (v0 signatures, real HTTP).

``sign`` computes ``v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")``; ``SlackSender`` posts
event envelopes (JSON) and interaction payloads (form-encoded ``payload=``) with the
``X-Slack-Signature`` and ``X-Slack-Request-Timestamp`` headers, and ``X-Slack-Retry-Num`` for
redeliveries, so Bolt's request verification runs exactly as in production.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID


def sign(secret: str, body: str, timestamp: int) -> str:
    """Slack's v0 request signature."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackSender:
    """Posts signed Slack requests to the app at ``url`` (…/slack/events)."""

    def __init__(self, url: str, signing_secret: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.secret = signing_secret
        self.session = session
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)

    def new_ts(self) -> str:
        """A fresh message ts, as Slack would assign it."""
        return f"{1_700_000_000 + next(self._ts)}.000100"

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        retry_num: int | None = None,
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[int, str]:
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": sign(secret or self.secret, body, ts),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        async with self.session.post(self.url, data=body.encode(), headers=headers) as response:
            return response.status, await response.text()

    def envelope(self, event: dict[str, Any], team: str = TEAM_ID) -> dict[str, Any]:
        """An Events API ``event_callback`` around ``event``."""
        return event_callback(event, f"Ev{next(self._ids):08d}", team)

    async def event(
        self, event: dict[str, Any], *, retry_num: int | None = None, secret: str | None = None
    ) -> tuple[int, str]:
        """Deliver one event (JSON body)."""
        body = json.dumps(self.envelope(event))
        return await self.post(body, "application/json", retry_num=retry_num, secret=secret)

    async def envelope_again(self, envelope: dict[str, Any], retry_num: int) -> tuple[int, str]:
        """Redeliver the same envelope, as Slack does when an ack was late."""
        return await self.post(json.dumps(envelope), "application/json", retry_num=retry_num)

    async def interaction(self, payload: dict[str, Any]) -> tuple[int, str]:
        """Deliver an interaction (form body ``payload=<json>``)."""
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")


def event_callback(event: dict[str, Any], event_id: str, team: str = TEAM_ID) -> dict[str, Any]:
    """An Events API ``event_callback`` around ``event``: the body Slack POSTs over HTTP, and
    the payload of an ``events_api`` envelope in Socket Mode."""
    return {
        "token": "legacy-verification-token",
        "team_id": team,
        "api_app_id": "A0APP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-eyJldCI6Im1lc3NhZ2UifQ-{event_id}",
    }


def command_payload(command: str, text: str, user: str, channel: str) -> dict[str, str]:
    """A slash command's fields: form-encoded over HTTP, a ``slash_commands`` payload in
    Socket Mode."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "fake-workspace",
        "channel_id": channel,
        "channel_name": channel.lower(),
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A0APP",
        "is_enterprise_install": "false",
        "response_url": f"https://hooks.slack.com/commands/{TEAM_ID}/1/abc",
        "trigger_id": "1234.5678.abcdef",
    }


def message_event(
    channel: str, ts: str, text: str, user: str = "U0ALICE", **extra: Any
) -> dict[str, Any]:
    """A person's message event, shaped like Slack's."""
    return {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": "channel",
        "client_msg_id": f"msg-{ts}",
        "team": TEAM_ID,
        "blocks": [],
        **extra,
    }


def reaction_event(
    added: bool, user: str, emoji: str, channel: str, ts: str, item_user: str = "U0ALICE"
) -> dict[str, Any]:
    """A reaction_added / reaction_removed event on a message."""
    return {
        "type": "reaction_added" if added else "reaction_removed",
        "user": user,
        "reaction": emoji,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def button_payload(
    user: str, channel: str, message_ts: str, action_id: str, value: str
) -> dict[str, Any]:
    """A block_actions payload for a button press on a bot message."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1234.5678.abcdef",
        "team": {"id": TEAM_ID, "domain": "fake-workspace"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel.lower()},
        "message": {"type": "message", "ts": message_ts, "bot_id": "B0BOT", "text": "card"},
        "state": {"values": {}},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "triage_route",
                "text": {"type": "plain_text", "text": action_id.split(":")[-1]},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def member_event(joined: bool, user: str, channel: str) -> dict[str, Any]:
    """A member_joined_channel / member_left_channel event."""
    event: dict[str, Any] = {
        "type": "member_joined_channel" if joined else "member_left_channel",
        "user": user,
        "channel": channel,
        "channel_type": "C",
        "team": TEAM_ID,
        "event_ts": f"{time.time():.6f}",
    }
    if joined:
        event["inviter"] = "U0BOSS"
    return event


def shortcut_payload(
    callback_id: str, user: str, channel: str, message: dict[str, Any]
) -> dict[str, Any]:
    """A message shortcut's ``message_action`` payload (api.slack.com/reference/interaction-
    payloads/shortcuts), for the message ``message`` in ``channel``."""
    return {
        "type": "message_action",
        "token": "legacy-verification-token",
        "action_ts": f"{time.time():.6f}",
        "team": {"id": TEAM_ID, "domain": "fake-workspace"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "channel": {"id": channel, "name": channel.lower()},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": "1234.5678.abcdef",
        "response_url": f"https://hooks.slack.com/app/{TEAM_ID}/1/abc",
        "message_ts": message["ts"],
        "message": message,
    }
