"""A ticket Slack refused is retried by an admin and routed exactly once: by a running bot, by
a bot started later, with two replicas on one database, and when a post of the failed run
reached Slack without being recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from admin.cli import build_app
from admin.tickets import retry_tickets
from bot.requeue import POLL_SECONDS
from classifier.taxonomy import Taxonomy
from data.db import tickets as tickets_repo
from data.db.database import Database
from tests.bot.conftest import SUPPORT, BotHarness
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.fakes.slack_events import message_event

app = build_app()

BILLING = "C0BILLING"
REFUND = "refund my invoice please"


def refuse_billing(fake: FakeSlack) -> None:
    """Slack answers not_in_channel to every post in #billing (the bot was not invited)."""
    fake.fail(
        "chat.postMessage",
        error="not_in_channel",
        times=None,
        when=lambda params: params.get("channel") == BILLING,
    )


def _is_card(params: dict[str, object]) -> bool:
    return params.get("channel") == BILLING


async def triage(*args: str) -> Result:
    """Run ``triage`` as an admin would, beside the running bot (its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def statuses(bot: BotHarness) -> dict[str, int]:
    async with bot.svc.db.transaction() as conn:
        return await tickets_repo.count_by_status(conn)


def routed_once(fake: FakeSlack, ts: str) -> None:
    """The ticket has exactly one card, one tag and one thread reply."""
    assert len(fake.posts(BILLING)) == 1
    assert len(fake.posts(SUPPORT, threads=True)) == 1
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}


async def look(*bots: BotHarness) -> None:
    """Move the bots' shared clock on by one requeue interval: each watcher looks once."""
    clock = bots[0].clock
    assert isinstance(clock, FakeClock)
    await clock.wait_for_sleepers(len(bots))  # every watcher waits for its next look
    await clock.advance(POLL_SECONDS)
    for bot in bots:
        await bot.drain()


@pytest.fixture
async def bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, clock=FakeClock())
    monkeypatch.setenv("TRIAGE_DATABASE_URL", harness.settings.database_url)
    await harness.start()
    yield harness
    await harness.stop()


async def test_a_refused_ticket_retried_from_the_terminal_is_routed_once(bot: BotHarness) -> None:
    fake = bot.fake
    refuse_billing(fake)
    ts = await bot.ticket(REFUND)
    assert await statuses(bot) == {"failed": 1}
    assert fake.posts(BILLING) == []
    assert fake.reactions_on(SUPPORT, ts) == {}

    listed = await triage("tickets", "list", "--status", "failed", "--json")
    assert '"label": "Billing"' in listed.stdout

    fake.clear_failures()  # the admin invited the bot to #billing
    result = await triage("tickets", "retry", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Requeued 1 ticket: #1.")

    # The running bot claims it on its next look and routes it.
    await look(bot)
    await fake.wait_for(lambda: len(fake.posts(SUPPORT, threads=True)) == 1, within=10)
    await bot.drain()
    routed_once(fake, ts)
    assert await statuses(bot) == {"routed": 1}

    # Nothing more: more looks, a second retry (refused: it is routed), a restart.
    again = await triage("tickets", "retry", "1")
    assert again.exit_code == 1
    assert "#1 not requeued: it is routed, not failed." in again.stderr
    for _ in range(5):
        await look(bot)
    await bot.restart()
    await bot.drain()
    routed_once(fake, ts)


async def test_tickets_requeued_while_no_bot_runs_are_routed_at_the_next_start(
    bot: BotHarness,
) -> None:
    fake = bot.fake
    refuse_billing(fake)
    first = await bot.ticket(REFUND)
    second = await bot.ticket("another refund, the invoice is wrong")
    assert await statuses(bot) == {"failed": 2}
    await bot.stop()

    result = await triage("tickets", "retry", "--failed")
    assert result.stdout.startswith("Requeued 2 tickets: #1, #2.")
    fake.clear_failures()
    await bot.start()
    await bot.drain()  # claimed and queued as the bot starts
    assert len(fake.posts(BILLING)) == 2
    for ts in (first, second):
        assert len(fake.reactions_on(SUPPORT, ts)) == 1
    assert await statuses(bot) == {"routed": 2}


async def test_with_two_replicas_each_requeued_ticket_is_routed_by_one(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    clock = FakeClock()  # one time for both replicas
    replicas = [
        BotHarness(fake_slack, tmp_path / "shared.db", taxonomy, clock=clock, owner=f"r{n}")
        for n in range(2)
    ]
    for replica in replicas:
        await replica.start()
    try:
        refuse_billing(fake_slack)
        # The load balancer spreads the tickets over both replicas.
        stamps = [
            await replicas[n % 2].ticket(f"refund {n} for my invoice", ts=f"17000000{n}.000100")
            for n in range(6)
        ]
        assert await statuses(replicas[0]) == {"failed": 6}
        fake_slack.clear_failures()

        outcome = await retry_tickets(replicas[0].svc.db, None, "U0ADMIN")
        assert len(outcome.requeued) == 6
        await look(*replicas)
        await fake_slack.wait_for(lambda: len(fake_slack.posts(BILLING)) == 6, within=10)
        for replica in replicas:
            await replica.drain()
        for _ in range(10):  # ten more looks by each replica: nothing is claimed again
            await look(*replicas)
        for replica in replicas:
            await replica.drain()
        replies = fake_slack.posts(SUPPORT, threads=True)
        for ts in stamps:
            assert sum(reply["thread_ts"] == ts for reply in replies) == 1
            assert fake_slack.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
        assert len(fake_slack.posts(BILLING)) == 6
        assert len(fake_slack.called("reactions.add")) == 6
        assert await statuses(replicas[1]) == {"routed": 6}
    finally:
        for replica in replicas:
            await replica.stop()


async def test_a_retried_ticket_whose_card_reached_slack_unrecorded_is_not_posted_twice(
    bot: BotHarness,
) -> None:
    """The card reached Slack but its answer was lost, and the process that gave up on the
    ticket is gone: the retry finds the card by its metadata instead of posting it again."""
    fake = bot.fake
    fake.fail("chat.postMessage", status=500, error="internal_error", done=True, when=_is_card)
    ts = bot.send.new_ts()
    await bot.send.event(message_event(SUPPORT, ts, REFUND))
    await fake.wait_for(lambda: any(c.answered == 500 for c in fake.calls))
    await fake.wait_for(lambda: bot.svc.queue.pending == 1 and not bot.svc.queue._running)
    await bot.stop()  # the card is in Slack, unrecorded; the retry was only in memory
    db = Database(bot.settings.database_url)
    async with db.transaction() as conn:
        # What that process would have written after its last attempt.
        await tickets_repo.set_status(conn, 1, tickets_repo.FAILED)
    await db.close()
    assert len(fake.live_messages(BILLING)) == 1

    await bot.start()
    await bot.drain()
    assert await statuses(bot) == {"failed": 1}  # a failed ticket is not resumed by itself
    result = await triage("tickets", "retry", "1")
    assert result.exit_code == 0, result.output
    await look(bot)
    await fake.wait_for(lambda: len(fake.posts(SUPPORT, threads=True)) == 1, within=10)
    await bot.drain()
    assert len(fake.live_messages(BILLING)) == 1  # found, not posted again
    assert len(fake.called("conversations.history", channel=BILLING)) == 1
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    assert await statuses(bot) == {"routed": 1}
