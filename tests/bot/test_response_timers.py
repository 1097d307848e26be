"""First-response timers: one nudge on the card, one escalation to triage, each once, cancelled
by the first response, paused outside business hours, on one replica, across restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.services import Intervals
from classifier.business_hours import parse_business_hours
from classifier.taxonomy import Taxonomy
from data.db import desk
from data.db import response_timers as timers_repo
from data.db import routings as routings_repo
from data.db import tickets as tickets_repo
from tests.bot.conftest import TRIAGE, BotHarness
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import FakeSlack

BILLING_TICKET = "Please refund the double charge on my invoice, <!channel> <@U0CEO>"
#: A Monday, 10:00 UTC.
MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
#: The background sweep never runs by itself: the tests sweep when they choose.
NEVER = Intervals(response_timers=10**9)


def with_targets(taxonomy: Taxonomy, **changes: object) -> Taxonomy:
    departments = []
    for dept in taxonomy:
        if dept.name == "Billing":
            dept = replace(dept, first_response_minutes=30, oncall_usergroup="S0BILLING", **changes)
        departments.append(dept)
    return Taxonomy(tuple(departments))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY)


@pytest.fixture
async def bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy, clock: FakeClock
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(
        fake_slack,
        tmp_path / "triage.db",
        with_targets(taxonomy),
        clock=clock,
        intervals=NEVER,
        owner="replica-a",
    )
    await started(harness)
    yield harness
    await harness.stop()


async def started(harness: BotHarness) -> None:
    """Start the bot and wait for its start-up sweep: a start-up sweep delayed on a loaded
    machine would otherwise run in the middle of the test's own sweeps."""
    await harness.start()
    async with asyncio.timeout(60):
        await harness.svc.response_timers.first_sweep.wait()


async def routed_ticket(bot: BotHarness, clock: FakeClock) -> tuple[int, tuple[str, str]]:
    """A Billing ticket routed, so in the desk: (ticket id, its card's channel and ts)."""
    ts = await bot.ticket(BILLING_TICKET)
    async with bot.svc.db.transaction() as conn:
        ticket = await tickets_repo.find_ticket_by_message(conn, "C0SUPPORT", ts)
        assert ticket is not None
        state = await desk.get_state(conn, ticket.id)  # the router entered it
        [card] = [r for r in await routings_repo.routings_for(conn, ticket.id) if r.kind == "card"]
    assert state is not None
    assert (state.department, state.status) == ("Billing", desk.OPEN)
    assert abs((state.opened_at - clock.now()).total_seconds()) < 60
    billing = bot.taxonomy.get("Billing")
    assert billing is not None
    assert card.channel == billing.channel
    assert card.ts is not None
    return ticket.id, (card.channel, card.ts)


def nudges(fake: FakeSlack, channel: str) -> list[dict[str, object]]:
    """The nudges standing in ``channel`` (posts whose answer was lost included)."""
    return [
        m
        for m in fake.live_messages(channel)
        if m.get("thread_ts") and "No first response" in str(m.get("text"))
    ]


async def test_one_nudge_on_the_card_then_one_escalation_to_triage(
    bot: BotHarness, clock: FakeClock
) -> None:
    ticket_id, (channel, card_ts) = await routed_ticket(bot, clock)
    timers = bot.svc.response_timers
    await timers.sweep()
    await clock.advance(29 * 60)
    assert (await timers.sweep()).posted == 0
    await clock.advance(2 * 60)
    assert (await timers.sweep()).posted == 1
    assert (await timers.sweep()).posted == 0

    [nudge] = nudges(bot.fake, channel)
    assert nudge["thread_ts"] == card_ts
    assert str(nudge["text"]).startswith("<!subteam^S0BILLING> :hourglass: No first response")
    assert "30 min" in str(nudge["text"])
    assert str(nudge["text"]).count("<!") == 1  # only the taxonomy's group, nothing else
    assert bot.fake.posts(TRIAGE) == []

    await clock.advance(30 * 60)
    assert (await timers.sweep()).posted == 1
    [escalation] = [p for p in bot.fake.posts(TRIAGE) if "rotating_light" in str(p["text"])]
    assert f"Ticket #{ticket_id} in *Billing*" in str(escalation["text"])
    assert "|Open the card>" in str(escalation["text"])
    await clock.advance(24 * 3600)
    assert (await timers.sweep()).posted == 0
    assert len(nudges(bot.fake, channel)) == 1
    async with bot.svc.db.transaction() as conn:
        done = await timers_repo.timers_for(conn, ticket_id)
    assert {kind: f and f.outcome for kind, f in done.items()} == {
        "nudge": "posted",
        "escalation": "posted",
    }


async def test_the_first_response_cancels_both(bot: BotHarness, clock: FakeClock) -> None:
    ticket_id, (channel, _) = await routed_ticket(bot, clock)
    timers = bot.svc.response_timers
    await timers.sweep()
    await clock.advance(10 * 60)
    async with bot.svc.db.transaction() as conn:
        answered = await desk.record_first_response(conn, ticket_id, "U0AGENT", at=clock.now())
    assert answered.applied
    await clock.advance(3 * 3600)
    figures = await timers.sweep()
    assert (figures.posted, figures.cancelled) == (0, 2)
    assert nudges(bot.fake, channel) == []
    assert [p for p in bot.fake.posts(TRIAGE) if "rotating_light" in str(p["text"])] == []


async def test_a_resolved_ticket_is_not_nudged(bot: BotHarness, clock: FakeClock) -> None:
    ticket_id, (channel, _) = await routed_ticket(bot, clock)
    async with bot.svc.db.transaction() as conn:
        resolved = await desk.resolve(
            conn, ticket_id, "U0AGENT", source=desk.BUTTON, at=clock.now()
        )
    assert resolved.applied
    await clock.advance(3 * 3600)
    await bot.svc.response_timers.sweep()
    assert nudges(bot.fake, channel) == []


