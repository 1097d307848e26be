"""Socket Mode: the real Bolt handler, served as ``run_bot`` serves it, against the fake's socket.

Slack reaches the bot only through the WebSocket that ``apps.connections.open`` hands out
(``tests/fakes/slack_socket_mode.py``); every envelope must come back acknowledged by its id, and
the outcome must be the same as over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from typer.testing import CliRunner

from admin.settings import Settings
from bot.cli import build_app
from bot.config import slack_config
from bot.errors import PermanentSlackError, SlackConfigError
from bot.runtime import Runtime, open_runtime
from bot.server import health, serve
from bot.services import SOCKET_GRACE_SECONDS, Services
from bot.slack_gateway import SlackGateway, create_slack_client
from classifier.taxonomy import Taxonomy
from data.db import corrections as corrections_repo
from data.db import tickets as tickets_repo
from data.db.admin_actions import list_actions
from tests.bot.conftest import SIGNING_SECRET, SUPPORT, TRIAGE
from tests.bot.keyword_classifier import KeywordClassifier
from tests.databases import migrated_sqlite
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.fakes.slack_events import (
    button_payload,
    command_payload,
    event_callback,
    message_event,
    reaction_event,
)
from tests.fakes.slack_socket_mode import FakeSocketMode

cli_app = build_app()

BILLING, TECHNICAL = "C0BILLING", "C0TECHNICAL"

#: Longest a test waits for the bot to start, finish its tickets or stop.
WITHIN = 15.0


def _settings(fake: FakeSlack, db_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": fake.token,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_app_token": fake.socket_mode.app_token,
        "slack_api_url": fake.url,
        "support_channels": (SUPPORT,),
        "triage_channel": TRIAGE,
        "database_url": f"sqlite+aiosqlite:///{db_path}",
        "group_seconds": 0,  # one ticket per message here; tests/bot/test_conversations.py groups
    }
    return Settings(**{**values, **overrides})


class SocketModeBot:
    """The bot served by ``bot.server.serve`` (what ``run_bot`` runs) with SLACK_APP_TOKEN set.

    Its services are built as in the other bot tests (SQLite in the test's folder, the keyword
    classifier); Slack reaches it only over the fake's Socket Mode.
    """

    def __init__(self, fake: FakeSlack, db_path: Path, taxonomy: Taxonomy, **overrides: Any):
        self.fake = fake
        self.socket: FakeSocketMode = fake.socket_mode
        self.taxonomy = taxonomy
        if not db_path.exists():  # the schema copied, not migrated (tests.databases)
            migrated_sqlite(db_path)
        self.settings = _settings(fake, db_path, **overrides)
        self.clock = FakeClock()
        self.runtime: Runtime | None = None
        self._runtime: Any = None
        self._stop = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None
        self._event_ids = itertools.count(1)
        self._ts = itertools.count(1)
        self.calls_at_start = 0

    @property
    def svc(self) -> Services:
        assert self.runtime is not None
        return self.runtime.services

    async def start(self) -> None:
        """Open the runtime, then serve until ``stop``; returns once the socket is open."""
        self._runtime = open_runtime(
            self.settings,
            taxonomy=self.taxonomy,
            clock=self.clock,
            classifier=KeywordClassifier(self.taxonomy),
            workers=4,
        )
        self.runtime = runtime = await self._runtime.__aenter__()
        self._serving = asyncio.create_task(
            serve(runtime.app, runtime.services, self._stop, host="127.0.0.1", port=0)
        )
        connected = asyncio.ensure_future(self.socket.wait_for_connections(1, within=WITHIN))
        done, _ = await asyncio.wait(
            {connected, self._serving}, return_when=asyncio.FIRST_COMPLETED
        )
        if connected not in done:  # serve stopped before connecting: raise its error
            connected.cancel()
            serving, self._serving = self._serving, None
            await serving
        await connected
        self.calls_at_start = len(self.fake.calls)

    async def stop(self) -> None:
        """Stop serving as SIGTERM does (bounded), then close the runtime."""
        self._stop.set()
        try:
            if self._serving is not None:
                async with asyncio.timeout(WITHIN):
                    await self._serving
        finally:
            if self._runtime is not None:
                await self._runtime.__aexit__(None, None, None)
            self._runtime = None

    def new_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """The ``event_callback`` payload for ``event``, with a fresh event id."""
        return event_callback(event, f"Ev{next(self._event_ids):08d}")

    async def drain(self) -> None:
        """Wait (bounded) until the bot has finished every queued ticket."""
        async with asyncio.timeout(WITHIN):
            await self.svc.drain()

    async def ticket(self, text: str) -> str:
        """Post a ticket over the socket, wait for its ack and its routing; returns its ts."""
        ts = self.new_ts()
        envelope_id = await self.socket.deliver(self.event(message_event(SUPPORT, ts, text)))
        await self.socket.wait_for_ack(envelope_id)
        await self.drain()
        return ts

    async def tickets(self) -> dict[str, int]:
        async with self.svc.db.transaction() as conn:
            return await tickets_repo.count_by_status(conn)


@pytest.fixture
async def socket_bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[SocketModeBot]:
    bot = SocketModeBot(fake_slack, tmp_path / "triage.db", taxonomy, admin_users=("U0ADMIN",))
    await bot.start()
    yield bot
    await bot.stop()


async def test_a_ticket_over_the_socket_is_acked_and_routed(socket_bot: SocketModeBot) -> None:
    fake, socket = socket_bot.fake, socket_bot.socket
    assert len(fake.called("apps.connections.open")) == 1  # the start-up check's URL is used
    # Slack does not answer the ticket's first call until released: the ack must not wait.
    fake.hold("chat.getPermalink")
    ts = socket_bot.new_ts()
    text = "I was charged twice, please refund the second payment"
    envelope_id = await socket.deliver(socket_bot.event(message_event(SUPPORT, ts, text)))

    ack = await socket.wait_for_ack(envelope_id)
    assert fake.calls[socket_bot.calls_at_start :] == []  # not one Slack call answered yet
    fake.release()
    await socket_bot.drain()

    assert (ack.connection, ack.payload) == (1, None)  # an event's ack carries no payload
    slack_calls = fake.calls[socket_bot.calls_at_start :]
    assert [c.method for c in slack_calls] == [
        "chat.getPermalink",
        "chat.postMessage",
        "reactions.add",
        "chat.postMessage",
    ]
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    (card,) = fake.posts(BILLING)
    assert "charged twice" in str(card["blocks"])
    assert "<@U0ALICE>" in str(card["blocks"])
    (reply,) = fake.posts(SUPPORT, threads=True)
    assert reply["thread_ts"] == ts
    assert "Routed to *Billing*" in reply["text"]
    assert await socket_bot.tickets() == {"routed": 1}
    assert socket.connections[0].stray == []  # nothing but acks came back


async def test_a_redelivered_envelope_stores_one_ticket_and_posts_one_card(
    socket_bot: SocketModeBot,
) -> None:
    fake, socket = socket_bot.fake, socket_bot.socket
    payload = socket_bot.event(message_event(SUPPORT, socket_bot.new_ts(), "refund please"))
    envelope_id = await socket.deliver(payload)
    # Slack redelivers when an ack is late: here while the first delivery is still being
    # handled, and once more after the ticket was routed.
    await socket.deliver(payload, envelope_id=envelope_id, retry_attempt=1)
    await socket.wait_until(lambda: len(socket.acks_for(envelope_id)) == 2, WITHIN)
    await socket_bot.drain()
    await socket.deliver(payload, envelope_id=envelope_id, retry_attempt=2)
    await socket.wait_until(lambda: len(socket.acks_for(envelope_id)) == 3, WITHIN)
    await socket_bot.drain()

    assert [e["retry_attempt"] for e in socket.sent] == [0, 1, 2]
    assert len(fake.posts(BILLING)) == 1
    assert len(fake.posts(SUPPORT, threads=True)) == 1
    assert len(fake.called("reactions.add")) == 1
    assert await socket_bot.tickets() == {"routed": 1}


async def test_a_reaction_over_the_socket_moves_the_ticket(socket_bot: SocketModeBot) -> None:
    fake, socket = socket_bot.fake, socket_bot.socket
    ts = await socket_bot.ticket("The app crashes with an error when I export")
    (tech_card,) = fake.live_messages(TECHNICAL)

    reaction = reaction_event(True, "U0AGENT", "moneybag", SUPPORT, ts)
    envelope_id = await socket.deliver(socket_bot.event(reaction))
    await socket.wait_for_ack(envelope_id)
    await socket_bot.drain()

    assert fake.live_messages(TECHNICAL) == []
    assert fake.called("chat.delete", channel=TECHNICAL, ts=tech_card["ts"])
    (billing_card,) = fake.live_messages(BILLING)
    assert "chosen by <@U0AGENT>" in str(billing_card["blocks"])
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    async with socket_bot.svc.db.transaction() as conn:
        (correction,) = await corrections_repo.corrections_for(conn, 1)
    assert (correction.user, correction.from_label, correction.to_label, correction.via) == (
        "U0AGENT",
        "Technical",
        "Billing",
        "reaction",
    )


async def test_a_department_button_over_the_socket_routes_the_ticket(
    socket_bot: SocketModeBot,
) -> None:
    fake, socket = socket_bot.fake, socket_bot.socket
    await socket_bot.ticket("hello, something odd happened")
    (card,) = fake.live_messages(TRIAGE)

    press = button_payload("U0AGENT", TRIAGE, card["ts"], "triage_route:Billing", "1")
    envelope_id = await socket.deliver(press, "interactive")
    ack = await socket.wait_for_ack(envelope_id)
    await socket_bot.drain()

    assert socket.sent[-1]["accepts_response_payload"] is False
    assert ack.payload is None
    assert len(fake.posts(BILLING)) == 1
    resolved = fake.message(TRIAGE, card["ts"])
    assert resolved is not None
    assert "Sent to *Billing* by <@U0AGENT>" in str(resolved["blocks"])


async def test_a_slash_command_over_the_socket_is_answered_in_its_ack(
    socket_bot: SocketModeBot,
) -> None:
    socket = socket_bot.socket
    command = command_payload("/retrain", "", "U0MALLORY", SUPPORT)
    envelope_id = await socket.deliver(command, "slash_commands")
    ack = await socket.wait_for_ack(envelope_id)

    # The ephemeral answer travels in the ack, where HTTP would put it in the response body.
    assert socket.sent[-1]["accepts_response_payload"] is True
    assert ack.payload is not None
    assert ack.payload["text"].startswith("Sorry, only triage admins")
    async with socket_bot.svc.db.transaction() as conn:
        actions = await list_actions(conn)
    assert [(a.user, a.action, a.outcome) for a in actions] == [("U0MALLORY", "retrain", "refused")]


async def test_a_disconnect_makes_the_bot_reconnect_and_events_keep_arriving(
    socket_bot: SocketModeBot,
) -> None:
    fake, socket = socket_bot.fake, socket_bot.socket
    first = await socket.disconnect("refresh_requested")

    second = await socket.wait_for_connections(2)
    await socket.wait_until(lambda: not first.open, WITHIN)  # the bot let the old one go
    assert len(fake.called("apps.connections.open")) == 2

    ts = socket_bot.new_ts()
    envelope_id = await socket.deliver(socket_bot.event(message_event(SUPPORT, ts, "refund me")))
    ack = await socket.wait_for_ack(envelope_id)
    await socket_bot.drain()

    assert ack.connection == second.number == 2
    assert len(fake.posts(BILLING)) == 1
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    assert len(socket.connections) == 2


async def test_stopping_closes_the_socket_after_finishing_the_queued_tickets(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    bot = SocketModeBot(fake_slack, tmp_path / "triage.db", taxonomy)
    await bot.start()
    try:
        fake_slack.hold("chat.getPermalink")  # the ticket is being routed when the stop comes
        ts = bot.new_ts()
        envelope_id = await bot.socket.deliver(bot.event(message_event(SUPPORT, ts, "refund")))
        await bot.socket.wait_for_ack(envelope_id)
        stopping = asyncio.create_task(bot.stop())
        await asyncio.sleep(0)  # the stop has begun (its first step sets the stop signal)
        fake_slack.release()
        await stopping
    finally:
        fake_slack.release()
        await bot.stop()
    assert not bot.socket.connections[0].open
    assert len(fake_slack.posts(BILLING)) == 1  # routed before serve returned


async def test_started_and_served_as_run_bot_does(fake_slack: FakeSlack, tmp_path: Path) -> None:
    # The whole start-up path of `triage serve`: settings checked, first model trained,
    # services started, Socket Mode connected; a ticket comes in over the socket.
    settings = _settings(fake_slack, tmp_path / "serve.db", learner="tfidf")
    socket = fake_slack.socket_mode
    stop = asyncio.Event()
    async with open_runtime(settings) as runtime:
        services = runtime.services
        serving = asyncio.create_task(serve(runtime.app, services, stop, host="127.0.0.1", port=0))
        try:
            await socket.wait_for_connections(1, within=WITHIN)
            ts = "1700000001.000100"
            payload = event_callback(message_event(SUPPORT, ts, "I was charged twice"), "Ev1")
            await socket.wait_for_ack(await socket.deliver(payload))
        finally:
            stop.set()
            async with asyncio.timeout(WITHIN):
                await serving
        async with services.db.transaction() as conn:
            counts = await tickets_repo.count_by_status(conn)
            ticket = await tickets_repo.find_ticket_by_message(conn, SUPPORT, ts)
            assert ticket is not None
            prediction = await tickets_repo.latest_prediction(conn, ticket.id)
    assert counts == {"routed": 1}
    assert prediction is not None
    department = services.taxonomy.get(prediction.label)
    assert department is not None
    (card,) = fake_slack.posts(threads=False)
    assert card["channel"] in (department.channel, TRIAGE)
    assert len(fake_slack.posts(SUPPORT, threads=True)) == 1
    assert not socket.connections[0].open


async def test_a_bot_token_as_slack_app_token_stops_start_up(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    settings = _settings(fake_slack, tmp_path / "serve.db", slack_app_token=fake_slack.token)
    with pytest.raises(SlackConfigError) as caught:
        async with open_runtime(settings):
            pass
    message = str(caught.value)
    assert message.startswith("SLACK_APP_TOKEN is not an app-level token")
    assert "xapp-" in message
    assert fake_slack.token not in message
    assert fake_slack.calls == []  # stopped before anything was contacted

    # Slack refuses it too, should it get that far; the hint says what to do.
    good = slack_config(_settings(fake_slack, tmp_path / "serve.db"))
    async with aiohttp.ClientSession() as http:
        gateway = SlackGateway(create_slack_client(good.bot_token, good.api_url, http))
        with pytest.raises(PermanentSlackError) as refused:
            await gateway.open_socket_url(fake_slack.token)
    assert refused.value.error == "not_allowed_token_type"
    assert "SLACK_APP_TOKEN is not an app-level token" in refused.value.hint
    assert fake_slack.socket_mode.connections == []


def test_serve_with_a_bot_token_as_slack_app_token_names_the_setting(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["serve"],
        env={
            "SLACK_BOT_TOKEN": "xoxb-bot",
            "SLACK_APP_TOKEN": "xoxb-pasted-in-the-wrong-place",
            "SLACK_SIGNING_SECRET": "shh",
            "TRIAGE_SUPPORT_CHANNELS": "C1",
            "TRIAGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        },
    )
    assert result.exit_code == 2
    assert "SLACK_APP_TOKEN is not an app-level token" in result.output
    assert "xoxb-pasted-in-the-wrong-place" not in result.output


async def test_a_refused_app_token_stops_start_up_instead_of_retrying_for_ever(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    # slack_sdk's client retries a refused apps.connections.open every ping interval, for
    # ever; start-up must stop with the fix instead.
    bot = SocketModeBot(
        fake_slack, tmp_path / "triage.db", taxonomy, slack_app_token="xapp-1-revoked"
    )
    with pytest.raises(PermanentSlackError) as caught:
        async with asyncio.timeout(WITHIN):
            await bot.start()
    await bot.stop()
    assert caught.value.error == "invalid_auth"
    assert "Slack rejected SLACK_APP_TOKEN" in str(caught.value)
    assert "connections:write" in str(caught.value)
    assert "xapp-1-revoked" not in str(caught.value)
    assert len([c for c in fake_slack.calls if c.method == "apps.connections.open"]) == 1
    assert fake_slack.socket_mode.connections == []


async def test_health_reports_a_socket_that_stays_down(socket_bot: SocketModeBot) -> None:
    """The app token is revoked while the bot runs: the SDK reconnects for ever, and /healthz
    says so once the connection has been down longer than the grace period."""
    report, status = await health(socket_bot.svc, detail=True)
    assert status == 200
    assert report["socket_mode"] == {"connected": True, "down_seconds": 0.0, "ok": True}

    socket_bot.socket.app_token = "xapp-1-A0APP-revoked"  # reconnecting is refused now
    await socket_bot.socket.close()  # Slack drops the connection
    await socket_bot.fake.wait_for(  # the SDK tried to reconnect and was refused
        lambda: any(
            c.method == "apps.connections.open" and not c.ok for c in socket_bot.fake.calls
        ),
        within=WITHIN,
    )
    report, status = await health(socket_bot.svc, detail=True)
    assert report["socket_mode"]["connected"] is False
    assert status == 200  # a reconnect is routine: within the grace period it is still ok
    assert report["socket_mode"]["ok"] is True
    await socket_bot.clock.advance(SOCKET_GRACE_SECONDS)
    report, status = await health(socket_bot.svc, detail=True)
    assert status == 503
    assert report["socket_mode"]["connected"] is False
    assert report["socket_mode"]["ok"] is False
    assert report["ok"] is False
