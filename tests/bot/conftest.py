"""The bot under test: the real AsyncApp served over HTTP on loopback, a fake Slack behind it,
real SQLite in the test's temporary folder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from admin.settings import Settings
from bot.admin_desk import AdminDesk
from bot.app import create_app
from bot.config import slack_config
from bot.requeue import POLL_SECONDS
from bot.server import EVENTS_PATH, create_web_app
from bot.services import Services, build_services, routing_policy
from classifier.model import Classifier
from classifier.taxonomy import Taxonomy
from tests.bot.keyword_classifier import KeywordClassifier
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_events import SlackSender, message_event

SIGNING_SECRET = "test-signing-secret"
SUPPORT = "C0SUPPORT"
TRIAGE = "C0TRIAGE"


class BotHarness:
    """Starts, stops and restarts the bot over one database; sends it signed requests."""

    def __init__(
        self,
        fake: FakeSlack,
        db_path: Path,
        taxonomy: Taxonomy,
        *,
        requeue_interval: float = POLL_SECONDS,
        owner: str = "",
        lease_seconds: float | None = None,
        **overrides: Any,
    ) -> None:
        """``owner`` and ``lease_seconds``: this replica's name in ticket leases, and how long
        they last (the tests run every replica in one process, so give each its own name)."""
        self.fake = fake
        self.requeue_interval = requeue_interval
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.taxonomy = taxonomy
        self.settings = Settings(
            slack_bot_token=fake.token,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=fake.url,
            support_channels=(SUPPORT,),
            triage_channel=TRIAGE,
            database_url=f"sqlite+aiosqlite:///{db_path}",
            **overrides,
        )
        self.classifier: Classifier = KeywordClassifier(taxonomy)
        self.services: Services | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.sender: SlackSender | None = None

    @property
    def svc(self) -> Services:
        assert self.services is not None
        return self.services

    @property
    def send(self) -> SlackSender:
        assert self.sender is not None
        return self.sender

    async def start(self, workers: int = 4) -> None:
        policy = routing_policy(self.settings)
        if self.lease_seconds is not None:
            policy = replace(policy, lease_seconds=self.lease_seconds)
        services = build_services(
            self.settings,
            slack_config(self.settings),
            self.taxonomy,
            workers=workers,
            requeue_interval=self.requeue_interval,
            owner=self.owner,
            policy=policy,
        )
        services.model.use(self.classifier)
        await services.start()
        runner = web.AppRunner(create_web_app(create_app(self.settings, services), services))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.services, self._runner = services, runner
        self.calls_at_start = len(self.fake.calls)
        self._session = aiohttp.ClientSession()
        self.base_url = f"http://127.0.0.1:{port}"
        self.sender = SlackSender(f"{self.base_url}{EVENTS_PATH}", SIGNING_SECRET, self._session)

    def calls_since_start(self) -> list[str]:
        """Methods the bot called on Slack since it finished starting, in order."""
        return [c.method for c in self.fake.calls[self.calls_at_start :]]

    async def stop(self) -> None:
        """Stop as a crash would: workers cancelled, nothing drained."""
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.services is not None:
            desk = self.services.extras.get("admin")
            if isinstance(desk, AdminDesk):  # as `started` does: its poller uses the database
                await desk.stop()
            await self.services.stop()
        self.services = self._runner = self._session = None

    async def restart(self, workers: int = 4) -> None:
        await self.stop()
        await self.start(workers)

    async def drain(self, seconds: float = 15.0) -> None:
        """Wait (bounded) until the bot has finished every queued ticket."""
        async with asyncio.timeout(seconds):
            await self.svc.drain()

    async def ticket(self, text: str, user: str = "U0ALICE", ts: str | None = None) -> str:
        """Post a ticket in the support channel, wait until handled; returns its ts."""
        ts = ts or self.send.new_ts()
        status, _ = await self.send.event(message_event(SUPPORT, ts, text, user))
        assert status == 200
        await self.drain()
        return ts


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy)
    await harness.start()
    yield harness
    await harness.stop()
