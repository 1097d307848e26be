"""Every call the bot makes to the Slack Web API, through one ``AsyncWebClient``.

The client retries by itself, bounded, on 429 (honouring ``Retry-After``), on 5xx and on
connection errors. What still fails is translated here into ``TransientSlackError`` (try again
later) or ``PermanentSlackError`` (someone must fix the setup; logged once with how). Calls that
are idempotent by nature treat Slack's "already done" answers as success, so a resumed ticket can
repeat them safely.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import PermanentSlackError, RateLimitedError, TransientSlackError
from bot.mrkdwn import blocks_without_broadcasts, without_broadcasts

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest Retry-After the client waits out itself; a longer one fails the call.
MAX_RETRY_AFTER_SECONDS = 30

#: The longest Retry-After waited out inside a call made from this context. Start-up and admin
#: calls wait (up to ``MAX_RETRY_AFTER_SECONDS``); the ticket router waits out only an
#: immediate retry and otherwise hands the ticket back to the queue (``RateLimitedError``), so
#: a rate-limited ticket does not hold a worker that other tickets could use meanwhile.
_wait_in_place: ContextVar[float] = ContextVar(
    "slack_wait_in_place", default=MAX_RETRY_AFTER_SECONDS
)


#: Whether a chat.postMessage that failed with a 5xx or a lost connection (it may have been
#: posted all the same) is sent again by the client. The ticket router turns this off: it
#: looks for the message first (``find_ticket_message``) and posts only if it is not there.
_resend_posts: ContextVar[bool] = ContextVar("slack_resend_posts", default=True)


@contextmanager
def ticket_calls() -> Iterator[None]:
    """Calls made in this block (and tasks it starts) are a ticket's: a 429 that asks for any
    wait fails at once (``RateLimitedError``), and posts are never sent twice blindly."""
    waits = _wait_in_place.set(0.0)
    resends = _resend_posts.set(False)
    try:
        yield
    finally:
        _resend_posts.reset(resends)
        _wait_in_place.reset(waits)


def _blind_repost(request: HttpRequest) -> bool:
    return request.url.endswith("/chat.postMessage") and not _resend_posts.get()


class _NoBlindReposts(AsyncRetryHandler):
    """Put before one of slack_sdk's handlers: it then never re-sends a ticket's post."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if _blind_repost(request):
            return False
        return await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


class ServerErrorRetryHandler(_NoBlindReposts, AsyncServerErrorRetryHandler):
    """slack_sdk's 5xx retries, except a ticket's posts (see ``ticket_calls``)."""


class ConnectionErrorRetryHandler(_NoBlindReposts, AsyncConnectionErrorRetryHandler):
    """slack_sdk's connection-error retries, except a ticket's posts (see ``ticket_calls``)."""


def retry_after(headers: Any) -> float:
    """Seconds from a response's Retry-After header (1 when missing or unreadable)."""
    for key, values in (headers or {}).items():
        if key.lower() == "retry-after" and values:
            value = values if isinstance(values, str) else values[0]
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 1.0