async def test_a_restart_between_post_and_record_posts_nothing_twice(
    bot: BotHarness, clock: FakeClock
) -> None:
    ticket_id, (channel, _) = await routed_ticket(bot, clock)
    await bot.svc.response_timers.sweep()
    await clock.advance(31 * 60)
    # The nudge reaches Slack but its answer is lost: the sweep cannot record it.
    bot.fake.fail("chat.postMessage", status=500, error="internal_error", done=True)
    figures = await bot.svc.response_timers.sweep()
    assert (figures.posted, figures.failed) == (0, 1)
    assert len(nudges(bot.fake, channel)) == 1
    await bot.restart()
    await bot.svc.response_timers.sweep()  # (or the one the restart began): found, recorded
    assert len(nudges(bot.fake, channel)) == 1
    assert bot.fake.called("conversations.replies", channel=channel)
    async with bot.svc.db.transaction() as conn:
        nudge = (await timers_repo.timers_for(conn, ticket_id))["nudge"]
    assert nudge is not None
    assert nudge.outcome == "posted"


async def test_two_replicas_post_each_nudge_once(
    bot: BotHarness, clock: FakeClock, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    ticket_id, (channel, _) = await routed_ticket(bot, clock)
    other = BotHarness(
        fake_slack,
        tmp_path / "triage.db",
        bot.taxonomy,
        clock=clock,
        intervals=NEVER,
        owner="replica-b",
    )
    await started(other)
    try:
        await clock.advance(31 * 60)
        first = await bot.svc.response_timers.sweep()
        second = await other.svc.response_timers.sweep()
        assert first.posted == 1
        assert second.held_elsewhere
        # The holder stops (without handing on): the other takes over once the lease runs out.
        await bot.stop()
        await clock.advance(30 * 60)
        taken_over = await other.svc.response_timers.sweep()
        assert not taken_over.held_elsewhere
        assert taken_over.posted == 1  # the escalation
    finally:
        await other.stop()
    assert len(nudges(fake_slack, channel)) == 1
    assert len([p for p in fake_slack.posts(TRIAGE) if f"#{ticket_id}" in str(p["text"])]) == 1


async def test_clocks_pause_outside_business_hours(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    friday_evening = datetime(2026, 11, 27, 17, 50, tzinfo=UTC)
    clock = FakeClock(friday_evening)
    office = parse_business_hours("Mon-Fri 09:00-18:00 UTC")
    harness = BotHarness(
        fake_slack,
        tmp_path / "triage.db",
        with_targets(taxonomy, hours=office),
        clock=clock,
        intervals=NEVER,
    )
    await started(harness)
    try:
        _, (channel, _) = await routed_ticket(harness, clock)
        await harness.svc.response_timers.sweep()
        await clock.advance(2.5 * 24 * 3600)  # Monday 05:50: the clock ran 10 minutes
        assert (await harness.svc.response_timers.sweep()).posted == 0
        await clock.advance(3 * 3600 + 19 * 60)  # Monday 09:09: 19 minutes
        assert (await harness.svc.response_timers.sweep()).posted == 0
        await clock.advance(12 * 60)  # Monday 09:21: 31 minutes
        assert (await harness.svc.response_timers.sweep()).posted == 1
        [nudge] = nudges(fake_slack, channel)
        assert "counted Mon-Fri 09:00-18:00 UTC" in str(nudge["text"])
    finally:
        await harness.stop()


async def test_a_correction_moves_the_timers_to_the_new_department(
    bot: BotHarness, clock: FakeClock
) -> None:
    ticket_id, (channel, _) = await routed_ticket(bot, clock)
    timers = bot.svc.response_timers
    await timers.sweep()
    async with bot.svc.db.transaction() as conn:
        moved = await desk.change_department(
            conn, ticket_id, "Technical", keep=None, actor="U0AGENT", at=clock.now()
        )
    assert moved.applied
    await clock.advance(3 * 3600)
    await timers.sweep()
    assert nudges(bot.fake, channel) == []  # Technical has no target
    async with bot.svc.db.transaction() as conn:
        done = await timers_repo.timers_for(conn, ticket_id)
    assert {f.outcome for f in done.values() if f is not None} == {"untargeted"}


def test_only_a_user_group_id_can_be_mentioned() -> None:
    from bot.slack_gateway import USERGROUP_ID

    assert USERGROUP_ID.match("S0BILLING")
    for bad in ("here", "channel", "S0BILLING> <!channel", "U0CEO", "s0lower"):
        assert not USERGROUP_ID.match(bad)


async def test_old_tickets_are_not_nudged_when_a_target_is_added(
    bot: BotHarness, clock: FakeClock
) -> None:
    ticket_id, (channel, _) = await routed_ticket(bot, clock)
    await clock.advance(2 * 24 * 3600)  # no sweep ran while the ticket waited two days
    figures = await bot.svc.response_timers.sweep()
    assert figures.posted == 0
    assert nudges(bot.fake, channel) == []
    async with bot.svc.db.transaction() as conn:
        done = await timers_repo.timers_for(conn, ticket_id)
    assert {f.outcome for f in done.values() if f is not None} == {"late"}


async def test_two_sweeps_at_once_in_one_process_post_once(
    bot: BotHarness, clock: FakeClock
) -> None:
    _, (channel, _) = await routed_ticket(bot, clock)
    await clock.advance(31 * 60)
    timers = bot.svc.response_timers
    first, second = await asyncio.gather(timers.sweep(), timers.sweep())
    assert first.posted + second.posted == 1
    assert len(nudges(bot.fake, channel)) == 1
