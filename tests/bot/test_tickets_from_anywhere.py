"""Who is who at intake, the "Send to triage" shortcut, direct messages and what requesters see."""

from __future__ import annotations

import json
from pathlib import Path

from classifier.taxonomy import Taxonomy
from data.db import tickets as tickets_repo
from data.db.tickets import Ticket
from tests.bot.conftest import AGENTS, SUPPORT, TRIAGE, BotHarness
from tests.fakes.slack_api import BOT_ID, BOT_USER_ID, FakeSlack
from tests.fakes.slack_events import message_event, reaction_event, shortcut_payload

BILLING = "C0BILLING"
#: A request in none of the departments' words (the tests' keyword model is unsure).
UNSURE = "our setup does not behave the way we expected since yesterday, please help"
OTHER_TEAM = "T0OTHERORG"


async def all_tickets(bot: BotHarness) -> list[Ticket]:
    async with bot.svc.db.transaction() as conn:
        return [s.ticket for s in await tickets_repo.list_tickets(conn, limit=100)]


async def test_an_agents_own_post_is_not_a_ticket(bot: BotHarness) -> None:
    await bot.ticket("Heads-up: invoices go out late this month", user=AGENTS[0])
    assert await all_tickets(bot) == []
    assert bot.fake.posts() == []


