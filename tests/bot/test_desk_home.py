"""App Home and the desk: an agent sees their open tickets (oldest first, linked); a lead
(an admin) also sees each department's backlog with its oldest unassigned tickets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from classifier.taxonomy import Taxonomy
from data.db import desk
from data.db import tickets as tickets_repo
from tests.bot.conftest import BotHarness
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import FakeSlack

LEAD = "U0LEAD"


@pytest.fixture
async def bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(
        fake_slack, tmp_path / "triage.db", taxonomy, admin_users=(LEAD,), clock=FakeClock()
    )
    await harness.start()
    yield harness
    await harness.stop()


async def in_desk(bot: BotHarness, ts: str, department: str) -> int:
    """The ticket posted at ``ts``, which the router entered into the desk in ``department``."""
    async with bot.svc.db.transaction() as conn:
        ticket = await tickets_repo.find_ticket_by_message(conn, "C0SUPPORT", ts)
        assert ticket is not None
        state = await desk.get_state(conn, ticket.id)
    assert state is not None
    assert (state.department, state.status) == (department, desk.OPEN)
    assert (
        state.permalink
        == f"https://fake-workspace.slack.com/archives/C0SUPPORT/p{ts.replace('.', '')}"
    )
    return ticket.id


async def open_home(bot: BotHarness, user: str) -> str:
    status, _ = await bot.send.event(
        {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0HOME",
            "tab": "home",
            "event_ts": "1700000000.000100",
        }
    )
    assert status == 200
    await bot.fake.wait_for(lambda: user in bot.fake.home_views)
    return json.dumps(bot.fake.home_views[user])


async def later(bot: BotHarness, hours: float) -> None:
    clock = bot.svc.clock
    assert isinstance(clock, FakeClock)
    await clock.advance(hours * 3600)


async def test_an_agent_sees_their_open_tickets_oldest_first(bot: BotHarness) -> None:
    other = await in_desk(bot, await bot.ticket("change my password"), "Account")
    await later(bot, 4)
    older = await in_desk(bot, await bot.ticket("the api returns an error"), "Technical")
    await later(bot, 4)
    newer = await in_desk(bot, await bot.ticket("refund my invoice please"), "Billing")
    await later(bot, 1)
    async with bot.svc.db.transaction() as conn:
        for ticket_id in (newer, older):
            await desk.take(conn, ticket_id, "U0AGENT", at=bot.svc.clock.now(), source=desk.BUTTON)
        await desk.take(conn, other, "U0BOSS", at=bot.svc.clock.now(), source=desk.BUTTON)
    view = await open_home(bot, "U0AGENT")
    assert "Your open tickets" in view
    assert view.index(f"|#{older}>") < view.index(f"|#{newer}>")
    assert f"|#{other}>" not in view
    assert "https://fake-workspace.slack.com/archives/C0SUPPORT/p" in view
    assert "Backlog now" not in view  # an agent, not a lead


async def test_a_lead_sees_the_unassigned_backlog_per_department(bot: BotHarness) -> None:
    waiting = await in_desk(bot, await bot.ticket("refund my invoice please"), "Billing")
    await later(bot, 28)
    taken = await in_desk(bot, await bot.ticket("charged twice on my card"), "Billing")
    await later(bot, 2)
    async with bot.svc.db.transaction() as conn:
        await desk.take(conn, taken, "U0AGENT", at=bot.svc.clock.now(), source=desk.BUTTON)
    view = await open_home(bot, LEAD)
    assert "Backlog now" in view
    assert "Billing: 2 open, 1 unassigned" in view
    assert f"|#{waiting}> (30.0 h)" in view
    assert f"|#{taken}>" not in view.split("Backlog now")[1].split("Desk, last")[0]
    assert "Desk, last 7 days" in view


async def test_a_requester_sees_no_desk(bot: BotHarness) -> None:
    await in_desk(bot, await bot.ticket("refund my invoice please"), "Billing")
    view = await open_home(bot, "U0ALICE")
    assert "Your open tickets" not in view
    assert "Backlog now" not in view
