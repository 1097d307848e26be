"""One ticket per conversation: bursts, follow-ups in the thread, edits, restarts, replicas.

The bot runs on a FakeClock with TRIAGE_GROUP_SECONDS=120: a conversation closes when the
test moves the clock past its window, and only then is it classified and routed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.conversations import next_look
from classifier.examples import MAX_TEXT_CHARS
from classifier.taxonomy import Taxonomy
from data.db import tickets as tickets_repo
from data.db.schema import ticket_messages
from data.db.tickets import Ticket
from tests.bot.conftest import SUPPORT, BotHarness
from tests.bot.keyword_classifier import KeywordClassifier
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.fakes.slack_events import message_event

BILLING = "C0BILLING"
#: A request in none of the departments' words (the tests' keyword model is unsure).
UNSURE = "our setup does not behave the way we expected since yesterday, please help"
ACCOUNT = "C0ACCOUNT"
WINDOW = 120.0


def grouping_bot(
    fake: FakeSlack, tmp_path: Path, taxonomy: Taxonomy, **overrides: Any
) -> BotHarness:
    """A bot that groups messages, on a clock the test moves."""
    return BotHarness(
        fake,
        tmp_path / "triage.db",
        taxonomy,
        clock=overrides.pop("clock", None) or FakeClock(),
        group_seconds=WINDOW,
        **overrides,
    )


@pytest.fixture
async def grouping(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[BotHarness]:
    harness = grouping_bot(fake_slack, tmp_path, taxonomy)
    await harness.start()
    yield harness
    await harness.stop()


def clock_of(bot: BotHarness) -> FakeClock:
    assert isinstance(bot.clock, FakeClock)
    return bot.clock


async def say(bot: BotHarness, text: str, user: str = "U0ALICE", **extra: Any) -> str:
    """A message in the support channel (stored at once, routed when its conversation
    closes); returns its ts."""
    ts = str(extra.pop("ts", None) or bot.send.new_ts())
    status, _ = await bot.send.event(message_event(SUPPORT, ts, text, user, **extra))
    assert status == 200
    return ts


async def pass_window(bot: BotHarness, *replicas: BotHarness) -> None:
    """Move the clock past the grouping window; each bot's closer looks at the conversations at
    the new time, and what closed is routed (every bot shares ``bot``'s clock)."""
    bots = (bot, *replicas)
    for each in bots:  # what was acknowledged is placed in its conversation first
        await each.svc.inbox.drain()
    await clock_of(bot).advance_and_settle(WINDOW, *["conversation-closer"] * len(bots))
    for each in bots:
        await each.drain()


async def close(bot: BotHarness, cards: int = 1, channel: str = BILLING) -> None:
    """Move past the window: ``channel`` then has ``cards`` live cards."""
    await pass_window(bot)
    assert len(bot.fake.live_messages(channel)) == cards


async def all_tickets(bot: BotHarness) -> list[Ticket]:
    async with bot.svc.db.transaction() as conn:
        return [s.ticket for s in await tickets_repo.list_tickets(conn, limit=1000)]


async def messages_of(bot: BotHarness, ticket_id: int) -> int:
    async with bot.svc.db.transaction() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(ticket_messages)
            .where(ticket_messages.c.ticket_id == ticket_id)
        )
    return int(count or 0)


def edited_event(bot: BotHarness, ts: str, text: str, user: str = "U0ALICE") -> dict[str, Any]:
    """Slack's ``message_changed`` event for the message ``ts``."""
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": SUPPORT,
        "ts": bot.send.new_ts(),
        "hidden": True,
        "message": {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "edited": {"user": user, "ts": bot.send.new_ts()},
        },
        "previous_message": {"type": "message", "user": user, "text": "before", "ts": ts},
    }


def card_text(card: dict[str, Any]) -> str:
    return json.dumps(card.get("blocks") or [])


