"""The acknowledgement stores the raw message; it is placed in its conversation after it.

What a process acknowledged is never lost: a message left unplaced by a stop (the process
died right after the acknowledgement) is placed on the next start, or by a live replica once
it is stale; and a message Slack delivers again, before or after it was placed, is one ticket.
"""

from __future__ import annotations

from pathlib import Path

from bot.inbox import STALE_SECONDS, SWEEP_SECONDS
from classifier.taxonomy import Taxonomy
from data.db import inbox as inbox_repo
from data.db import tickets as tickets_repo
from data.db.database import Database, utcnow
from data.db.inbox import Incoming
from tests.bot.conftest import SUPPORT, BotHarness
from tests.bot.test_conversations import all_tickets
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_events import message_event

BILLING = "C0BILLING"


async def acknowledged(db_path: Path, ts: str, owner: str, text: str) -> None:
    """What the acknowledgement of a message event stored, by a process that then stopped."""
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    await db.start()
    try:
        async with db.transaction() as conn:
            await inbox_repo.receive(
                conn,
                Incoming(
                    workspace="T0TEST",
                    channel=SUPPORT,
                    ts=ts,
                    user="U0ALICE",
                    text=text,
                    received_at=utcnow(),
                    owner=owner,
                ),
            )
    finally:
        await db.close()


async def test_a_message_acknowledged_before_a_stop_is_placed_and_routed_on_the_next_start(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    bot = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy)
    await bot.start()
    await bot.stop()
    await acknowledged(bot.db_path, "1700000000.000100", "a-stopped-process", "my invoice is wrong")

    await bot.start()
    try:
        await bot.drain()
        (ticket,) = await all_tickets(bot)
        assert (ticket.ts, ticket.status) == ("1700000000.000100", tickets_repo.ROUTED)
        assert len(fake_slack.posts(BILLING)) == 1
        async with bot.svc.db.transaction() as conn:
            assert await inbox_repo.count_waiting(conn) == 0
    finally:
        await bot.stop()


async def test_a_live_replica_places_what_a_stopped_one_acknowledged_once_it_is_stale(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    clock = FakeClock()
    bot = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, clock=clock)
    await bot.start()
    try:
        # Another replica acknowledged it and died; this one started before that.
        await acknowledged(bot.db_path, "1700000000.000200", "replica-2", "my invoice is wrong")
        await clock.advance_and_settle(SWEEP_SECONDS, "inbox")  # a sweep at the new time
        await bot.drain()
        assert await all_tickets(bot) == []  # not stale yet: replica-2 may be placing it
        await clock.advance_and_settle(STALE_SECONDS, "inbox")
        await bot.drain()
        assert len(fake_slack.posts(BILLING)) == 1
        (ticket,) = await all_tickets(bot)
        assert ticket.status == tickets_repo.ROUTED
    finally:
        await bot.stop()


async def test_a_message_delivered_again_before_and_after_it_was_placed_is_one_ticket(
    bot: BotHarness,
) -> None:
    event = message_event(SUPPORT, bot.send.new_ts(), "my invoice is wrong")
    statuses = [(await bot.send.event(event))[0] for _ in range(2)]  # Slack retries at once
    await bot.drain()
    statuses.append((await bot.send.event(event))[0])  # ... and later
    await bot.drain()
    assert statuses == [200, 200, 200]
    (ticket,) = await all_tickets(bot)
    assert ticket.status == tickets_repo.ROUTED
    assert len(bot.fake.posts(BILLING)) == 1
    async with bot.svc.db.transaction() as conn:
        assert await inbox_repo.count_waiting(conn) == 0
