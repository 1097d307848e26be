"""Only agents correct labels: not the author, not outsiders, not anyone the bot cannot look up;
and no agent without limit (#10, defect 4)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.corrections import revert_corrections
from classifier.taxonomy import Taxonomy
from data.db import corrections as corrections_repo
from data.db import tickets as tickets_repo
from tests.bot.conftest import SUPPORT, TRIAGE, BotHarness
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.fakes.slack_events import button_payload, member_event, reaction_event

BILLING, TECHNICAL, ACCOUNT = "C0BILLING", "C0TECHNICAL", "C0ACCOUNT"
OTHER_ORG = "T0OTHERORG"


async def _react(bot: BotHarness, user: str, emoji: str, ts: str, **extra: str) -> None:
    event = {**reaction_event(True, user, emoji, SUPPORT, ts), **extra}
    status, _ = await bot.send.event(event)
    assert status == 200
    await bot.drain()


async def _labels(bot: BotHarness) -> list[tuple[str, str]]:
    """(user, to_label) of every correction recorded, oldest first."""
    async with bot.svc.db.transaction() as conn:
        tickets = await tickets_repo.list_tickets(conn, status=None, limit=100)
        found = []
        for summary in tickets:
            for c in await corrections_repo.corrections_for(conn, summary.ticket.id):
                found.append((c.created_at, c.id, c.user, c.to_label))
    return [(user, label) for _at, _id, user, label in sorted(found)]


async def test_the_author_cannot_relabel_their_own_ticket(bot: BotHarness) -> None:
    ts = await bot.ticket("The app crashes with an error", user="U0ALICE")
    await _react(bot, "U0ALICE", "moneybag", ts)
    assert await _labels(bot) == []
    assert bot.fake.live_messages(BILLING) == []
    assert len(bot.fake.live_messages(TECHNICAL)) == 1


async def test_an_agent_may_correct_their_own_ticket(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    # An agent's own post is a ticket only with TRIAGE_AGENT_POSTS=tickets.
    bot = BotHarness(fake_slack, tmp_path / "own.db", taxonomy, agent_posts="tickets")
    await bot.start()
    try:
        ts = await bot.ticket("The app crashes with an error", user="U0AGENT")
        await _react(bot, "U0AGENT", "moneybag", ts)
        assert await _labels(bot) == [("U0AGENT", "Billing")]
    finally:
        await bot.stop()


async def test_someone_in_no_agent_channel_cannot_correct(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    ts = await bot.ticket("The app crashes with an error")
    with caplog.at_level(logging.INFO, logger="bot.corrections"):
        await _react(bot, "U0MALLORY", "moneybag", ts)
        await bot.send.interaction(
            button_payload("U0MALLORY", SUPPORT, ts, "triage_route:Billing", "1")
        )
        await bot.drain()
    assert await _labels(bot) == []
    assert caplog.text.count("by U0MALLORY refused: not an agent") == 2


async def test_an_external_user_in_an_agent_channel_never_corrects(bot: BotHarness) -> None:
    bot.fake.add_user("U0GUEST", team_id=OTHER_ORG)  # users.info: is_stranger, another team
    bot.fake.members[TRIAGE].append("U0GUEST")
    await bot.svc.people.refresh()
    ts = await bot.ticket("The app crashes with an error")
    await _react(bot, "U0GUEST", "moneybag", ts)
    assert await _labels(bot) == []


async def test_the_events_own_team_field_marks_an_external_user(bot: BotHarness) -> None:
    ts = await bot.ticket("The app crashes with an error")
    await _react(bot, "U0AGENT", "moneybag", ts, user_team=OTHER_ORG)
    status, _ = await bot.send.interaction(
        {
            **button_payload("U0AGENT", SUPPORT, ts, "triage_route:Billing", "1"),
            "user": {"id": "U0AGENT", "username": "agent", "team_id": OTHER_ORG},
        }
    )
    assert status == 200
    await bot.drain()
    assert await _labels(bot) == []
    await _react(bot, "U0AGENT", "moneybag", ts)  # the same id from this workspace: an agent
    assert await _labels(bot) == [("U0AGENT", "Billing")]


async def test_a_failed_user_lookup_refuses(bot: BotHarness) -> None:
    ts = await bot.ticket("The app crashes with an error")
    bot.fake.fail("users.info", error="user_not_found", times=None)
    await _react(bot, "U0AGENT", "moneybag", ts)
    assert await _labels(bot) == []


@pytest.fixture
async def unreadable_bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[BotHarness]:
    """A bot that cannot read the triage channel's members (the others are readable)."""
    fake_slack.missing.add(TRIAGE)
    harness = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy)
    await harness.start()
    yield harness
    await harness.stop()