async def test_agent_posts_are_tickets_when_configured(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    bot = BotHarness(fake_slack, tmp_path / "t.db", taxonomy, agent_posts="tickets")
    await bot.start()
    try:
        await bot.ticket("my invoice shows the wrong VAT", user=AGENTS[0])
        (ticket,) = await all_tickets(bot)
        assert ticket.user == AGENTS[0]
        assert len(fake_slack.posts(BILLING)) == 1
    finally:
        await bot.stop()


async def test_an_external_user_in_an_agent_channel_is_a_requester(bot: BotHarness) -> None:
    fake = bot.fake
    fake.add_user("U0EXT", team_id=OTHER_TEAM)
    fake.members[TRIAGE].append("U0EXT")  # a Slack Connect guest sitting in the triage channel
    await bot.svc.people.refresh()
    ts = bot.send.new_ts()
    # In a Slack Connect channel the event names the author's own team.
    event = message_event(SUPPORT, ts, "my invoice is wrong", "U0EXT", user_team=OTHER_TEAM)
    await bot.send.event(event)
    await bot.drain()
    (ticket,) = await all_tickets(bot)
    assert ticket.user == "U0EXT"  # their post is a ticket, not an agent's announcement
    # ... and they may not correct it, not even their own
    status, _ = await bot.send.event(reaction_event(True, "U0EXT", "wrench", SUPPORT, ts))
    assert status == 200
    await bot.drain()
    assert fake.live_messages("C0TECHNICAL") == []
    assert len(fake.live_messages(BILLING)) == 1


async def test_without_a_team_in_the_event_users_info_tells_who_is_external(
    bot: BotHarness,
) -> None:
    bot.fake.add_user("U0GUEST", team_id=OTHER_TEAM)
    bot.fake.members[TRIAGE].append("U0GUEST")
    bot.fake.members[TRIAGE].append("U0COLLEAGUE")
    await bot.svc.people.refresh()
    for user in ("U0GUEST", "U0COLLEAGUE"):
        event = message_event(SUPPORT, bot.send.new_ts(), "refund please", user, team=None)
        await bot.send.event(event)
    await bot.drain()
    (ticket,) = await all_tickets(bot)
    assert ticket.user == "U0GUEST"  # the colleague in the triage channel is an agent
    assert bot.fake.called("users.info", user="U0GUEST")


async def test_a_requester_costs_no_users_info_call(bot: BotHarness) -> None:
    await bot.ticket("refund please", user="U0NEWCOMER")
    assert bot.fake.called("users.info", user="U0NEWCOMER") == []
    assert len(await all_tickets(bot)) == 1


async def test_send_to_triage_makes_any_message_a_ticket(bot: BotHarness) -> None:
    fake = bot.fake
    message = {
        "type": "message",
        "user": "U0BOB",
        "ts": "1700000500.000100",
        "text": "the refund for order 1234 never arrived",
    }
    status, _ = await bot.send.interaction(
        shortcut_payload("send_to_triage", AGENTS[0], "C0RANDOM", message)
    )
    assert status == 200
    await bot.drain()
    (ticket,) = await all_tickets(bot)
    assert (ticket.channel, ticket.user) == ("C0RANDOM", "U0BOB")
    assert (ticket.source, ticket.submitted_by) == ("shortcut", AGENTS[0])
    assert ticket.status == "routed"
    assert len(fake.posts(BILLING)) == 1
    (told,) = fake.called("chat.postEphemeral", user=AGENTS[0])
    assert "Sent to triage" in str(told.params["text"])

    # again on the same message: no second ticket, no second card
    await bot.send.interaction(shortcut_payload("send_to_triage", "U0BOB", "C0RANDOM", message))
    await bot.drain()
    assert len(await all_tickets(bot)) == 1
    assert len(fake.posts(BILLING)) == 1


async def test_send_to_triage_on_the_bots_own_message_is_refused(bot: BotHarness) -> None:
    await bot.ticket("my invoice is wrong")
    card = bot.fake.live_messages(BILLING)[0]
    own = {
        "type": "message",
        "subtype": "bot_message",
        "bot_id": BOT_ID,
        "user": BOT_USER_ID,
        "ts": card["ts"],
        "text": card["text"],
    }
    await bot.send.interaction(shortcut_payload("send_to_triage", AGENTS[0], BILLING, own))
    await bot.drain()
    assert len(await all_tickets(bot)) == 1  # only the original
    (told,) = bot.fake.called("chat.postEphemeral", user=AGENTS[0])
    assert "my own messages" in str(told.params["text"])


async def test_send_to_triage_on_another_apps_message_is_a_ticket(bot: BotHarness) -> None:
    form = {
        "type": "message",
        "subtype": "bot_message",
        "bot_id": "B0FORMS",
        "ts": "1700000600.000100",
        "text": "Web form: my invoice shows the wrong VAT",
    }
    await bot.send.interaction(shortcut_payload("send_to_triage", AGENTS[0], SUPPORT, form))
    await bot.drain()
    (ticket,) = await all_tickets(bot)
    assert (ticket.user, ticket.submitted_by) == ("B0FORMS", AGENTS[0])
    assert len(bot.fake.posts(BILLING)) == 1


async def test_send_to_triage_routes_a_message_the_filter_skipped(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    async def nothing_is_a_request(_text: str) -> bool:
        return False

    bot = BotHarness(fake_slack, tmp_path / "t.db", taxonomy, is_request=nothing_is_a_request)
    await bot.start()
    try:
        ts = await bot.ticket("invoice?")
        (ticket,) = await all_tickets(bot)
        assert ticket.status == tickets_repo.SKIPPED
        assert fake_slack.posts() == []
        message = {"type": "message", "user": "U0ALICE", "ts": ts, "text": "invoice?"}
        await bot.send.interaction(shortcut_payload("send_to_triage", AGENTS[0], SUPPORT, message))
        await bot.drain()
        (ticket,) = await all_tickets(bot)
        assert (ticket.status, ticket.submitted_by) == ("routed", AGENTS[0])
        assert len(fake_slack.posts(BILLING)) == 1
    finally:
        await bot.stop()


async def test_a_direct_message_is_a_ticket_answered_minimally(bot: BotHarness) -> None:
    fake = bot.fake
    ts = bot.send.new_ts()
    event = message_event("D0ALICE", ts, "I was charged twice for my invoice", channel_type="im")
    await bot.send.event(event)
    await bot.drain()
    (ticket,) = await all_tickets(bot)
    assert (ticket.channel, ticket.source) == ("D0ALICE", "dm")
    (reply,) = fake.posts("D0ALICE", threads=True)
    assert reply["text"] == "Thanks — our Billing team has this."
    (card,) = fake.posts(BILLING)
    assert "React to the ticket or this card" in json.dumps(card["blocks"])  # legend: agents


async def test_a_shared_channel_gets_the_minimal_reply(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    fake_slack.shared.add(SUPPORT)  # a Slack Connect channel: conversations.info says so
    bot = BotHarness(fake_slack, tmp_path / "t.db", taxonomy)
    await bot.start()
    try:
        await bot.ticket("I was charged twice")
        (reply,) = fake_slack.posts(SUPPORT, threads=True)
        assert reply["text"] == "Thanks — our Billing team has this."
        assert "%" not in reply["text"]
        assert "<#" not in reply["text"]
        (card,) = fake_slack.posts(BILLING)
        assert "React to the ticket or this card" in json.dumps(card["blocks"])
    finally:
        await bot.stop()


async def test_public_reply_detailed_overrides_the_shared_channel_default(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    fake_slack.shared.add(SUPPORT)
    bot = BotHarness(fake_slack, tmp_path / "t.db", taxonomy, public_reply="detailed")
    await bot.start()
    try:
        await bot.ticket("I was charged twice")
        (reply,) = fake_slack.posts(SUPPORT, threads=True)
        assert "Routed to *Billing*" in reply["text"]
    finally:
        await bot.stop()


async def test_public_reply_minimal_everywhere(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    bot = BotHarness(fake_slack, tmp_path / "t.db", taxonomy, public_reply="minimal")
    await bot.start()
    try:
        await bot.ticket(UNSURE)  # no department's words: goes to triage
        (reply,) = fake_slack.posts(SUPPORT, threads=True)
        assert reply["text"] == "Thanks — our support team has this."
    finally:
        await bot.stop()
