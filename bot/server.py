"""Serving the app: the HTTP Events API (aiohttp) or Socket Mode, plus ``GET /healthz``.

``run_bot`` is what ``triage serve`` runs: the runtime opened (``bot.runtime``: settings
checked, migrations, auth.test, active model, resume, background tasks), then served until
interrupted, then everything closed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import signal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from admin.settings import Settings
from bot.errors import SlackConfigError
from bot.runtime import open_runtime
from bot.services import Services

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

log = logging.getLogger(__name__)

#: Bolt's default request path for events, commands and interactions.
EVENTS_PATH = "/slack/events"


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def unreadable_body(body: bytes, content_type: str) -> str | None:
    """Why a request body cannot be a Slack request (answered 400, never 500), or None.

    Slack sends UTF-8: JSON (events) or a form whose ``payload`` field may hold JSON
    (interactions); a body that is not UTF-8, JSON that does not parse or is not an object, or
    text with a lone surrogate (``"\\ud800"``, which no later step could encode) is refused.
    """
    try:
        text = body.decode("utf-8")
        source: str | None = text
        if content_type == "application/json" or text.startswith("{"):
            parsed: Any = json.loads(text)
        else:
            fields = dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
            source = fields.get("payload")
            parsed = json.loads(source) if source is not None else fields
        if not isinstance(parsed, dict):
            return "not a JSON object"
        if source is not None and _SURROGATE_ESCAPE.search(source):  # else it cannot hold one
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeError:
        return "not UTF-8 text (or a lone surrogate)"
    except ValueError:
        return "malformed JSON"
    return None


def create_web_app(app: AsyncApp, services: Services) -> web.Application:
    """The aiohttp application: Slack requests at /slack/events, health at /healthz."""

    async def slack_events(request: web.Request) -> web.Response:
        body = await request.read()
        problem = unreadable_body(body, request.content_type)
        if problem is not None:
            log.warning("Refused a request to %s: %s", EVENTS_PATH, problem)
            return web.Response(status=400, text="Bad request")
        bolt_request = AsyncBoltRequest(
            body=body.decode("utf-8"),
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]
        )
        with services.in_flight.serving():  # the desk's Slack side gives way meanwhile
            bolt_response = await app.async_dispatch(bolt_request)
            return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        report, status = await health(services)
        return web.json_response(report, status=status)

    web_app = web.Application(client_max_size=2 * 1024 * 1024)
    web_app.router.add_post(EVENTS_PATH, slack_events)
    web_app.router.add_get("/healthz", healthz)
    return web_app


async def health(services: Services, *, detail: bool = False) -> tuple[dict[str, Any], int]:
    """The health report and its HTTP status (503 when the database or model is not ready, or
    the Socket Mode connection has been down longer than ``SOCKET_GRACE_SECONDS``).

    Cheap, as load balancers call it every few seconds on the public port: one ``SELECT 1``,
    no query over tickets. The public report says only what is up; ``detail`` adds the model,
    the queue and the connection (for in-process callers; ticket figures are for admins, in
    the App Home and ``triage tickets``).
    """
    database_ok = await services.db.ping()
    model = services.model.status()
    ok = database_ok and bool(model["ready"])
    report: dict[str, Any] = {"database": database_ok, "model": bool(model["ready"])}
    if detail:
        report.update(model=model, queue={"pending": services.queue.pending})
    socket = services.socket
    if socket.in_use:  # a revoked app token leaves it reconnecting for ever
        connection = await socket.report()
        report["socket_mode"] = connection if detail else bool(connection["ok"])
        ok = ok and bool(connection["ok"])
    report["ok"] = ok
    return report, 200 if ok else 503


async def connect_socket_mode(app: AsyncApp, services: Services) -> AsyncSocketModeHandler:
    """A Socket Mode handler for ``app``, connected with SLACK_APP_TOKEN; close it when done.

    The token is checked first with one apps.connections.open, whose URL the handler then uses:
    the SDK client retries a refused token every few seconds for ever, so a revoked token or one
    without connections:write would leave start-up hanging; here it raises PermanentSlackError
    (``hint`` names SLACK_APP_TOKEN and the fix).
    """
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    token = services.slack_config.app_token
    if not token:
        raise SlackConfigError("SLACK_APP_TOKEN is not set; Socket Mode needs an app-level token.")
    url = await services.slack.open_socket_url(token)
    handler = AsyncSocketModeHandler(app, token)
    handler.client.wss_uri = url  # the client asks for a URL only when it has none
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
    except BaseException:
        await handler.close_async()  # type: ignore[no-untyped-call]
        raise
    return handler


async def serve(
    app: AsyncApp, services: Services, stop: asyncio.Event, *, host: str, port: int
) -> None:
    """Serve ``app`` until ``stop`` is set, then let queued tickets finish (bounded).

    ``GET /healthz`` on host:port; Slack's requests over Socket Mode when SLACK_APP_TOKEN is set,
    else over HTTP at /slack/events on the same port. Start-up errors (a refused app-level
    token) are raised before anything is served.
    """
    runner = web.AppRunner(create_web_app(app, services), access_log=None)
    await runner.setup()
    socket_handler: AsyncSocketModeHandler | None = None
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        if services.slack_config.app_token:
            socket_handler = await connect_socket_mode(app, services)
            services.socket.client = socket_handler.client
            log.info("Serving over Socket Mode; health on port %d", bound)
        else:
            log.info("Serving the Events API on port %d at %s", bound, EVENTS_PATH)
        await stop.wait()
    finally:
        services.socket.client = None
        if socket_handler is not None:
            await socket_handler.close_async()  # type: ignore[no-untyped-call]
        await runner.cleanup()
    try:
        async with asyncio.timeout(10):
            await services.drain()
    except TimeoutError:
        log.warning("Stopping with tickets unfinished; they resume on the next start")


async def run_bot(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM: Socket Mode if SLACK_APP_TOKEN is set, else HTTP."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_runtime(settings) as runtime:
        # Everything loaded so far (libraries, the model) lives as long as the process: keep it
        # out of the collector's full passes, which otherwise pause the loop under load.
        gc.freeze()
        await serve(
            runtime.app,
            runtime.services,
            stop,
            host="0.0.0.0",  # noqa: S104 - a server
            port=settings.port,
        )