class RateLimitRetryHandler(AsyncRetryHandler):
    """Retry a 429 after exactly ``Retry-After`` seconds plus a little jitter, bounded.

    slack_sdk's own handler adds up to a whole second of jitter to every wait, which at a few
    hundred calls a second turns one 429 into a second of latency; this keeps the jitter small
    and refuses waits longer than ``max_wait`` or than the calling context allows
    (``ticket_calls``): those calls fail with the 429 and are retried later. The wait is
    ``sleep`` (the runtime clock's), so a test's fake clock decides when it ends.
    """

    def __init__(
        self,
        max_retry_count: int = 3,
        max_wait: float = MAX_RETRY_AFTER_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait
        self.sleep = sleep

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return (
            response is not None
            and response.status_code == 429
            and retry_after(response.headers) <= min(self.max_wait, _wait_in_place.get())
        )

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        assert response is not None
        state.next_attempt_requested = True
        await self.sleep(retry_after(response.headers) + random.uniform(0, 0.05))
        state.increment_current_attempt()


def create_slack_client(
    token: str,
    base_url: str,
    session: aiohttp.ClientSession | None,
    retries: int = 3,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncWebClient:
    """The process's one Slack client: shared HTTP session, bounded retries; a 429 is waited
    out with ``sleep`` (the runtime clock's)."""
    sdk_log = logging.getLogger("slack_sdk.web.async_base_client")
    if sdk_log.level == logging.NOTSET:
        # slack_sdk formats every request and response for DEBUG when its logger's own level
        # is unset (it tests ``.level``, not ``isEnabledFor``): ~0.07 ms of CPU a
        # call. Pin the level the logger has now, so that is only done when it is logged.
        sdk_log.setLevel(sdk_log.getEffectiveLevel())
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        session=session,
        logger=sdk_log,
        timeout=10,
        retry_handlers=[
            RateLimitRetryHandler(max_retry_count=retries, sleep=sleep),
            ServerErrorRetryHandler(max_retry_count=retries),
            ConnectionErrorRetryHandler(max_retry_count=retries),
        ],
    )


#: Slack errors that need a person to fix the setup, and how (``{channel}`` is filled in).
HINTS: dict[str, str] = {
    "not_in_channel": "Invite the bot to <#{channel}> with /invite @bot in that channel.",
    "channel_not_found": (
        "Channel {channel} does not exist or the bot cannot see it: check the channel id in "
        "TRIAGE_TAXONOMY / TRIAGE_TRIAGE_CHANNEL, and invite the bot if it is private."
    ),
    "is_archived": "Channel {channel} is archived: unarchive it or point the taxonomy elsewhere.",
    "invalid_auth": "Slack rejected SLACK_BOT_TOKEN: reinstall the app and set its new token.",
    "not_authed": "No token reached Slack: set SLACK_BOT_TOKEN.",
    "token_revoked": "SLACK_BOT_TOKEN was revoked: reinstall the app and set its new token.",
    "token_expired": "SLACK_BOT_TOKEN expired: reinstall the app and set its new token.",
    "account_inactive": "The bot's account is deactivated: reinstall the app.",
    "missing_scope": (
        "The bot token lacks a scope: add it under OAuth & Permissions and reinstall the app."
    ),
    "restricted_action": "The workspace does not let the bot post in {channel}.",
}

_HOW_TO_REPLACE_IT = (
    "generate a new app-level token with the connections:write scope "
    "(Basic Information → App-Level Tokens) and set it."
)
#: The same for apps.connections.open, which takes the app-level token (Socket Mode).
APP_TOKEN_HINTS: dict[str, str] = {
    "invalid_auth": f"Slack rejected SLACK_APP_TOKEN: {_HOW_TO_REPLACE_IT}",
    "not_authed": "No token reached Slack: set SLACK_APP_TOKEN.",
    "not_allowed_token_type": (
        "SLACK_APP_TOKEN is not an app-level token: generate one (xapp-...) with the "
        "connections:write scope under Basic Information → App-Level Tokens."
    ),
    "token_revoked": f"SLACK_APP_TOKEN was revoked: {_HOW_TO_REPLACE_IT}",
    "token_expired": f"SLACK_APP_TOKEN expired: {_HOW_TO_REPLACE_IT}",
    "missing_scope": (
        "SLACK_APP_TOKEN lacks the connections:write scope: generate an app-level token with it "
        "(Basic Information → App-Level Tokens)."
    ),
}

#: A Slack user group id: the only group a message may mention (see ``post_message``).
USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")

#: ``metadata.event_type`` of every message the bot posts about a ticket; the payload names
#: the ticket, the kind of message and its label, so the message can be found again.
TICKET_MESSAGE_EVENT = "triage_ticket_message"
#: Pages of channel history (200 messages each) searched for a message that may have been posted.
FIND_PAGES = 5

#: Slack's answers that mean the thing is already as wanted.
_ALREADY_DONE: dict[str, frozenset[str]] = {
    "reactions.add": frozenset({"already_reacted"}),
    "reactions.remove": frozenset({"no_reaction", "message_not_found"}),
    "chat.delete": frozenset({"message_not_found"}),
}


@dataclass(frozen=True)
class BotIdentity:
    """Who the bot is in the workspace (from auth.test)."""

    user_id: str
    bot_id: str
    team_id: str
    enterprise_id: str = ""  # set on an Enterprise Grid install


@dataclass(frozen=True)
class UserInfo:
    """What users.info says about a user, as far as "who is this?" needs it."""

    id: str
    is_bot: bool
    #: The user's home workspace; another organisation's user in a Slack Connect channel has
    #: another one (and ``is_stranger``).
    team_id: str
    is_stranger: bool
    enterprise_id: str


def _shared(info: dict[str, Any]) -> bool:
    """A conversations.info channel is shared with another organisation, or is a DM."""
    return any(bool(info.get(flag)) for flag in ("is_ext_shared", "is_pending_ext_shared", "is_im"))


class SlackGateway:
    """The bot's Slack Web API calls, with errors translated and fixes logged once."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._identity: BotIdentity | None = None
        self._logged: set[tuple[str, str]] = set()

    @property
    def identity(self) -> BotIdentity | None:
        """The bot's identity once ``connect`` has run."""
        return self._identity

    async def _call(
        self,
        method: str,
        call: Callable[[], Awaitable[T]],
        *,
        channel: str = "",
        hints: Mapping[str, str] = HINTS,
    ) -> T | None:
        try:
            return await call()
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error", "unknown_error")) if response else "unknown_error"
            status = response.status_code if response is not None else 0
            if error in _ALREADY_DONE.get(method, frozenset()):
                return None
            if status == 429:
                headers = getattr(response, "headers", None)
                raise RateLimitedError(method, retry_after(headers)) from None
            if status >= 500 or error in {"ratelimited", "internal_error"}:
                raise TransientSlackError(method, error) from None
            hint = hints.get(error, "").format(channel=channel or "?")
            if error == "missing_scope" and response is not None and response.get("needed"):
                hint += f" Needed: {response.get('needed')}."
            self._log_once(method, error, channel, hint)
            raise PermanentSlackError(method, error, hint) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientSlackError(method, type(exc).__name__) from None

    def _log_once(self, method: str, error: str, channel: str, hint: str) -> None:
        key = (error, channel)
        if key in self._logged:
            log.debug("Slack %s failed again: %s (channel %s)", method, error, channel)
            return
        self._logged.add(key)
        log.error("Slack %s failed: %s (channel %s). %s", method, error, channel or "-", hint)

    async def connect(self) -> BotIdentity:
        """Check the token with auth.test and remember who the bot is."""
        response = await self._call("auth.test", lambda: self.client.auth_test())
        assert response is not None
        self._identity = BotIdentity(
            user_id=str(response.get("user_id", "")),
            bot_id=str(response.get("bot_id", "")),
            team_id=str(response.get("team_id", "")),
            enterprise_id=str(response.get("enterprise_id") or ""),
        )
        return self._identity

    async def open_socket_url(self, app_token: str) -> str:
        """A Socket Mode WebSocket URL from apps.connections.open, which takes the app token.

        A refused token raises ``PermanentSlackError`` whose hint names SLACK_APP_TOKEN.
        """
        response = await self._call(
            "apps.connections.open",
            lambda: self.client.apps_connections_open(app_token=app_token),
            hints=APP_TOKEN_HINTS,
        )
        assert response is not None
        return str(response["url"])

    async def post_message(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
        mention_usergroup: str | None = None,
    ) -> str:
        """Post a message (a card or a thread reply); returns its ts.

        ``metadata`` is Slack message metadata (``event_type`` and ``event_payload``). No
        group mention gets through (``bot.mrkdwn.without_broadcasts``), except
        ``mention_usergroup``: a user group id from the configuration (the taxonomy's
        ``oncall_usergroup``), put before the text after that check, so only it can ping.
        """
        text = without_broadcasts(text)
        blocks = blocks_without_broadcasts(blocks)
        if mention_usergroup is not None:
            if not USERGROUP_ID.match(mention_usergroup):
                raise ValueError("mention_usergroup must be a user group id (S...)")
            text = f"<!subteam^{mention_usergroup}> {text}"
        response = await self._call(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata=metadata,
            ),
            channel=channel,
        )
        assert response is not None
        return str(response["ts"])

    async def find_ticket_message(
        self, channel: str, payload: dict[str, Any], *, after_ts: str, thread_ts: str | None
    ) -> str | None:
        """The ts of a message the bot posted with ``payload`` as its metadata, or None.

        Searches the thread ``thread_ts`` (conversations.replies), or else the channel's
        messages newer than ``after_ts`` (conversations.history, at most ``FIND_PAGES`` pages).
        """
        method = "conversations.replies" if thread_ts else "conversations.history"
        fetch = (
            self.client.conversations_replies if thread_ts else self.client.conversations_history
        )
        where: dict[str, Any] = {"ts": thread_ts} if thread_ts else {"oldest": after_ts}
        cursor: str | None = None
        for _page in range(FIND_PAGES):
            call = functools.partial(
                fetch, channel=channel, include_all_metadata=True, limit=200, cursor=cursor, **where
            )
            response = await self._call(method, call, channel=channel)
            assert response is not None
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                if (
                    metadata.get("event_type") == TICKET_MESSAGE_EVENT
                    and metadata.get("event_payload") == payload
                ):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not response.get("has_more") or not cursor:
                return None
        log.warning(
            "Gave up looking for an earlier message in %s after %d pages", channel, FIND_PAGES
        )
        return None

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """Replace a message the bot posted (no group mention gets through)."""
        text = without_broadcasts(text)
        blocks = blocks_without_broadcasts(blocks)
        await self._call(
            "chat.update",
            lambda: self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks or []),
            channel=channel,
        )

    async def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message the bot posted (already gone counts as done)."""
        await self._call(
            "chat.delete", lambda: self.client.chat_delete(channel=channel, ts=ts), channel=channel
        )

    async def add_reaction(self, channel: str, ts: str, emoji: str) -> None:
        """Add the bot's reaction (already there counts as done)."""
        await self._call(
            "reactions.add",
            lambda: self.client.reactions_add(channel=channel, timestamp=ts, name=emoji),
            channel=channel,
        )

    async def remove_reaction(self, channel: str, ts: str, emoji: str) -> None:
        """Remove the bot's reaction (already gone counts as done)."""
        await self._call(
            "reactions.remove",
            lambda: self.client.reactions_remove(channel=channel, timestamp=ts, name=emoji),
            channel=channel,
        )

    async def permalink(self, channel: str, ts: str) -> str:
        """The permanent link of a message."""
        response = await self._call(
            "chat.getPermalink",
            lambda: self.client.chat_getPermalink(channel=channel, message_ts=ts),
            channel=channel,
        )
        assert response is not None
        return str(response["permalink"])

    async def channel_membership(self, channel: str) -> tuple[str, bool, bool]:
        """(name, whether the bot is a member, whether it is shared with another organisation)
        of a channel, from conversations.info (see ``shared_externally``)."""
        response = await self._call(
            "conversations.info",
            lambda: self.client.conversations_info(channel=channel),
            channel=channel,
        )
        assert response is not None
        info = response.get("channel") or {}
        return str(info.get("name") or channel), bool(info.get("is_member")), _shared(info)

    async def shared_externally(self, channel: str) -> bool:
        """Whether people of another organisation are in the channel (Slack Connect: the
        ``is_ext_shared`` / ``is_pending_ext_shared`` of conversations.info), or it is a DM."""
        return (await self.channel_membership(channel))[2]

    async def user_info(self, user: str) -> UserInfo:
        """users.info for ``user`` (not cached here: ``bot.people`` caches it)."""
        response = await self._call("users.info", lambda: self.client.users_info(user=user))
        assert response is not None
        info = response.get("user") or {}
        enterprise = info.get("enterprise_user") or {}
        return UserInfo(
            id=str(info.get("id") or user),
            is_bot=bool(info.get("is_bot")) or info.get("id") == "USLACKBOT",
            team_id=str(info.get("team_id") or ""),
            is_stranger=bool(info.get("is_stranger")),
            enterprise_id=str(enterprise.get("enterprise_id") or ""),
        )

    async def channel_members(self, channel: str) -> set[str]:
        """Every member of a channel, from conversations.members (all pages)."""
        members: set[str] = set()
        cursor: str | None = None
        while True:
            call = functools.partial(
                self.client.conversations_members, channel=channel, limit=200, cursor=cursor
            )
            response = await self._call("conversations.members", call, channel=channel)
            assert response is not None
            members.update(str(member) for member in response.get("members") or [])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return members

    async def usergroup_members(self, usergroup: str) -> set[str]:
        """The user ids in a user group (usergroups.users.list)."""
        response = await self._call(
            "usergroups.users.list", lambda: self.client.usergroups_users_list(usergroup=usergroup)
        )
        assert response is not None
        return {str(user) for user in response.get("users") or []}

    async def post_ephemeral(self, channel: str, user: str, text: str) -> None:
        """A message in ``channel`` only ``user`` sees (no group mention gets through)."""
        text = without_broadcasts(text)
        await self._call(
            "chat.postEphemeral",
            lambda: self.client.chat_postEphemeral(channel=channel, user=user, text=text),
            channel=channel,
        )

    async def upload_file(
        self,
        channel: str,
        content: bytes,
        *,
        filename: str,
        title: str,
        alt_text: str,
        thread_ts: str | None = None,
    ) -> None:
        """Share a file in ``channel`` (in the thread ``thread_ts``), with files_upload_v2."""
        await self._call(
            "files_upload_v2",
            lambda: self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                file=content,
                filename=filename,
                title=title,
                alt_txt=alt_text,
            ),
            channel=channel,
        )

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        """Publish ``user``'s App Home tab (views.publish; no group mention gets through)."""
        view = blocks_without_broadcasts(view)
        await self._call(
            "views.publish", lambda: self.client.views_publish(user_id=user, view=view)
        )