async def test_a_burst_is_one_ticket_routed_once_when_it_closes(grouping: BotHarness) -> None:
    bot, fake = grouping, grouping.fake
    first = await say(bot, "hi")
    await say(bot, "my invoice is wrong")
    await say(bot, "it says 2 seats, we have 3")
    await bot.drain()
    assert fake.posts() == []  # nothing until the conversation closes
    await clock_of(bot).advance(WINDOW - 10)
    await bot.drain()
    assert fake.posts() == []

    await close(bot)
    (ticket,) = await all_tickets(bot)
    assert (ticket.ts, ticket.parts, ticket.status) == (first, 3, "routed")
    assert ticket.text == "hi\nmy invoice is wrong\nit says 2 seats, we have 3"
    (card,) = fake.posts(BILLING)
    assert "it says 2 seats" in card_text(card)
    assert "3 messages" in card_text(card)
    (reply,) = fake.posts(SUPPORT, threads=True)
    assert reply["thread_ts"] == first
    assert fake.reactions_on(SUPPORT, first) == {"moneybag": {BOT_USER_ID}}


async def test_another_requester_or_a_late_message_is_another_ticket(
    grouping: BotHarness,
) -> None:
    bot = grouping
    await say(bot, "my invoice is wrong")
    await say(bot, "I cannot reset my password", user="U0BOB")
    await clock_of(bot).advance(WINDOW + 5)
    await say(bot, "also the refund never came")  # after Alice's window closed
    await pass_window(bot)
    assert len(bot.fake.posts(BILLING)) == 2
    tickets = await all_tickets(bot)
    assert sorted((t.user, t.parts) for t in tickets) == [
        ("U0ALICE", 1),
        ("U0ALICE", 1),
        ("U0BOB", 1),
    ]


async def test_a_burst_of_200_messages_in_10_seconds_is_one_capped_ticket_and_one_card(
    grouping: BotHarness,
) -> None:
    bot, fake = grouping, grouping.fake
    line = "my invoice is wrong and " + "x" * 280
    for n in range(200):
        await say(bot, f"{n:03d} {line}")
        await clock_of(bot).advance(0.05)
    await bot.drain()
    await close(bot)
    (ticket,) = await all_tickets(bot)
    assert ticket.parts == 200
    assert len(ticket.text) == MAX_TEXT_CHARS  # capped ...
    assert await messages_of(bot, ticket.id) == 200  # ... and every message kept
    assert len(fake.posts(BILLING)) == 1
    assert len(fake.posts(SUPPORT, threads=True)) == 1
    assert fake.called("chat.update") == []  # no update per message of the burst


async def test_follow_ups_in_the_thread_update_the_card_in_place(grouping: BotHarness) -> None:
    bot, fake = grouping, grouping.fake
    ts = await say(bot, "my invoice is wrong")
    await close(bot)
    (_card,) = fake.posts(BILLING)
    card_ts = fake.live_messages(BILLING)[0]["ts"]

    await say(bot, "it lists 2 seats", thread_ts=ts)
    await say(bot, "we have 3 seats since May", thread_ts=ts)
    await say(bot, "looking into it", user="U0AGENT", thread_ts=ts)  # an agent: not added
    await pass_window(bot)
    assert fake.called("chat.update", channel=BILLING)

    (ticket,) = await all_tickets(bot)
    assert (ticket.follow_ups, ticket.last_follow_up) == (2, "we have 3 seats since May")
    assert "looking into it" not in ticket.text
    updated = fake.message(BILLING, card_ts)
    assert updated is not None
    assert "+2 follow-ups" in card_text(updated)
    assert "since May" in card_text(updated)
    assert len(fake.posts(BILLING)) == 1  # the same card, never a second one
    assert len(fake.posts(SUPPORT, threads=True)) == 1  # one thread reply


