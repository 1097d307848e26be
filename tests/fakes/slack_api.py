"""A fake Slack Web API on a loopback port, for the real ``AsyncWebClient`` to talk to.

Modelled on the published Web API reference (and bolt-python's ``tests/mock_web_api_server``):
every method answers HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``;
rate limiting is HTTP 429 with a ``Retry-After`` header (seconds) and ``"error": "ratelimited"``.
Arguments are read from the query string, a form body or a JSON body, as Slack accepts all three;
the token must come as ``Authorization: Bearer``: the bot token (``xoxb-``) for every method except
``apps.connections.open``, which takes the app-level token (``xapp-``) and opens Socket Mode
(``tests/fakes/slack_socket_mode.py``, served on the same port). The wrong kind of token is
answered ``not_allowed_token_type``, an unknown one ``invalid_auth``.

Every call is recorded (method, arguments, time). Failures can be scripted per method, for the
next N calls (or every call), optionally only for calls whose arguments match, or for a random
fraction of all calls (the load benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.slack_socket_mode import FakeSocketMode

Params = dict[str, Any]

BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
TEAM_ID = "T0TEAM"

#: Methods that take the app-level token instead of the bot token.
APP_LEVEL_METHODS = frozenset({"apps.connections.open"})

#: Block Kit limits as published (docs.slack.dev/reference/block-kit): characters of a text
#: object by where it sits, and items per container. Slack answers ``invalid_blocks`` with one
#: ``errors`` entry per violation, naming it by JSON pointer.
TEXT_LIMITS = {
    ("section", "text"): 3000,
    ("section", "fields"): 2000,
    ("header", "text"): 150,
    ("context", "elements"): 3000,
    ("button", "text"): 75,
}
ITEM_LIMITS = {("section", "fields"): 10, ("context", "elements"): 10, ("actions", "elements"): 25}
MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100
#: The ``text`` of a message: longer is refused (``msg_too_long``).
MESSAGE_TEXT_LIMIT = 40_000


def block_errors(blocks: Any, max_blocks: int) -> list[str]:
    """What Slack would say is wrong with ``blocks``, as its ``errors`` strings; [] if valid."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")

    def text_ok(obj: Any, limit: int, where: str) -> None:
        text = obj.get("text") if isinstance(obj, dict) else None
        if not isinstance(text, str) or not text:
            errors.append(f"must provide a non-empty string [json-pointer:{where}/text]")
        elif len(text) > limit:
            errors.append(f"must be less than {limit + 1} characters [json-pointer:{where}/text]")

    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind is None:
            errors.append(f"missing required field: type [json-pointer:{where}]")
            continue
        for (container, key), limit in ITEM_LIMITS.items():
            items = block.get(key)
            if kind == container and isinstance(items, list) and len(items) > limit:
                errors.append(f"no more than {limit} items allowed [json-pointer:{where}/{key}]")
        if kind in ("section", "header") and "text" in block:
            text_ok(block["text"], TEXT_LIMITS[(kind, "text")], f"{where}/text")
        for key in ("fields", "elements"):
            for j, item in enumerate(block.get(key) or []):
                inner = f"{where}/{key}/{j}"
                if not isinstance(item, dict):
                    continue
                if item.get("type") == "button":
                    text_ok(item.get("text"), TEXT_LIMITS[("button", "text")], f"{inner}/text")
                elif (kind, key) in TEXT_LIMITS:
                    text_ok(item, TEXT_LIMITS[(kind, key)], inner)
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == "button":
            button = TEXT_LIMITS[("button", "text")]
            text_ok(accessory.get("text"), button, f"{where}/accessory/text")
    return errors


def _refused(errors: list[str]) -> dict[str, Any]:
    return {
        "ok": False,
        "error": "invalid_blocks",
        "errors": errors,
        "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
    }


def content_error(params: Params, max_blocks: int = MESSAGE_BLOCKS) -> dict[str, Any] | None:
    """Slack's refusal of a message's ``text``/``blocks``, or None when they are acceptable."""
    if len(str(params.get("text") or "")) > MESSAGE_TEXT_LIMIT:
        return {"ok": False, "error": "msg_too_long"}
    if params.get("blocks"):
        errors = block_errors(params["blocks"], max_blocks)
        if errors:
            return _refused(errors)
    return None


@dataclass(frozen=True)
class SlackCall:
    """One recorded Web API call."""

    method: str
    params: Params
    at: float  # ``FakeSlack.monotonic()`` when it arrived
    answered: int  # HTTP status answered

    @property
    def ok(self) -> bool:
        return self.answered == 200 and not self.params.get("_failed")


