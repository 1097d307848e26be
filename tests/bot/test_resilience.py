"""Slack's limits and failures, and restarts: nothing lost, nothing routed twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from classifier.taxonomy import Taxonomy
from data.db import routings as routings_repo
from data.db import tickets as tickets_repo
from tests.bot.conftest import SUPPORT, TRIAGE, BotHarness
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack, SlackCall
from tests.fakes.slack_events import message_event

BILLING = "C0BILLING"


async def _statuses(bot: BotHarness) -> dict[str, int]:
    async with bot.svc.db.transaction() as conn:
        return await tickets_repo.count_by_status(conn)


def _is_reply(params: dict[str, object]) -> bool:
    return bool(params.get("thread_ts"))


@pytest.fixture
async def clocked_bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[BotHarness]:
    """The bot on a FakeClock, with the fake Slack stamping calls on that clock: every wait a
    429 asks for (in the Slack client or in the ticket queue) ends only when the test moves
    time on."""
    clock = FakeClock()
    fake_slack.monotonic = clock.monotonic
    harness = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, clock=clock)
    await harness.start()
    yield harness
    await harness.stop()


def _clock(bot: BotHarness) -> FakeClock:
    assert isinstance(bot.clock, FakeClock)
    return bot.clock


async def _drain_moving_time(bot: BotHarness, step: float = 0.05, within: float = 60.0) -> None:
    """Move the bot's clock on by ``step`` whenever the bot has gone quiet, until every queued
    ticket is finished (``within`` bounds it in real time). Time never jumps past a wait by
    more than ``step``, so a retry comes at most ``step`` after Retry-After allows."""
    clock = _clock(bot)
    drained = asyncio.create_task(bot.svc.drain())
    try:
        async with asyncio.timeout(within):
            while not drained.done():
                await asyncio.wait({drained}, timeout=0.01)
                if not drained.done():
                    await clock.advance(step)
    finally:
        drained.cancel()


async def test_a_429_storm_is_ridden_out_honouring_retry_after(clocked_bot: BotHarness) -> None:
    bot, fake = clocked_bot, clocked_bot.fake
    fake.fail("chat.postMessage", retry_after=1, times=1)
    fake.fail("chat.postMessage", retry_after=0, times=2)
    fake.fail("reactions.add", times=3)
    fake.fail("chat.getPermalink", status=500, error="internal_error", times=2)
    ts = bot.send.new_ts()
    assert (await bot.send.event(message_event(SUPPORT, ts, "refund my invoice please")))[0] == 200
    await _drain_moving_time(bot)

    limited = [c for c in fake.calls if c.answered == 429]
    assert len(limited) == 6
    first_429 = next(c for c in fake.calls if c.method == "chat.postMessage")
    retried = next(c for c in fake.calls if c.method == "chat.postMessage" and c.at > first_429.at)
    assert retried.at - first_429.at >= 1.0  # Retry-After honoured, on the bot's clock
    assert len(fake.posts(BILLING)) == 1
    assert len(fake.posts(SUPPORT, threads=True)) == 1
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    assert await _statuses(bot) == {"routed": 1}


async def test_a_429_waited_out_in_place_sleeps_on_the_runtime_clock(
    clocked_bot: BotHarness,
) -> None:
    """A call made outside a ticket (start-up, admin work) waits out Retry-After itself, on the
    runtime's clock: it is retried once that clock has moved on that far, not before, and
    without waiting for the 30 seconds to pass in real time."""
    bot, fake = clocked_bot, clocked_bot.fake
    fake.fail("chat.getPermalink", retry_after=30, times=1)  # the longest waited in place
    asked = asyncio.create_task(bot.svc.slack.permalink(SUPPORT, "1.000001"))
    await fake.wait_for(lambda: any(c.method == "chat.getPermalink" for c in fake.calls))
    await _clock(bot).advance(29.9)
    assert not asked.done()
    assert [c.answered for c in fake.calls if c.method == "chat.getPermalink"] == [429]
    await _clock(bot).advance(0.2)  # past Retry-After and its jitter (at most 0.05 s)
    async with asyncio.timeout(10):  # one loopback call; the real 30 s would fail here
        assert await asked
    assert [c.answered for c in fake.calls if c.method == "chat.getPermalink"] == [429, 200]


async def test_a_storm_longer_than_the_client_retries_comes_back_later(bot: BotHarness) -> None:
    bot.fake.fail("chat.postMessage", times=5)  # the client gives up after 4 tries
    await bot.ticket("refund my invoice please")
    assert len(bot.fake.posts(BILLING)) == 1
    assert len(bot.fake.posts(SUPPORT, threads=True)) == 1
    assert await _statuses(bot) == {"routed": 1}
    async with bot.svc.db.transaction() as conn:
        assert (await tickets_repo.get_ticket(conn, 1)).attempts == 0  # not a failure


async def test_a_rate_limited_ticket_waits_in_the_queue_not_in_a_worker(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    """With one worker, a ticket told to wait a second does not hold up the next one: the
    next one is routed while the bot's clock stands still."""
    clock = FakeClock()
    fake_slack.monotonic = clock.monotonic
    bot = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, clock=clock)
    await bot.start(workers=1)
    try:
        fake_slack.fail("chat.postMessage", retry_after=1, times=1)  # the first card
        first = await bot.send.event(message_event(SUPPORT, bot.send.new_ts(), "refund please"))
        second = await bot.send.event(message_event(SUPPORT, bot.send.new_ts(), "app crashes"))
        assert first[0] == second[0] == 200

        def posted(channel: str) -> list[SlackCall]:
            return [
                c
                for c in fake_slack.calls
                if c.method == "chat.postMessage"
                and c.params.get("channel") == channel
                and c.answered == 200
            ]

        await fake_slack.wait_for(lambda: len(posted("C0TECHNICAL")) == 1)
        assert posted(BILLING) == []  # still waiting out Retry-After, in the queue
        limited = next(c for c in fake_slack.calls if c.answered == 429)
        assert posted("C0TECHNICAL")[0].at == limited.at  # no time had to pass for it
        await _drain_moving_time(bot)
        assert len(posted(BILLING)) == 1
        assert posted(BILLING)[0].at - limited.at >= 1.0  # Retry-After honoured
        assert await _statuses(bot) == {"routed": 2}
        async with bot.svc.db.transaction() as conn:
            assert (await tickets_repo.get_ticket(conn, 1)).attempts == 0
    finally:
        await bot.stop()


