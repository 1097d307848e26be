"""Slack's Socket Mode, faked on the fake Web API's loopback port, for the real SDK client.

Modelled on Slack's "Socket Mode implementation" guide (api.slack.com/apis/connections/
socket-implement), the ``apps.connections.open`` reference and the envelopes in slack_sdk's own
tests (``tests/slack_sdk/socket_mode/mock_socket_mode_server.py``):

* ``apps.connections.open`` takes the app-level token (``xapp-``) and answers a one-off
  WebSocket URL, ``ws://127.0.0.1:<port>/link/?ticket=...&app_id=...``. Each ticket opens one
  connection (the client asks for a new URL whenever it reconnects).
* On connect Slack sends ``hello`` (``num_connections``, ``debug_info``, ``connection_info``).
* It then sends envelopes ``{"envelope_id", "type", "accepts_response_payload", "payload"}``:
  ``events_api`` (payload: the ``event_callback`` body the HTTP Events API would POST, plus
  ``retry_attempt`` and ``retry_reason``), ``interactive`` (payload: the interaction JSON) and
  ``slash_commands`` (payload: the command's fields).
* The app acknowledges each one by sending back ``{"envelope_id": ..., "payload": {...}?}``.
* ``{"type": "disconnect", "reason": "refresh_requested"}`` asks the app to open a new
  connection (a new ``apps.connections.open``); the old one stays open until the app closes it.

Envelopes go to the newest open connection. Nothing is redelivered by itself: a test redelivers
an envelope (``retry_attempt`` 1, ...) explicitly, as Slack would after a missing ack.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = "A0APP"
APP_TOKEN = "xapp-1-A0APP-1-fakeapptoken"

#: How long the ``wait_for_*`` helpers wait before failing the test.
WAIT_SECONDS = 10.0

#: Interaction payload types whose acknowledgement may carry a response.
RESPONDING_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})


@dataclass(frozen=True)
class Ack:
    """One acknowledgement the app sent back."""

    envelope_id: str
    payload: dict[str, Any] | None
    connection: int  # which connection it came on (1 = the first one opened)
    at: float  # time.monotonic()


@dataclass
class Connection:
    """One WebSocket the app opened."""

    number: int
    ticket: str
    socket: web.WebSocketResponse
    opened_at: float
    closed_at: float | None = None
    #: Text frames the app sent that are not acknowledgements (should stay empty).
    stray: list[str] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.closed_at is None and not self.socket.closed


@dataclass
class FakeSocketMode:
    """The WebSocket side of the fake; ``FakeSlack`` serves it and issues its URLs."""

    app_token: str = APP_TOKEN
    app_id: str = APP_ID
    connections: list[Connection] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    #: Every envelope sent, in order.
    sent: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""  # ws://127.0.0.1:<port>, set when the fake Web API starts
    _tickets: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None

    # -- apps.connections.open ------------------------------------------------------------

    def open_url(self) -> str:
        """A fresh one-off WebSocket URL, as apps.connections.open answers it."""
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return f"{self.base_url}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- what a test does -----------------------------------------------------------------

    async def deliver(
        self,
        payload: dict[str, Any],
        kind: str = "events_api",
        *,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Send ``payload`` in an envelope of type ``kind`` on the newest open connection.

        ``kind`` is ``events_api``, ``interactive`` or ``slash_commands``. Give the
        ``envelope_id`` of an earlier envelope with ``retry_attempt`` > 0 to redeliver it, as
        Slack does when an acknowledgement did not come in time. Returns the envelope id.
        """
        connection = self.current()
        envelope_id = envelope_id or f"{uuid.uuid4()}"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            # Slack takes a response payload for slash commands and for the interactions
            # that answer with one (view submissions, options); not for events or buttons.
            "accepts_response_payload": kind == "slash_commands"
            or (kind == "interactive" and payload.get("type") in RESPONDING_INTERACTIONS),
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason or ("timeout" if retry_attempt else "")
        await connection.socket.send_str(json.dumps(envelope))
        self.sent.append(envelope)
        return envelope_id

    async def disconnect(self, reason: str = "refresh_requested") -> Connection:
        """Ask the app to reconnect, as Slack does every few hours; returns the connection."""
        connection = self.current()
        await connection.socket.send_str(
            json.dumps(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
            )
        )
        return connection

    def current(self) -> Connection:
        """The newest open connection (AssertionError when there is none)."""
        for connection in reversed(self.connections):
            if connection.open:
                return connection
        raise AssertionError("the app has no open Socket Mode connection")

    def acks_for(self, envelope_id: str) -> list[Ack]:
        """Every acknowledgement of ``envelope_id``, oldest first."""
        return [a for a in self.acks if a.envelope_id == envelope_id]

    async def wait_for_ack(self, envelope_id: str, within: float = WAIT_SECONDS) -> Ack:
        """The first acknowledgement of ``envelope_id``, waiting at most ``within`` seconds."""
        await self.wait_until(lambda: bool(self.acks_for(envelope_id)), within)
        return self.acks_for(envelope_id)[0]

    async def wait_for_connections(self, count: int, within: float = WAIT_SECONDS) -> Connection:
        """Wait until ``count`` connections were opened and the last one is open."""
        await self.wait_until(
            lambda: len(self.connections) >= count and self.connections[count - 1].open, within
        )
        return self.connections[count - 1]

    async def wait_until(self, predicate: Callable[[], bool], within: float) -> None:
        """Wait (bounded) until ``predicate`` holds; re-checked whenever the fake changes."""
        changed = self._condition()
        try:
            async with asyncio.timeout(within), changed:
                await changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError("timed out waiting for the Socket Mode client") from None

    # -- serving --------------------------------------------------------------------------

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        changed = self._condition()
        async with changed:
            changed.notify_all()

    async def accept(self, request: web.Request) -> web.StreamResponse:
        """GET /link/?ticket=...: the WebSocket the app opens with a URL it was given."""
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            # An unknown or already used ticket: the handshake is refused.
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        self._tickets.discard(ticket)
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        connection = Connection(next(self._ids), ticket, socket, time.monotonic())
        self.connections.append(connection)
        await socket.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": sum(1 for c in self.connections if c.open),
                    "debug_info": {
                        "host": "applink-fake",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        await self._notify()
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                self._receive(connection, message.data)
                await self._notify()
        finally:
            connection.closed_at = time.monotonic()
            await self._notify()
        return socket

    def _receive(self, connection: Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            connection.stray.append(data)
            return
        if not isinstance(message, dict) or not message.get("envelope_id"):
            connection.stray.append(data)
            return
        payload = message.get("payload")
        self.acks.append(
            Ack(
                envelope_id=str(message["envelope_id"]),
                payload=payload if isinstance(payload, dict) else None,
                connection=connection.number,
                at=time.monotonic(),
            )
        )

    async def close(self) -> None:
        """Close every connection still open (the fake is stopping)."""
        for connection in self.connections:
            if not connection.socket.closed:
                await connection.socket.close()