async def test_a_follow_up_that_carries_the_request_routes_a_greeting(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    async def is_request(text: str) -> bool:  # a stand-in for the learned filter
        return text.strip().lower() not in {"hi", "hello"}

    bot = grouping_bot(fake_slack, tmp_path, taxonomy, is_request=is_request)
    await bot.start()
    try:
        ts = await say(bot, "hello")
        await pass_window(bot)
        (ticket,) = await all_tickets(bot)
        assert ticket.status == tickets_repo.SKIPPED
        assert fake_slack.posts() == []
        assert fake_slack.called("reactions.add") == []

        await say(bot, "my refund never arrived", thread_ts=ts)
        await close(bot)
        (ticket,) = await all_tickets(bot)
        assert ticket.status == "routed"
        assert ticket.follow_ups == 1
        assert "refund" in card_text(fake_slack.posts(BILLING)[0])
    finally:
        await bot.stop()


async def test_a_follow_up_delivered_before_its_ticket_is_stored_is_not_lost(
    grouping: BotHarness,
) -> None:
    bot = grouping
    parent = bot.send.new_ts()
    reply_ts = bot.send.new_ts()
    await say(bot, "we have 3 seats, not 2", ts=reply_ts, thread_ts=parent)
    await say(bot, "my invoice is wrong", ts=parent)
    await close(bot)
    (ticket,) = await all_tickets(bot)
    assert ticket.follow_ups == 1
    assert "3 seats" in ticket.text
    assert "+1 follow-up" in card_text(bot.fake.posts(BILLING)[0])


async def test_a_thread_reply_to_a_message_that_is_no_ticket_changes_nothing(
    grouping: BotHarness,
) -> None:
    bot = grouping
    await say(bot, "my invoice is wrong", thread_ts=bot.send.new_ts())
    await pass_window(bot)
    assert await all_tickets(bot) == []
    assert bot.calls_since_start() == []


async def test_an_edit_of_a_grouped_message_rebuilds_the_conversation(
    grouping: BotHarness,
) -> None:
    bot, fake = grouping, grouping.fake
    first = await say(bot, "hello there")
    second = await say(bot, "my invoice is wrong")
    await close(bot)
    edit = {
        "type": "message",
        "subtype": "message_changed",
        "channel": SUPPORT,
        "ts": bot.send.new_ts(),
        "hidden": True,
        "message": {
            "type": "message",
            "user": "U0ALICE",
            "text": "my password is locked",
            "ts": second,
            "edited": {"user": "U0ALICE", "ts": bot.send.new_ts()},
        },
        "previous_message": {
            "type": "message",
            "user": "U0ALICE",
            "text": "my invoice is wrong",
            "ts": second,
        },
    }
    status, _ = await bot.send.event(edit)
    assert status == 200
    await bot.drain()  # an edit queues its ticket at once
    assert len(fake.live_messages(ACCOUNT)) == 1
    (ticket,) = await all_tickets(bot)
    assert ticket.text == "hello there\nmy password is locked"
    assert fake.live_messages(BILLING) == []  # the card moved: one card alive
    (reply,) = fake.posts(SUPPORT, threads=True)  # one reply, updated in place
    shown = fake.message(SUPPORT, str(fake.live_messages(SUPPORT)[0]["ts"]))
    assert shown is not None
    assert "Account" in str(shown["text"])
    assert reply["thread_ts"] == first


async def test_grouping_survives_a_restart(grouping: BotHarness) -> None:
    bot = grouping
    await say(bot, "my invoice is wrong")
    await bot.restart()
    await clock_of(bot).advance(30)
    await say(bot, "it says 2 seats", ts="1750000000.000100")  # a new sender counts from 1
    await bot.drain()
    assert bot.fake.posts() == []  # the restart did not route the open conversation
    await close(bot)
    (ticket,) = await all_tickets(bot)
    assert ticket.parts == 2
    assert len(bot.fake.posts(BILLING)) == 1


async def test_two_replicas_receiving_one_burst_make_one_ticket(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    clock = FakeClock()
    one = grouping_bot(fake_slack, tmp_path, taxonomy, clock=clock, owner="replica-1")
    two = grouping_bot(fake_slack, tmp_path, taxonomy, clock=clock, owner="replica-2")
    await one.start()
    await two.start()
    try:
        sends = [
            one.send.event(message_event(SUPPORT, one.send.new_ts(), f"invoice line {n}"))
            for n in range(10)
        ]
        sends += [
            two.send.event(message_event(SUPPORT, f"{1_800_000_000 + n}.000100", f"more {n}"))
            for n in range(10)
        ]
        await asyncio.gather(*sends)
        await pass_window(one, two)
        (ticket,) = await all_tickets(one)
        assert ticket.parts == 20
        assert len(fake_slack.posts(BILLING)) == 1
    finally:
        await two.stop()
        await one.stop()


async def test_a_vague_follow_up_does_not_pull_the_card_out_of_its_department(
    grouping: BotHarness,
) -> None:
    bot, fake = grouping, grouping.fake
    ts = await say(bot, "my invoice is wrong")
    await close(bot)
    card_ts = fake.live_messages(BILLING)[0]["ts"]
    # Now the whole text is unsure (Account, Technical and Billing words alike).
    await say(bot, "also the app shows an error and my password is locked, crash", thread_ts=ts)
    await pass_window(bot)
    assert fake.called("chat.update", channel=BILLING)
    assert [m["ts"] for m in fake.live_messages(BILLING)] == [card_ts]  # stays, updated
    assert fake.live_messages("C0TRIAGE") == []
    assert fake.called("chat.delete") == []


async def test_a_clear_follow_up_moves_the_card(grouping: BotHarness) -> None:
    bot, fake = grouping, grouping.fake
    ts = await say(bot, UNSURE)  # no department's words: the card goes to triage
    await close(bot, channel="C0TRIAGE")
    await say(bot, "my invoice is wrong, refund the charge please", thread_ts=ts)
    await pass_window(bot)
    assert len(fake.live_messages(BILLING)) == 1
    (ticket,) = await all_tickets(bot)
    assert ticket.follow_ups == 1
    assert len(fake.posts(SUPPORT, threads=True)) == 1  # the one reply, updated in place


async def test_a_follow_up_on_a_sure_ticket_updates_its_card_without_classifying_it_again(
    grouping: BotHarness,
) -> None:
    bot, fake = grouping, grouping.fake
    assert isinstance(bot.classifier, KeywordClassifier)
    ts = await say(bot, "my invoice is wrong, refund the charge")  # Billing, sure
    await close(bot)
    card_ts = fake.live_messages(BILLING)[0]["ts"]
    classified = len(bot.classifier.seen)
    # On its own this would be an Account ticket; the rule: only a ticket routed on
    # an unsure answer (a greeting-only first line) is classified again by a follow-up.
    await say(
        bot,
        "also my password is locked, my username and email address changed, check permissions",
        thread_ts=ts,
    )
    await pass_window(bot)
    assert fake.called("chat.update", channel=BILLING)
    assert len(bot.classifier.seen) == classified
    assert [m["ts"] for m in fake.live_messages(BILLING)] == [card_ts]
    assert fake.live_messages(ACCOUNT) == []
    updated = fake.message(BILLING, card_ts)
    assert updated is not None
    assert "+1 follow-up" in card_text(updated)


async def test_an_edit_after_routing_still_classifies_again(grouping: BotHarness) -> None:
    bot = grouping
    ts = await say(bot, "my invoice is wrong, refund the charge")
    await close(bot)
    assert isinstance(bot.classifier, KeywordClassifier)
    classified = len(bot.classifier.seen)
    status, _ = await bot.send.event(edited_event(bot, ts, "my password is locked"))
    assert status == 200
    await bot.drain()
    assert len(bot.fake.live_messages(ACCOUNT)) == 1
    assert len(bot.classifier.seen) == classified + 1


def test_the_closer_looks_again_at_once_for_a_conversation_that_closed_during_its_look() -> None:
    # The claim counts "now" before its turn in the group commit; a conversation that closes
    # meanwhile is not claimed, and it is not held by another replica: look again now, not after
    # the 2 s poll (every card behind it waited that long in bench/load.py).
    looked_at = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    now = looked_at + timedelta(milliseconds=40)
    closed_meanwhile = looked_at + timedelta(milliseconds=10)
    assert next_look([], closed_meanwhile, looked_at, now, poll=2.0) == 0.0
    # Due when the claim looked and still not claimed: another replica holds it.
    assert next_look([], looked_at - timedelta(seconds=1), looked_at, now, poll=2.0) == 2.0
    # Otherwise: until the next close, at most the poll.
    assert next_look([7], now + timedelta(seconds=0.5), looked_at, now, poll=2.0) == 0.5
    assert next_look([], now + timedelta(seconds=9), looked_at, now, poll=2.0) == 2.0
    assert next_look([7], looked_at, looked_at, now, poll=2.0) == 0.0
    assert next_look([], None, looked_at, now, poll=2.0) == 2.0
    # Never sooner than the batch: closes that come close together share one claim.
    assert next_look([7], looked_at, looked_at, now, poll=2.0, batch=0.05) == 0.05
    assert next_look([], closed_meanwhile, looked_at, now, poll=2.0, batch=0.05) == 0.05