async def test_a_channel_the_bot_is_not_in_is_logged_once_with_the_fix(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    bot.fake.fail(
        "chat.postMessage",
        error="not_in_channel",
        times=None,
        when=lambda p: p.get("channel") == BILLING,
    )
    with caplog.at_level(logging.ERROR, logger="bot.slack_gateway"):
        await bot.ticket("refund my invoice please")
        await bot.ticket("another refund, the invoice is wrong")
    hints = [r.getMessage() for r in caplog.records if "not_in_channel" in r.getMessage()]
    assert len(hints) == 1
    assert "/invite @bot in that channel" in hints[0]
    assert f"<#{BILLING}>" in hints[0]
    assert await _statuses(bot) == {"failed": 2}
    assert bot.svc.slack_config.bot_token not in caplog.text


async def test_a_restart_between_storing_and_routing_routes_once(bot: BotHarness) -> None:
    await bot.restart(workers=0)  # stored and acknowledged, but no worker to route it
    ts = bot.send.new_ts()
    status, _ = await bot.send.event(message_event(SUPPORT, ts, "refund my invoice"))
    assert status == 200
    await bot.svc.inbox.drain()  # placed in its conversation after the acknowledgement
    assert await _statuses(bot) == {"received": 1}
    assert bot.fake.posts() == []

    await bot.restart()
    await bot.drain()
    assert len(bot.fake.posts(BILLING)) == 1
    assert len(bot.fake.posts(SUPPORT, threads=True)) == 1
    assert await _statuses(bot) == {"routed": 1}

    await bot.restart()  # and once more: nothing left to do
    await bot.drain()
    assert len(bot.fake.posts(BILLING)) == 1


async def test_a_crash_mid_routing_resumes_without_repeating_what_was_done(
    bot: BotHarness,
) -> None:
    fake = bot.fake
    fake.fail(
        "chat.postMessage", status=503, error="service_unavailable", times=None, when=_is_reply
    )
    ts = bot.send.new_ts()
    await bot.send.event(message_event(SUPPORT, ts, "refund my invoice"))
    await fake.wait_for(lambda: any(c.answered == 503 for c in fake.calls))
    await fake.wait_for(lambda: bot.svc.queue.pending == 1 and not bot.svc.queue._running)
    await bot.stop()  # the card and the tag are posted; the thread reply is not
    assert len(fake.posts(BILLING)) == 1

    fake.clear_failures()
    await bot.start()
    await bot.drain()
    assert len(fake.posts(BILLING)) == 1  # not posted again
    assert len(fake.called("reactions.add")) == 1
    assert len(fake.posts(SUPPORT, threads=True)) == 1
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    async with bot.svc.db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"routed": 1}


