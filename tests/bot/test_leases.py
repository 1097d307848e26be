"""Several replicas on one database: one process at a time routes a ticket (leases)."""

from __future__ import annotations

from pathlib import Path

from bot.routing import CLAIM_RETRY_SECONDS
from classifier.taxonomy import Taxonomy
from data.db import tickets as tickets_repo
from tests.bot.conftest import SUPPORT, BotHarness
from tests.fakes.clock import FakeClock
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
    clock = FakeClock()
    a = BotHarness(fake_slack, tmp_path / "shared.db", taxonomy, owner="a", clock=clock)
    b = BotHarness(fake_slack, tmp_path / "shared.db", taxonomy, owner="b", clock=clock)
    await a.start()
    await b.start()
    try:
        # A posts the card and hears nothing back until released: A is mid-routing.
        fake_slack.hold("chat.postMessage", when=lambda params: params.get("channel") == BILLING)
        await a.send.event(message_event(SUPPORT, a.send.new_ts(), "refund my invoice please"))
        await fake_slack.wait_for(lambda: len(fake_slack.live_messages(BILLING)) == 1)
        assert await b.svc.resume() == 0  # what B does on start: this ticket is A's
        assert b.svc.queue.pending == 0
        b.svc.queue.submit(1)  # as a correction reaching B would: B waits for A's lease
        await fake_slack.wait_for(lambda: b.svc.queue.delayed() == {1: CLAIM_RETRY_SECONDS})
        fake_slack.release()
        await a.drain()
        await clock.advance(CLAIM_RETRY_SECONDS)
        await b.drain()  # B's run came after A's: nothing left to do
        assert len(fake_slack.live_messages(BILLING)) == 1
        assert len(fake_slack.posts(SUPPORT, threads=True)) == 1
        assert await _statuses(a) == {"routed": 1}
    finally:
        fake_slack.release()
        await b.stop()
        await a.stop()


async def test_the_tickets_of_a_replica_that_died_are_taken_over_once_its_lease_ran_out(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    clock = FakeClock()
    a = BotHarness(fake_slack, tmp_path / "shared.db", taxonomy, owner="a", clock=clock)
    b = BotHarness(fake_slack, tmp_path / "shared.db", taxonomy, owner="b", clock=clock)
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
        await fake_slack.wait_for(lambda: 1 in a.svc.queue.delayed())  # A retries later
        # A dies without giving anything up (no release): its workers just stop.
        assert a.runtime is not None
        await a.runtime.supervisor.stop("ticket-workers", "requeue-watcher")
        async with a.svc.db.transaction() as conn:
            [ticket_id] = await tickets_repo.unfinished_tickets(conn)
            ticket = await tickets_repo.get_ticket(conn, ticket_id)
        assert ticket.owner == "a"
        assert ticket.lease_until is not None
        fake_slack.clear_failures()
        lease = b.svc.router.lease_seconds
        # B looks for abandoned tickets every lease / 4: while A's lease runs, it leaves it.
        await clock.advance(lease / 2)
        await clock.advance(lease / 4)
        await b.drain()
        assert fake_slack.posts(SUPPORT, threads=True) == []
        # Once A's lease ran out, B's next look takes the ticket over and routes it.
        await clock.advance_and_settle(lease / 2, "requeue-watcher")  # B's: A's is stopped
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