@dataclass
class _Failure:
    method: str
    status: int
    error: str
    retry_after: int | None
    times: int | None  # None: every matching call
    when: Callable[[Params], bool] | None
    done: bool = False  # the call takes effect; only its answer is the error


@dataclass
class FakeSlack:
    """The fake Web API; ``async with FakeSlack() as slack`` serves it on 127.0.0.1:<free>."""

    token: str = "xoxb-test-token"
    #: Socket Mode: apps.connections.open hands out its URLs; its token is the app token.
    socket_mode: FakeSocketMode = field(default_factory=FakeSocketMode)
    calls: list[SlackCall] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    outside: set[str] = field(default_factory=set)  # channels the bot is not a member of
    latency: float = 0.0  # seconds each call takes, to model a slow network
    #: The time calls are stamped with (``SlackCall.at``): a test on a FakeClock passes its
    #: ``monotonic`` so call times are on the bot's clock.
    monotonic: Callable[[], float] = time.monotonic
    _failures: list[_Failure] = field(default_factory=list)
    _random_failure: tuple[float, int, str, int, random.Random] | None = None
    _messages: dict[tuple[str, str], Params] = field(default_factory=dict)
    _reactions: dict[tuple[str, str], dict[str, set[str]]] = field(default_factory=dict)
    _ts: Any = field(default_factory=lambda: itertools.count(1))
    #: usergroups.users.list: user group id -> member user ids.
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    #: conversations.members: channel id -> its people (the bot is added unless it is
    #: ``outside``); ``missing`` channels answer channel_not_found.
    members: dict[str, list[str]] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    #: conversations.info: channels shared with another organisation (Slack Connect), which
    #: it shows with ``is_ext_shared``; ids starting with "D" are direct messages (``is_im``).
    shared: set[str] = field(default_factory=set)
    #: views.publish: user id -> the Home tab view last published for them.
    home_views: dict[str, Params] = field(default_factory=dict)
    #: Files uploaded through files.getUploadURLExternal: file id -> bytes (None until sent).
    uploads: dict[str, bytes | None] = field(default_factory=dict)
    #: files.completeUploadExternal: the completed files with their channel and thread.
    shared_files: list[Params] = field(default_factory=list)
    _file_names: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: Calls that take effect and then get no answer until ``release`` (see ``hold``).
    _holds: list[tuple[str, Callable[[Params], bool] | None]] = field(default_factory=list)
    #: The calls held so far (method, arguments): a call with no side effect shows here that
    #: it arrived (``called`` lists it only once answered).
    held: list[tuple[str, Params]] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """The base URL to give the client (SLACK_API_URL)."""
        return f"http://127.0.0.1:{self.port}/api/"

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_get("/link/", self.socket_mode.accept)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.socket_mode.base_url = f"ws://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.release()
        # Open WebSockets would hold the server's shutdown until its timeout.
        await self.socket_mode.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- scripting ------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = None,
        times: int | None = 1,
        when: Callable[[Params], bool] | None = None,
        done: bool = False,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (all when None) with an error.

        ``error="ratelimited"`` answers HTTP 429 with Retry-After (default 0); an ``error`` with
        ``status=500`` answers a server error; otherwise HTTP 200 with ``ok: false``. With
        ``done`` the call takes effect first (a post is posted): an answer lost on its way back.
        """
        if status is None:
            status = 429 if error == "ratelimited" else 200
        if status == 429 and retry_after is None:
            retry_after = 0
        self._failures.append(_Failure(method, status, error, retry_after, times, when, done))

    def hold(self, method: str, *, when: Callable[[Params], bool] | None = None) -> None:
        """Let the next call of ``method`` (matching ``when``) take effect, then answer
        nothing until ``release``: the caller is stopped between Slack doing it and hearing
        so (a process killed at that moment)."""
        self._released.clear()
        self._holds.append((method, when))

    def release(self) -> None:
        """Answer the held calls (their callers may be gone by now)."""
        self._released.set()

    def fail_randomly(
        self, fraction: float, *, status: int = 429, retry_after: int = 0, seed: int = 0
    ) -> None:
        """Answer a random ``fraction`` of all calls (except auth.test) with ``status``."""
        error = "ratelimited" if status == 429 else "internal_error"
        self._random_failure = (fraction, status, error, retry_after, random.Random(seed))

    def clear_failures(self) -> None:
        """Stop every scripted failure."""
        self._failures.clear()
        self._random_failure = None

    def add_user(
        self, user_id: str, *, is_bot: bool = False, name: str = "", team_id: str = TEAM_ID
    ) -> None:
        """Make users.info know ``user_id`` (people are known by default). A ``team_id``
        other than the workspace's is a Slack Connect user of another organisation, whom
        users.info shows with ``is_stranger`` (api.slack.com/methods/users.info)."""
        self.users[user_id] = {
            "id": user_id,
            "name": name or user_id.lower(),
            "is_bot": is_bot,
            "team_id": team_id,
        }
        if team_id != TEAM_ID:
            self.users[user_id]["is_stranger"] = True

    # -- reading what happened -------------------------------------------------------------

    def called(self, method: str, **match: Any) -> list[SlackCall]:
        """Successful calls of ``method`` whose arguments include ``match``."""
        return [
            c
            for c in self.calls
            if c.method == method
            and c.ok
            and all(str(c.params.get(k)) == str(v) for k, v in match.items())
        ]

    def posts(self, channel: str | None = None, *, threads: bool | None = None) -> list[Params]:
        """Arguments of successful chat.postMessage calls (to ``channel``; replies or not)."""
        out = []
        for call in self.called("chat.postMessage"):
            if channel is not None and call.params.get("channel") != channel:
                continue
            if threads is not None and bool(call.params.get("thread_ts")) != threads:
                continue
            out.append(call.params)
        return out

    def reactions_on(self, channel: str, ts: str) -> dict[str, set[str]]:
        """Reactions currently on a message: emoji -> users."""
        return {k: set(v) for k, v in self._reactions.get((channel, ts), {}).items() if v}

    def live_messages(self, channel: str) -> list[Params]:
        """Messages the bot posted in ``channel`` and has not deleted, oldest first."""
        return [m for (c, _ts), m in self._messages.items() if c == channel]

    def message(self, channel: str, ts: str) -> Params | None:
        """A message the bot posted and has not deleted, as last updated."""
        return self._messages.get((channel, ts))

    async def wait_for(
        self, predicate: Callable[[], bool], within: float = 60.0, interval: float = 0.01
    ) -> None:
        """Poll ``predicate`` until true; AssertionError after ``within`` seconds.

        ``within`` is a bound, not a wait: a passing test returns as soon as the predicate holds.
        It is generous because a loaded machine (a CPU hog, suites running side by side) took
        over 10 s for a test retrain, and a bound that short failed tests that were right.
        """
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the fake Slack")
            await asyncio.sleep(interval)

    # -- serving --------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> Params:
        params: Params = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                params.update(dict(await request.post()))
        for key in ("blocks", "attachments", "metadata"):
            if isinstance(params.get(key), str):
                with contextlib.suppress(json.JSONDecodeError):
                    params[key] = json.loads(params[key])
        return params

    def _scripted(self, method: str, params: Params) -> _Failure | None:
        for failure in self._failures:
            if failure.method != method or (failure.when and not failure.when(params)):
                continue
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            return failure
        if self._random_failure and method != "auth.test":
            fraction, status, error, retry_after, rng = self._random_failure
            if rng.random() < fraction:
                return _Failure(method, status, error, retry_after, 1, None)
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        now = self.monotonic()
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or params.get("token", "")
        auth_error = self._auth_error(method, token)
        if auth_error is not None:
            return self._answer(method, params, now, {"ok": False, "error": auth_error})
        failure = self._scripted(method, params)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if failure is not None:
            if failure.done and handler is not None:
                handler(params)
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            body = {"ok": False, "error": failure.error}
            return self._answer(method, params, now, body, failure.status, headers, failed=True)
        if handler is None:
            return self._answer(method, params, now, {"ok": False, "error": "unknown_method"})
        body = handler(params)
        hold = next(
            (h for h in self._holds if h[0] == method and (h[1] is None or h[1](params))), None
        )
        if hold is not None:
            self._holds.remove(hold)
            self.held.append((method, params))
            await self._released.wait()
        return self._answer(method, params, now, body, failed=not body.get("ok"))

    def _auth_error(self, method: str, token: str) -> str | None:
        """Slack's answer to a missing, wrong-kind or unknown token; None when it is good."""
        if not token:
            return "not_authed"
        app_level = method in APP_LEVEL_METHODS
        if token.startswith("xapp-") != app_level:
            return "not_allowed_token_type"
        if token != (self.socket_mode.app_token if app_level else self.token):
            return "invalid_auth"
        return None

    def _answer(
        self,
        method: str,
        params: Params,
        now: float,
        body: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
        *,
        failed: bool = False,
    ) -> web.Response:
        recorded = {**params, "_failed": True} if failed or not body.get("ok") else params
        self.calls.append(SlackCall(method, recorded, now, status))
        return web.json_response(body, status=status, headers=headers)

    def _next_ts(self) -> str:
        return f"{1_800_000_000 + next(self._ts)}.{next(self._ts) % 1_000_000:06d}"

    # -- methods (response shapes from api.slack.com/methods) -----------------------------

    def _auth_test(self, _params: Params) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake-workspace.slack.com/",
            "team": "Fake Workspace",
            "user": "triagebot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, _params: Params) -> dict[str, Any]:
        return {"ok": True, "url": self.socket_mode.open_url()}

    def _chat_postMessage(self, params: Params) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.outside:
            return {"ok": False, "error": "not_in_channel"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if (refused := content_error(params)) is not None:
            return refused
        ts = self._next_ts()
        message = {
            "type": "message",
            "subtype": "bot_message",
            "text": params.get("text", ""),
            "ts": ts,
            "username": "triagebot",
            "bot_id": BOT_ID,
            "app_id": "A0APP",
            "blocks": params.get("blocks") or [],
        }
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        if isinstance(params.get("metadata"), dict):
            message["metadata"] = params["metadata"]
        self._messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, params: Params) -> dict[str, Any]:
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        message = self._messages.get((channel, ts))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if (refused := content_error(params)) is not None:
            return refused
        message.update(text=params.get("text", ""), blocks=params.get("blocks") or [])
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": {"text": message["text"], "user": BOT_USER_ID, "bot_id": BOT_ID},
        }

    def _chat_delete(self, params: Params) -> dict[str, Any]:
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        if self._messages.pop((channel, ts), None) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel, "ts": ts}

    def _chat_getPermalink(self, params: Params) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        ts = str(params.get("message_ts", ""))
        if not channel or not ts:
            return {"ok": False, "error": "message_not_found"}
        return {
            "ok": True,
            "channel": channel,
            "permalink": (
                f"https://fake-workspace.slack.com/archives/{channel}/p{ts.replace('.', '')}"
            ),
        }

    def _reactions_add(self, params: Params) -> dict[str, Any]:
        key = (str(params.get("channel", "")), str(params.get("timestamp", "")))
        users = self._reactions.setdefault(key, {}).setdefault(str(params.get("name")), set())
        if BOT_USER_ID in users:
            return {"ok": False, "error": "already_reacted"}
        users.add(BOT_USER_ID)
        return {"ok": True}

    def _reactions_remove(self, params: Params) -> dict[str, Any]:
        key = (str(params.get("channel", "")), str(params.get("timestamp", "")))
        users = self._reactions.get(key, {}).get(str(params.get("name")), set())
        if BOT_USER_ID not in users:
            return {"ok": False, "error": "no_reaction"}
        users.discard(BOT_USER_ID)
        return {"ok": True}

    def _users_info(self, params: Params) -> dict[str, Any]:
        user = str(params.get("user", ""))
        if user == BOT_USER_ID:
            return {"ok": True, "user": {"id": user, "name": "triagebot", "is_bot": True}}
        info = self.users.get(user, {"id": user, "name": user.lower(), "is_bot": False})
        return {"ok": True, "user": {"team_id": TEAM_ID, **info, "deleted": False}}

    def _conversations_members(self, params: Params) -> dict[str, Any]:
        """A channel's member ids, paged by ``cursor`` (methods/conversations.members)."""
        channel = str(params.get("channel", ""))
        if not channel or channel in self.missing:
            return {"ok": False, "error": "channel_not_found"}
        people = list(self.members.get(channel, []))
        if channel not in self.outside:
            people.insert(0, BOT_USER_ID)
        start = int(str(params.get("cursor") or "0").removeprefix("offset:") or 0)
        limit = max(1, min(int(params.get("limit") or 100), 999))
        more = start + limit < len(people)
        return {
            "ok": True,
            "members": people[start : start + limit],
            "response_metadata": {"next_cursor": f"offset:{start + limit}" if more else ""},
        }

    def _conversations_info(self, params: Params) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if not channel or channel in self.missing:
            return {"ok": False, "error": "channel_not_found"}
        if channel.startswith("D"):  # a direct message: no name, no membership
            return {
                "ok": True,
                "channel": {"id": channel, "is_im": True, "user": "U0ALICE", "is_open": True},
            }
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": channel.lower(),
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": channel not in self.outside,
                "is_shared": channel in self.shared,
                "is_ext_shared": channel in self.shared,
                "is_pending_ext_shared": False,
                "is_org_shared": False,
            },
        }

    def _conversations_history(self, params: Params) -> dict[str, Any]:
        """Top-level messages newer than ``oldest``, newest first, paged by ``cursor``."""
        channel = str(params.get("channel", ""))
        oldest = float(params.get("oldest") or 0)
        found = [
            m
            for (c, ts), m in self._messages.items()
            if c == channel and float(ts) > oldest and m.get("thread_ts", ts) == ts
        ]
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        return self._page(found, params)

    def _conversations_replies(self, params: Params) -> dict[str, Any]:
        """A thread: its parent, then the replies oldest first, paged by ``cursor``."""
        channel, parent = str(params.get("channel", "")), str(params.get("ts", ""))
        if not channel or not parent:
            return {"ok": False, "error": "thread_not_found"}
        head = self._messages.get((channel, parent), {"type": "message", "ts": parent})
        replies = [
            m
            for (c, _), m in self._messages.items()
            if c == channel and m.get("thread_ts") == parent and m is not head
        ]
        replies.sort(key=lambda m: float(m["ts"]))
        return self._page([head, *replies], params)

    @staticmethod
    def _page(messages: list[Params], params: Params) -> dict[str, Any]:
        start = int(str(params.get("cursor") or "0").removeprefix("offset:") or 0)
        limit = max(1, min(int(params.get("limit") or 100), 999))
        page = messages[start : start + limit]
        if str(params.get("include_all_metadata", "")).lower() not in {"1", "true"}:
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(messages)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": f"offset:{start + limit}" if more else ""},
        }

    def _chat_postEphemeral(self, params: Params) -> dict[str, Any]:
        if not params.get("channel") or not params.get("user"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if (refused := content_error(params)) is not None:
            return refused
        return {"ok": True, "message_ts": self._next_ts()}

    def _usergroups_users_list(self, params: Params) -> dict[str, Any]:
        group = str(params.get("usergroup", ""))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _views_publish(self, params: Params) -> dict[str, Any]:
        user = str(params.get("user_id", ""))
        view = params.get("view")
        if isinstance(view, str):
            with contextlib.suppress(json.JSONDecodeError):
                view = json.loads(view)
        if not user:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        errors = block_errors(view.get("blocks") or [], VIEW_BLOCKS)
        if errors:
            return _refused(errors)
        self.home_views[user] = view
        n = len(self.home_views)
        return {"ok": True, "view": {"id": f"V{n:08d}", "type": "home", **view}}

    # files.getUploadURLExternal -> POST the bytes to upload_url -> files.completeUploadExternal
    # (what files_upload_v2 does; api.slack.com/messaging/files#upload).

    def _files_getUploadURLExternal(self, params: Params) -> dict[str, Any]:
        filename = str(params.get("filename", ""))
        length = str(params.get("length", ""))
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{len(self.uploads) + 1:08d}"
        self.uploads[file_id] = None
        self._file_names[file_id] = (filename, int(length))
        return {
            "ok": True,
            "upload_url": f"http://127.0.0.1:{self.port}/upload/v1/{file_id}",
            "file_id": file_id,
        }

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.uploads:
            return web.Response(status=404, text="not found")
        data = await request.read()
        self.uploads[file_id] = data
        return web.Response(status=200, text=f"OK - {len(data)}")

    def _files_completeUploadExternal(self, params: Params) -> dict[str, Any]:
        files = params.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except json.JSONDecodeError:
                return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        completed = []
        for item in files:
            file_id = str(item.get("id", "")) if isinstance(item, dict) else ""
            if self.uploads.get(file_id) is None:
                return {"ok": False, "error": "file_not_found"}
            name, _length = self._file_names[file_id]
            title = item.get("title") or name
            completed.append({"id": file_id, "title": title})
            self.shared_files.append(
                {
                    "id": file_id,
                    "title": title,
                    "name": name,
                    "channel_id": params.get("channel_id"),
                    "thread_ts": params.get("thread_ts"),
                    "data": self.uploads[file_id],
                }
            )
        return {"ok": True, "files": completed}