async def test_start_up_names_each_channel_the_bot_is_not_in(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.outside.update({BILLING, TRIAGE})
    harness = BotHarness(fake_slack, tmp_path / "c.db", taxonomy)
    with caplog.at_level(logging.ERROR, logger="bot.services"):
        await harness.start()
    try:
        assert sorted(await harness.svc.check_channels()) == sorted([BILLING, TRIAGE])
        messages = [r.getMessage() for r in caplog.records]
        assert any(
            "#c0billing (C0BILLING), #c0triage (C0TRIAGE). Invite it with /invite @bot" in m
            for m in messages
        )
        assert not any("C0TECHNICAL" in m for m in messages)
        await harness.ticket("refund my invoice")  # a real post there fails the same way
        async with harness.svc.db.transaction() as conn:
            assert await tickets_repo.count_by_status(conn) == {"failed": 1}
    finally:
        await harness.stop()


def _is_card(params: dict[str, object]) -> bool:
    return params.get("channel") == BILLING


async def test_a_post_whose_answer_was_lost_is_found_not_posted_again(bot: BotHarness) -> None:
    """Slack posted the card but the answer was a 500: the retry finds it instead of reposting."""
    fake = bot.fake
    fake.fail("chat.postMessage", status=500, error="internal_error", done=True, when=_is_card)
    await bot.ticket("refund my invoice please")
    await bot.drain()
    assert len(fake.live_messages(BILLING)) == 1  # the card that was posted, once
    assert len(fake.called("conversations.history", channel=BILLING)) == 1
    async with bot.svc.db.transaction() as conn:
        [card] = [r for r in await routings_repo.routings_for(conn, 1) if r.kind == "card"]
        assert card.ts == fake.live_messages(BILLING)[0]["ts"]
        assert await tickets_repo.count_by_status(conn) == {"routed": 1}
    assert len(fake.posts(SUPPORT, threads=True)) == 1


async def test_a_stop_between_a_post_and_its_record_does_not_post_twice(
    bot: BotHarness,
) -> None:
    """The process stops after Slack took the card, before it was recorded: after the restart
    the card is found in the channel by its metadata and recorded, not posted again."""
    fake = bot.fake
    fake.hold("chat.postMessage", when=_is_card)  # posted, but the answer never comes back
    ts = bot.send.new_ts()
    await bot.send.event(message_event(SUPPORT, ts, "refund my invoice"))
    await fake.wait_for(lambda: len(fake.live_messages(BILLING)) == 1)
    await bot.stop()  # the process is killed while it waits for Slack's answer
    fake.release()
    assert len(fake.live_messages(BILLING)) == 1
    assert not fake.called("conversations.history")  # a normal run does not look

    await bot.start()
    await bot.drain()
    assert len(fake.live_messages(BILLING)) == 1  # found, not posted again
    assert len(fake.called("conversations.history", channel=BILLING)) == 1
    assert len(fake.posts(SUPPORT, threads=True)) == 1
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    async with bot.svc.db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"routed": 1}
