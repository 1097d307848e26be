"""The bot under test: the real AsyncApp served over HTTP on loopback, a fake Slack behind it,
real SQLite in the test's temporary folder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from admin.context import AdminContext
from admin.settings import Settings
from bot.routing import RequestCheck
from bot.runtime import Runtime, open_runtime
from bot.server import EVENTS_PATH, create_web_app
from bot.services import Intervals, Services, routing_policy
from classifier.protocols import Classifier, Learner
from classifier.taxonomy import Taxonomy
from data.clock import Clock
from tests.admin.conftest import (
    STARTER_TEST,
    STARTER_TRAIN,
    learner_factory,
    write_jsonl,
)
from tests.admin.keyword_learner import load_test_model
from tests.bot.keyword_classifier import KeywordClassifier
from tests.databases import migrated_sqlite, sqlite_threads_finished
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_events import SlackSender, message_event

SIGNING_SECRET = "test-signing-secret"
SUPPORT = "C0SUPPORT"
TRIAGE = "C0TRIAGE"
#: People the tests' fake Slack has in the triage channel, so they are agents who may correct.
AGENTS = ("U0AGENT", "U0BOSS")


class BotHarness:
    """Starts, stops and restarts the bot over one database; sends it signed requests."""

    def __init__(
        self,
        fake: FakeSlack,
        db_path: Path,
        taxonomy: Taxonomy,
        *,
        owner: str = "",
        lease_seconds: float | None = None,
        clock: Clock | None = None,
        intervals: Intervals | None = None,
        learners: dict[str, Learner] | None = None,
        is_request: RequestCheck | None = None,
        **overrides: Any,
    ) -> None:
        """``owner`` and ``lease_seconds``: this replica's name in ticket leases, and how long
        they last (the tests run every replica in one process, so give each its own name).
        ``clock``: the runtime's clock (tests that wait for time pass a FakeClock and advance
        it). ``learners``: the admin jobs train these small test learners (by name) on small
        starter files, instead of the production ones."""
        self.fake = fake
        fake.members.setdefault(TRIAGE, list(AGENTS))
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.taxonomy = taxonomy
        self.clock = clock
        self.intervals = intervals
        self.learners = learners
        self.is_request = is_request
        self.db_path = db_path
        if not db_path.exists():  # a new bot's database: the schema copied, not migrated
            migrated_sqlite(db_path)
        self.settings = Settings(
            slack_bot_token=fake.token,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=fake.url,
            support_channels=(SUPPORT,),
            triage_channel=TRIAGE,
            database_url=f"sqlite+aiosqlite:///{db_path}",
            # Automatic retrains would train real models in the background of every test
            # that corrects five tickets; tests/bot/test_auto_retrain.py turns them on.
            # Grouping (TRIAGE_GROUP_SECONDS) would hold each test's tickets for two minutes
            # of real time; tests/bot/test_conversations.py turns it on with a FakeClock.
            **{"auto_retrain": False, "group_seconds": 0, **overrides},
        )
        self.classifier: Classifier = KeywordClassifier(taxonomy)
        self.runtime: Runtime | None = None
        self._stack: AsyncExitStack | None = None
        self.sender: SlackSender | None = None
        self.session: aiohttp.ClientSession | None = None

    @property
    def services(self) -> Services | None:
        return self.runtime.services if self.runtime is not None else None

    @property
    def svc(self) -> Services:
        assert self.runtime is not None
        return self.runtime.services

    @property
    def send(self) -> SlackSender:
        assert self.sender is not None
        return self.sender

    def _admin_context(self, ctx: AdminContext) -> AdminContext:
        """The admin jobs with the test learners and small starter files."""
        if self.learners is None:
            return ctx
        folder = self.db_path.parent
        return replace(
            ctx,
            learners=learner_factory(self.learners),
            load_model=load_test_model,
            baseline=lambda: None,
            generate=None,
            train_out_of_process=None,
            starter_train=(write_jsonl(folder / "train.jsonl", STARTER_TRAIN),),
            starter_test=(write_jsonl(folder / "test.jsonl", STARTER_TEST),),
            poll_seconds=0.02,
        )

    async def start(self, workers: int = 4) -> None:
        policy = routing_policy(self.settings)
        if self.lease_seconds is not None:
            policy = replace(policy, lease_seconds=self.lease_seconds)
        stack = AsyncExitStack()
        try:
            runtime = await stack.enter_async_context(
                open_runtime(
                    self.settings,
                    taxonomy=self.taxonomy,
                    clock=self.clock,
                    classifier=self.classifier,
                    admin=self._admin_context,
                    intervals=self.intervals,
                    workers=workers,
                    owner=self.owner,
                    policy=policy,
                    is_request=self.is_request,
                )
            )
            runner = web.AppRunner(create_web_app(runtime.app, runtime.services))
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            session = await stack.enter_async_context(aiohttp.ClientSession())
        except BaseException:
            await stack.aclose()
            raise
        self.runtime, self._stack, self.session = runtime, stack, session
        self.calls_at_start = len(self.fake.calls)
        self.base_url = f"http://127.0.0.1:{port}"
        self.sender = SlackSender(f"{self.base_url}{EVENTS_PATH}", SIGNING_SECRET, session)

    def calls_since_start(self) -> list[str]:
        """Methods the bot called on Slack since it finished starting, in order."""
        return [c.method for c in self.fake.calls[self.calls_at_start :]]

    async def stop(self) -> None:
        """Stop as a crash would: background tasks cancelled, nothing drained."""
        if self._stack is not None:
            await self._stack.aclose()
            await sqlite_threads_finished()
        self.runtime = self._stack = self.sender = self.session = None

    async def restart(self, workers: int = 4) -> None:
        await self.stop()
        await self.start(workers)

    async def drain(self, seconds: float = 60.0) -> None:
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
        fake.members[TRIAGE] = list(AGENTS)
        yield fake


@pytest.fixture
async def bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy)
    await harness.start()
    yield harness
    await harness.stop()
