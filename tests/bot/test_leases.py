"""Several replicas on one database: one process at a time routes a ticket (leases)."""

from __future__ import annotations

from pathlib import Path

from classifier.taxonomy import Taxonomy
from data.db import tickets as tickets_repo
from tests.bot.conftest import SUPPORT, BotHarness
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_events import message_event

BILLING = "C0BILLING"


async def _statuses(bot: BotHarness) -> dict[str, int]:
    async with bot.svc.db.transaction() as conn:
        return await tickets_repo.count_by_status(conn)


async def test_a_replica_starting_while_another_routes_a_ticket_leaves_it_alone(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    """A rolling deploy: B starts (and resumes unfinished tickets) while A is routing one."""
    a = BotHarness(fake_slack, tmp_path / "shared.db", taxonomy, owner="a")
    b = BotHarness(fake_slack, tmp_path / "shared.db", taxonomy, owner="b")
    await a.start()
    await b.start()
    try:
        fake_slack.latency = 0.3  # every Slack call takes a while: A is mid-routing for long
        await a.send.event(message_event(SUPPORT, a.send.new_ts(), "refund my invoice please"))
        await fake_slack.wait_for(lambda: bool(fake_slack.calls[a.calls_at_start :]))
        assert await b.svc.resume() == 0  # what B does on start: this ticket is A's
        assert b.svc.queue.pending == 0
        b.svc.queue.submit(1)  # as a correction reaching B would: B waits for A's lease
        await a.drain()
        fake_slack.latency = 0.0
        await b.drain()  # B's run came after A's: nothing left to do
        assert len(fake_slack.live_messages(BILLING)) == 1
        assert len(fake_slack.posts(SUPPORT, threads=True)) == 1
        assert await _statuses(a) == {"routed": 1}
    finally:
        await b.stop()
        await a.stop()


async def test_the_tickets_of_a_replica_that_died_are_taken_over_once_its_lease_ran_out(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    a = BotHarness(fake_slack, tmp_path / "shared.db", taxonomy, owner="a", lease_seconds=0.8)
    b = BotHarness(fake_slack, tmp_path / "shared.db", taxonomy, owner="b", lease_seconds=0.8)
    await a.start()
    await b.start()
    try:
        # A cannot post the card (Slack answers 500): its ticket waits to be retried.
        fake_slack.fail(
            "chat.postMessage",
            status=500,
            error="internal_error",
            times=None,
            when=lambda params: params.get("channel") == BILLING,
        )
        await a.send.event(message_event(SUPPORT, a.send.new_ts(), "refund my invoice please"))
        await fake_slack.wait_for(lambda: any(c.answered == 500 for c in fake_slack.calls))
        # A dies without giving anything up (no release): its workers just stop.
        assert a.runtime is not None
        await a.runtime.supervisor.stop("ticket-workers", "requeue-watcher")
        async with a.svc.db.transaction() as conn:
            [ticket_id] = await tickets_repo.unfinished_tickets(conn)
            assert (await tickets_repo.get_ticket(conn, ticket_id)).owner == "a"
        fake_slack.clear_failures()
        # B looks for abandoned tickets every lease / 4 and takes this one once A's lease ran out.
        await fake_slack.wait_for(lambda: len(fake_slack.posts(SUPPORT, threads=True)) == 1)
        await b.drain()
        assert await _statuses(b) == {"routed": 1}
        assert len(fake_slack.live_messages(BILLING)) == 1
        async with b.svc.db.transaction() as conn:
            ticket = await tickets_repo.get_ticket(conn, ticket_id)
        assert ticket.owner == "b"
        assert ticket.lease_until is None  # given up when routed
    finally:
        await b.stop()
        await a.stop()
