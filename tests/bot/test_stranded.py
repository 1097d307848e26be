"""Nothing stranded (#10 items 1 and 7): an unexpected error in a run brings the ticket back
after a growing delay; after the bounded attempts it ends ``failed`` with a notice and a Retry
button. Faults are injected from outside the bot's code: a classifier that raises, a database
driver hook that fails one statement. Delays run on a clock the test moves (no sleeping)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from bot.failure_notice import RETRY_TICKET_ACTION
from classifier.protocols import Prediction
from classifier.taxonomy import Taxonomy
from data.db import tickets as tickets_repo
from data.db.admin_actions import list_actions
from data.db.tickets import Ticket
from tests.bot.conftest import SUPPORT, TRIAGE, BotHarness
from tests.bot.keyword_classifier import KeywordClassifier
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.fakes.slack_events import button_payload, message_event

BILLING = "C0BILLING"
ADMIN = "U0ADMIN"
ADMIN_CHANNEL = "C0ADMIN"


class FlakyClassifier(KeywordClassifier):
    """The keyword classifier behind an API that fails its first ``failures`` calls."""

    def __init__(self, taxonomy: Taxonomy, failures: int) -> None:
        super().__init__(taxonomy)
        self.failures = failures

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the model's API is down")
        return await super().predict(texts)


@contextmanager
def failing_statement(prefix: str, times: int = 1) -> Iterator[list[str]]:
    """The database driver fails the next ``times`` statements starting with ``prefix`` with
    OSError (as a lost connection or a full disk would); yields the statements it failed."""
    failed: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if len(failed) < times and statement.lstrip().upper().startswith(prefix.upper()):
            failed.append(statement)
            raise OSError("disk I/O error")

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield failed
    finally:
        event.remove(Engine, "before_cursor_execute", before)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def timed_bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy, clock: FakeClock
) -> AsyncIterator[BotHarness]:
    """A bot whose time moves when the test says; failure notices go to the admin channel."""
    harness = BotHarness(
        fake_slack,
        tmp_path / "triage.db",
        taxonomy,
        clock=clock,
        admin_users=(ADMIN,),
        admin_channel=ADMIN_CHANNEL,
    )
    yield harness
    await harness.stop()


async def _ticket(bot: BotHarness, ticket_id: int = 1) -> Ticket:
    async with bot.svc.db.transaction() as conn:
        return await tickets_repo.get_ticket(conn, ticket_id)


async def _delayed(bot: BotHarness, count: int = 1) -> list[float]:
    """Wait (bounded) until ``count`` tickets wait to run again; their delays."""
    queue = bot.svc.queue
    await bot.fake.wait_for(lambda: len(queue.delayed()) >= count)
    return sorted(queue.delayed().values())


async def _send(bot: BotHarness, text: str) -> str:
    ts = bot.send.new_ts()
    status, _ = await bot.send.event(message_event(SUPPORT, ts, text))
    assert status == 200
    return ts


async def test_a_classifier_that_fails_once_delays_the_ticket_instead_of_stranding_it(
    timed_bot: BotHarness, taxonomy: Taxonomy, clock: FakeClock
) -> None:
    bot = timed_bot
    bot.classifier = FlakyClassifier(taxonomy, failures=1)
    await bot.start()
    ts = await _send(bot, "refund my invoice please")

    assert await _delayed(bot) == [1.0]
    waiting = await _ticket(bot)
    # Counted, and its lease given up: another replica may take it meanwhile.
    assert (waiting.status, waiting.attempts, waiting.lease_until) == ("received", 1, None)
    assert bot.fake.posts() == []

    await clock.advance(1.0)
    await bot.drain()
    assert (await _ticket(bot)).status == "routed"
    assert len(bot.fake.posts(BILLING)) == 1
    assert len(bot.fake.posts(SUPPORT, threads=True)) == 1
    assert bot.fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    assert bot.fake.posts(ADMIN_CHANNEL) == []  # it did not end failed: no notice


async def test_a_database_error_recording_a_card_is_retried_without_posting_it_twice(
    timed_bot: BotHarness, clock: FakeClock
) -> None:
    bot = timed_bot
    await bot.start()
    with failing_statement("INSERT INTO routings") as failed:
        ts = await _send(bot, "refund my invoice please")
        assert await _delayed(bot) == [1.0]
    assert len(failed) == 1
    waiting = await _ticket(bot)
    assert (waiting.status, waiting.attempts, waiting.lease_until) == ("classified", 1, None)
    assert len(bot.fake.posts(BILLING)) == 1  # posted, but not recorded

    await clock.advance(1.0)
    await bot.drain()
    assert (await _ticket(bot)).status == "routed"
    assert len(bot.fake.posts(BILLING)) == 1  # found in Slack and recorded, not posted again
    assert len(bot.fake.posts(SUPPORT, threads=True)) == 1
    assert bot.fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}


async def test_when_the_database_cannot_even_count_the_failure_the_queue_retries(
    timed_bot: BotHarness, clock: FakeClock
) -> None:
    """The run and its bookkeeping both fail: only this process can bring the ticket back."""
    bot = timed_bot
    await bot.start()
    with failing_statement("UPDATE tickets", times=4) as failed:
        await _send(bot, "refund my invoice please")
        # Saving its prediction failed, then counting that: the queue's own backoff.
        assert await _delayed(bot) == [1.0]
        assert (await _ticket(bot)).attempts == 0
        await clock.advance(1.0)
        await bot.fake.wait_for(lambda: len(failed) == 4)  # taking its lease, then counting
        await bot.fake.wait_for(lambda: bot.svc.queue.delayed() == {1: 2.0})
    await clock.advance(2.0)
    await bot.drain()
    assert (await _ticket(bot)).status == "routed"
    assert len(bot.fake.posts(BILLING)) == 1


async def test_a_ticket_that_keeps_failing_ends_failed_with_a_notice_and_a_retry_button(
    timed_bot: BotHarness, taxonomy: Taxonomy, clock: FakeClock
) -> None:
    bot = timed_bot
    flaky = FlakyClassifier(taxonomy, failures=10**6)
    bot.classifier = flaky
    await bot.start()
    ts = await _send(bot, "refund my invoice please")
    attempts = bot.svc.policy.max_attempts
    delays = []
    for _ in range(1, attempts):
        (delay,) = await _delayed(bot)
        delays.append(delay)
        await clock.advance(delay)
    await bot.drain()
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0][: attempts - 1]
    failed = await _ticket(bot)
    assert (failed.status, failed.attempts, failed.lease_until) == ("failed", attempts, None)

    (notice,) = bot.fake.posts(ADMIN_CHANNEL)
    assert notice["text"].startswith(f":warning: Ticket #1 from <#{SUPPORT}> was not routed:")
    assert "ConnectionError" in notice["text"]
    assert "the model's API is down" not in json.dumps(notice)  # no exception text in Slack
    blocks = json.loads(notice["blocks"]) if isinstance(notice["blocks"], str) else notice["blocks"]
    (button,) = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert (button["action_id"], button["value"]) == (RETRY_TICKET_ACTION, "1")
    assert bot.fake.posts(TRIAGE) == []  # one notice, in the admin channel

    # Someone who is not an admin is refused; the ticket stays failed.
    notice_ts = str(bot.fake.live_messages(ADMIN_CHANNEL)[0]["ts"])
    press = button_payload("U0AGENT", ADMIN_CHANNEL, notice_ts, RETRY_TICKET_ACTION, "1")
    assert (await bot.send.interaction(press))[0] == 200
    await bot.fake.wait_for(lambda: len(bot.fake.posts("U0AGENT")) == 1)
    assert (await _ticket(bot)).status == "failed"

    flaky.failures = 0  # the API is back; an admin presses Retry
    press = button_payload(ADMIN, ADMIN_CHANNEL, notice_ts, RETRY_TICKET_ACTION, "1")
    assert (await bot.send.interaction(press))[0] == 200
    await bot.fake.wait_for(lambda: len(bot.fake.posts(SUPPORT, threads=True)) == 1)
    await bot.drain()
    assert (await _ticket(bot)).status == "routed"
    assert bot.fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    assert bot.fake.posts(ADMIN)[0]["text"].startswith("Requeued 1 failed ticket")
    updated = bot.fake.called("chat.update", channel=ADMIN_CHANNEL, ts=notice_ts)
    assert "retried by <@U0ADMIN>" in updated[-1].params["text"]
    async with bot.svc.db.transaction() as conn:
        actions = await list_actions(conn)
    assert [(a.user, a.action, a.outcome) for a in actions[:2]] == [
        (ADMIN, "ticket-retry", "done"),
        ("U0AGENT", "ticket-retry", "refused"),
    ]