async def test_unreadable_member_lists_refuse_unless_another_list_says_agent(
    unreadable_bot: BotHarness,
) -> None:
    bot = unreadable_bot
    bot.fake.members[BILLING] = ["U0BILLY"]
    await bot.svc.people.refresh()
    ts = await bot.ticket("The app crashes with an error")
    await _react(bot, "U0AGENT", "moneybag", ts)  # only in the channel that cannot be read
    assert await _labels(bot) == []
    await _react(bot, "U0BILLY", "moneybag", ts)  # in a channel that can
    assert await _labels(bot) == [("U0BILLY", "Billing")]


async def test_joining_and_leaving_an_agent_channel_takes_effect_at_once(bot: BotHarness) -> None:
    ts = await bot.ticket("The app crashes with an error")
    before = len(bot.fake.called("conversations.members"))
    await bot.send.event(member_event(True, "U0NEWBIE", BILLING))
    await _react(bot, "U0NEWBIE", "moneybag", ts)
    assert await _labels(bot) == [("U0NEWBIE", "Billing")]
    await bot.send.event(member_event(False, "U0NEWBIE", BILLING))
    await _react(bot, "U0NEWBIE", "wrench", ts)
    assert await _labels(bot) == [("U0NEWBIE", "Billing")]
    # The events kept the list current: no member list was read again.
    assert len(bot.fake.called("conversations.members")) == before


async def test_a_reload_picks_up_members_added_without_an_event(bot: BotHarness) -> None:
    ts = await bot.ticket("The app crashes with an error")
    bot.fake.members[TECHNICAL] = ["U0TECHIE"]
    await _react(bot, "U0TECHIE", "moneybag", ts)
    assert await _labels(bot) == []
    await bot.svc.people.refresh()  # what the periodic reload runs
    await _react(bot, "U0TECHIE", "moneybag", ts)
    assert await _labels(bot) == [("U0TECHIE", "Billing")]


async def test_members_of_the_agent_user_group_are_agents(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    fake_slack.usergroups["S0AGENTS"] = ["U0REMOTE"]
    harness = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, agent_usergroup="S0AGENTS")
    await harness.start()
    try:
        ts = await harness.ticket("The app crashes with an error")
        await _react(harness, "U0REMOTE", "moneybag", ts)
        assert await _labels(harness) == [("U0REMOTE", "Billing")]
    finally:
        await harness.stop()


async def test_corrections_past_the_hourly_limit_are_refused_and_logged(
    fake_slack: FakeSlack,
    tmp_path: Path,
    taxonomy: Taxonomy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, corrections_per_hour=2)
    await harness.start()
    try:
        tickets = [await harness.ticket(f"The app crashes with error {n}") for n in range(3)]
        with caplog.at_level(logging.WARNING, logger="bot.corrections"):
            for ts in tickets:
                await _react(harness, "U0AGENT", "moneybag", ts)
            await _react(harness, "U0BOSS", "moneybag", tickets[2])  # another agent: allowed
        assert await _labels(harness) == [
            ("U0AGENT", "Billing"),
            ("U0AGENT", "Billing"),
            ("U0BOSS", "Billing"),
        ]
        assert "by U0AGENT refused: 2 corrections in the last hour (limit 2" in caplog.text
    finally:
        await harness.stop()


async def test_reverting_a_persons_labels_moves_the_tickets_back(bot: BotHarness) -> None:
    bot.fake.members[TRIAGE].append("U0MALLORY")  # an agent gone rogue
    await bot.svc.people.refresh()
    ts = await bot.ticket("The app crashes with an error")
    await _react(bot, "U0AGENT", "bust_in_silhouette", ts)  # a genuine correction: Account
    await _react(bot, "U0MALLORY", "moneybag", ts)
    assert len(bot.fake.live_messages(BILLING)) == 1

    outcome = await revert_corrections(bot.svc.db, "U0MALLORY", None, "cli:test")
    assert [c.user for c in outcome.undone] == ["U0MALLORY"]
    bot.svc.requeue.wake()
    await bot.fake.wait_for(lambda: len(bot.fake.live_messages(ACCOUNT)) == 1)
    await bot.drain()
    assert bot.fake.live_messages(BILLING) == []
    assert bot.fake.reactions_on(SUPPORT, ts) == {"bust_in_silhouette": {BOT_USER_ID}}
    async with bot.svc.db.transaction() as conn:
        ticket = await tickets_repo.find_ticket_by_message(conn, SUPPORT, ts)
        assert ticket is not None
        example = await corrections_repo.example_for_ticket(conn, ticket.id)
    assert example is not None
    assert example.label == "Account"
