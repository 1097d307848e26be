"""Serving the app: the HTTP Events API (aiohttp) or Socket Mode, plus ``GET /healthz``.

``run_bot`` is what ``triage serve`` runs: settings checked, services started (migrations,
auth.test, active model, resume), then served until interrupted, then everything closed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from admin.models import learner_context
from admin.settings import Settings
from bot.active_model import ensure_active_model
from bot.admin_desk import AdminDesk
from bot.app import create_app
from bot.config import slack_config
from bot.errors import SlackConfigError
from bot.services import Services, build_services
from classifier.artifacts import load_model
from classifier.taxonomy import load_taxonomy
from data.db import tickets as tickets_repo

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

log = logging.getLogger(__name__)

#: Bolt's default request path for events, commands and interactions.
EVENTS_PATH = "/slack/events"
#: Seconds the Socket Mode connection may be down (Slack asks for routine reconnects) before
#: ``/healthz`` reports the bot unhealthy.
SOCKET_GRACE_SECONDS = 60.0


@dataclass
class SocketWatch:
    """Whether the Socket Mode connection is up, for ``/healthz`` (in ``services.extras``)."""

    client: Any = None  # the SDK's Socket Mode client once connected
    down_since: float | None = None

    async def report(self) -> dict[str, Any]:
        """``connected``, how long it has been down, and ``ok`` (up, or down only briefly)."""
        connected = self.client is not None and bool(await self.client.is_connected())
        now = time.monotonic()
        if connected:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = now
        down = 0.0 if self.down_since is None else now - self.down_since
        return {
            "connected": connected,
            "down_seconds": round(down, 1),
            "ok": connected or down < SOCKET_GRACE_SECONDS,
        }


def create_web_app(app: AsyncApp, services: Services) -> web.Application:
    """The aiohttp application: Slack requests at /slack/events, health at /healthz."""

    async def slack_events(request: web.Request) -> web.Response:
        bolt_response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        report, status = await health(services)
        return web.json_response(report, status=status)

    web_app = web.Application(client_max_size=2 * 1024 * 1024)
    web_app.router.add_post(EVENTS_PATH, slack_events)
    web_app.router.add_get("/healthz", healthz)
    return web_app


async def health(services: Services) -> tuple[dict[str, Any], int]:
    """The health report and its HTTP status (503 when the database or model is not ready, or
    the Socket Mode connection has been down longer than ``SOCKET_GRACE_SECONDS``)."""
    database_ok = await services.db.ping()
    report: dict[str, Any] = {
        "database": {"ok": database_ok},
        "model": services.model.status(),
        "queue": {"pending": services.queue.pending},
    }
    if database_ok:
        async with services.db.transaction() as conn:
            report["tickets"] = await tickets_repo.count_by_status(conn)
    ok = database_ok and bool(report["model"]["ready"])
    socket = services.extras.get("socket_mode")
    if isinstance(socket, SocketWatch):  # a revoked app token leaves it reconnecting for ever
        report["socket_mode"] = await socket.report()
        ok = ok and bool(report["socket_mode"]["ok"])
    report["ok"] = ok
    return report, 200 if ok else 503


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[tuple[AsyncApp, Services]]:
    """Check the settings, start the services with the active model, close them afterwards."""
    config = slack_config(settings)
    taxonomy = load_taxonomy(settings.taxonomy)
    # An active prompted or fine-tuned model needs the OpenAI client to answer.
    context = learner_context(settings, taxonomy)
    services = build_services(
        settings, config, taxonomy, loader=partial(load_model, context=context)
    )
    try:
        await services.db.start()
        await services.slack.connect()  # a bad token stops start-up before any training
        trained = await ensure_active_model(services.db, settings.learner, taxonomy, settings.seed)
        if trained is not None:
            log.info("Trained the first model (registry id %s) on the starter data", trained)
        await services.model.reload()
        await services.start(migrate=False)
        # Everything loaded so far (libraries, the model) lives as long as the process: keep it
        # out of the collector's full passes, which otherwise pause the loop under load.
        gc.freeze()
        yield create_app(settings, services), services
    finally:
        desk = services.extras.get("admin")
        if isinstance(desk, AdminDesk):
            await desk.stop()  # a running retrain stays resumable by the next start
        await services.stop()
        if context.openai is not None:
            await context.openai.aclose()


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
            watch = SocketWatch()
            services.extras["socket_mode"] = watch
            socket_handler = await connect_socket_mode(app, services)
            watch.client = socket_handler.client
            log.info("Serving over Socket Mode; health on port %d", bound)
        else:
            log.info("Serving the Events API on port %d at %s", bound, EVENTS_PATH)
        await stop.wait()
    finally:
        services.extras.pop("socket_mode", None)
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
    async with started(settings) as (app, services):
        await serve(app, services, stop, host="0.0.0.0", port=settings.port)  # noqa: S104 - a server
