"""The desk in Slack: a routed ticket is on the desk; Take it / Resolve / Reopen on its card or
by emoji; the card shows owner and status, the ticket its status emoji, the requester's thread
one line per take and resolution; corrections, withdrawals and first replies move it; bad
presses get an ephemeral answer; every change is stored once, with who and when."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from admin.settings import SettingsError
from classifier.taxonomy import Taxonomy
from data.db import desk
from data.db import inbox as inbox_repo
from data.db import routings as routings_repo
from data.db import tickets as tickets_repo
from data.db.schema import tickets
from tests.bot.conftest import SUPPORT, BotHarness
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.fakes.slack_events import button_payload, message_event, reaction_event

BILLING, TECHNICAL, ACCOUNT = "C0BILLING", "C0TECHNICAL", "C0ACCOUNT"
BILLING_TICKET = "I was charged twice, please refund the second payment"


@dataclass(frozen=True)
class Routed:
    ticket_id: int
    ts: str  # the ticket's message
    card_channel: str
    card_ts: str


async def routed(bot: BotHarness, text: str = BILLING_TICKET) -> Routed:
    ts = await bot.ticket(text)
    async with bot.svc.db.transaction() as conn:
        ticket = await tickets_repo.find_ticket_by_message(conn, SUPPORT, ts)
        assert ticket is not None
        cards = [
            r
            for r in await routings_repo.routings_for(conn, ticket.id)
            if r.kind == routings_repo.CARD and r.active
        ]
    (card,) = cards
    assert card.ts is not None
    return Routed(ticket.id, ts, card.channel, card.ts)


async def state_of(bot: BotHarness, ticket_id: int) -> desk.DeskState | None:
    async with bot.svc.db.transaction() as conn:
        return await desk.get_state(conn, ticket_id)


async def transitions(bot: BotHarness, ticket_id: int) -> list[tuple[str | None, str, str, str]]:
    async with bot.svc.db.transaction() as conn:
        found = await desk.transitions_for(conn, ticket_id)
    return [(t.from_status, t.to_status, t.actor, t.source) for t in found]


def blocks_of(message: dict[str, Any] | None) -> str:
    assert message is not None
    blocks = message.get("blocks")
    return blocks if isinstance(blocks, str) else json.dumps(blocks)


def buttons(message: dict[str, Any] | None) -> list[str]:
    assert message is not None
    raw = message.get("blocks")
    blocks = json.loads(raw) if isinstance(raw, str) else raw
    return [
        e["action_id"]
        for b in blocks or []
        if b["type"] == "actions" and str(b.get("block_id", "")).startswith("triage_desk_")
        for e in b["elements"]
    ]


def press_payload(
    user: str, ticket: Routed, action: str, department: str = "Billing"
) -> dict[str, Any]:
    return button_payload(
        user,
        ticket.card_channel,
        ticket.card_ts,
        f"triage_desk:{action}",
        f"{ticket.ticket_id}:{department}",
    )


async def press(bot: BotHarness, payload: dict[str, Any]) -> None:
    status, _ = await bot.send.interaction(payload)
    assert status == 200


def ephemerals(fake: FakeSlack, user: str) -> list[str]:
    return [str(c.params.get("text")) for c in fake.called("chat.postEphemeral", user=user)]


def thread_lines(fake: FakeSlack, ts: str) -> list[str]:
    return [
        str(p["text"])
        for p in fake.posts(SUPPORT, threads=True)
        if p.get("thread_ts") == ts
        and ("is on it" in str(p["text"]) or "Resolved" in str(p["text"]))
    ]


async def until_card_says(bot: BotHarness, ticket: Routed, text: str) -> None:
    await bot.fake.wait_for(
        lambda: text in blocks_of(bot.fake.message(ticket.card_channel, ticket.card_ts))
    )


async def until_state(bot: BotHarness, ticket_id: int, status: str) -> desk.DeskState:
    for _ in range(3000):
        state = await state_of(bot, ticket_id)
        if state is not None and state.status == status:
            async with bot.svc.db.transaction() as conn:
                if not await desk.unsynced(conn, before=bot.svc.clock.now() + timedelta(1)):
                    return state
        await asyncio.sleep(0.01)
    raise AssertionError(f"ticket {ticket_id} never became {status} and synced")


async def test_a_routed_ticket_is_on_the_desk_and_its_card_says_so(bot: BotHarness) -> None:
    ticket = await routed(bot)
    state = await state_of(bot, ticket.ticket_id)
    assert state is not None
    assert (state.department, state.status, state.assignee) == ("Billing", "open", None)
    assert state.permalink
    assert state.permalink.endswith(ticket.ts.replace(".", ""))
    assert await transitions(bot, ticket.ticket_id) == [(None, "open", "bot", "route")]
    card = bot.fake.message(ticket.card_channel, ticket.card_ts)
    assert "*Status:* Open" in blocks_of(card)
    assert buttons(card) == ["triage_desk:take", "triage_desk:resolve"]
    async with bot.svc.db.transaction() as conn:  # the card shows it: nothing left to sync
        assert await desk.unsynced(conn, before=bot.svc.clock.now() + timedelta(1)) == []
    await bot.restart()
    assert await state_of(bot, ticket.ticket_id) == state  # routed again: no second entry
    assert len(await transitions(bot, ticket.ticket_id)) == 1


async def test_take_resolve_and_reopen_on_the_card(bot: BotHarness) -> None:
    ticket = await routed(bot)
    await press(bot, press_payload("U0AGENT", ticket, "take"))
    await until_card_says(bot, ticket, "owner <@U0AGENT>")
    card = bot.fake.message(ticket.card_channel, ticket.card_ts)
    assert "*Status:* In progress" in blocks_of(card)
    assert buttons(card) == ["triage_desk:resolve"]
    await bot.fake.wait_for(lambda: "eyes" in bot.fake.reactions_on(SUPPORT, ticket.ts))
    assert bot.fake.reactions_on(SUPPORT, ticket.ts)["eyes"] == {BOT_USER_ID}
    await bot.fake.wait_for(lambda: len(thread_lines(bot.fake, ticket.ts)) == 1)
    assert thread_lines(bot.fake, ticket.ts) == ["<@U0AGENT> from Billing is on it."]

    await press(bot, press_payload("U0BOSS", ticket, "resolve"))
    await until_card_says(bot, ticket, "*Status:* Resolved")
    assert buttons(bot.fake.message(ticket.card_channel, ticket.card_ts)) == ["triage_desk:reopen"]
    await bot.fake.wait_for(lambda: len(thread_lines(bot.fake, ticket.ts)) == 2)
    assert thread_lines(bot.fake, ticket.ts)[1].startswith("Resolved by <@U0BOSS>.")
    reactions = bot.fake.reactions_on(SUPPORT, ticket.ts)
    assert "white_check_mark" in reactions
    assert "eyes" not in reactions

    await press(bot, press_payload("U0AGENT", ticket, "reopen"))
    state = await until_state(bot, ticket.ticket_id, "in_progress")
    assert state.assignee == "U0AGENT"  # back to its owner
    await until_card_says(bot, ticket, "*Status:* In progress")
    await bot.fake.wait_for(lambda: "eyes" in bot.fake.reactions_on(SUPPORT, ticket.ts))
    assert "white_check_mark" not in bot.fake.reactions_on(SUPPORT, ticket.ts)
    assert len(thread_lines(bot.fake, ticket.ts)) == 2  # a reopen says nothing to the requester
    assert await transitions(bot, ticket.ticket_id) == [
        (None, "open", "bot", "route"),
        ("open", "in_progress", "U0AGENT", "button"),
        ("in_progress", "resolved", "U0BOSS", "button"),
        ("resolved", "in_progress", "U0AGENT", "button"),
    ]


async def test_two_agents_take_it_at_once_one_wins_the_other_is_told(bot: BotHarness) -> None:
    ticket = await routed(bot)
    await asyncio.gather(
        press(bot, press_payload("U0AGENT", ticket, "take")),
        press(bot, press_payload("U0BOSS", ticket, "take")),
    )
    state = await until_state(bot, ticket.ticket_id, "in_progress")
    winner = state.assignee
    loser = "U0BOSS" if winner == "U0AGENT" else "U0AGENT"
    await bot.fake.wait_for(lambda: bool(ephemerals(bot.fake, loser)))
    assert ephemerals(bot.fake, loser) == [f"<@{winner}> has this ticket already."]
    assert ephemerals(bot.fake, str(winner)) == []
    takes = [t for t in await transitions(bot, ticket.ticket_id) if t[1] == "in_progress"]
    assert takes == [("open", "in_progress", winner, "button")]
    await bot.fake.wait_for(lambda: len(thread_lines(bot.fake, ticket.ts)) == 1)


async def test_a_press_delivered_twice_is_applied_once(bot: BotHarness) -> None:
    ticket = await routed(bot)
    payload = press_payload("U0AGENT", ticket, "take")
    await press(bot, payload)
    await until_state(bot, ticket.ticket_id, "in_progress")
    await press(bot, payload)  # the same action_ts: Slack (or a proxy) delivered it again
    await bot.drain()  # its Slack side, had there been one, is done
    assert len(await transitions(bot, ticket.ticket_id)) == 2
    assert thread_lines(bot.fake, ticket.ts) == ["<@U0AGENT> from Billing is on it."]
    assert ephemerals(bot.fake, "U0AGENT") == []


async def test_a_requester_pressing_take_it_is_refused_ephemerally_and_logged(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = await routed(bot)
    with caplog.at_level(logging.INFO, logger="bot.desk"):
        await press(bot, press_payload("U0ALICE", ticket, "take"))
        await bot.fake.wait_for(lambda: bool(ephemerals(bot.fake, "U0ALICE")))
    assert "Only agents" in ephemerals(bot.fake, "U0ALICE")[0]
    assert any("refused" in r.getMessage() and "U0ALICE" in r.getMessage() for r in caplog.records)
    state = await state_of(bot, ticket.ticket_id)
    assert state is not None
    assert (state.status, state.assignee) == ("open", None)
    assert len(await transitions(bot, ticket.ticket_id)) == 1


async def test_a_refused_press_is_acknowledged_without_waiting_for_slack(bot: BotHarness) -> None:
    """Bolt answers Slack once the listener returns: the refusal is told after, not in it."""
    ticket = await routed(bot)
    bot.fake.hold("chat.postEphemeral")  # Slack takes the refusal and does not answer
    async with asyncio.timeout(20):  # a bound on a failure; the ack comes at once
        await press(bot, press_payload("U0ALICE", ticket, "take"))
    await bot.fake.wait_for(lambda: bool(bot.fake.held))
    assert ephemerals(bot.fake, "U0ALICE") == []  # not answered yet: the ack did not wait
    bot.fake.release()
    await bot.fake.wait_for(lambda: bool(ephemerals(bot.fake, "U0ALICE")))
    assert "Only agents" in ephemerals(bot.fake, "U0ALICE")[0]


async def test_resolve_on_the_card_of_a_ticket_corrected_meanwhile(bot: BotHarness) -> None:
    ticket = await routed(bot)
    stale = press_payload("U0AGENT", ticket, "resolve")  # drawn for Billing
    status, _ = await bot.send.event(
        reaction_event(True, "U0BOSS", "wrench", SUPPORT, ticket.ts)  # -> Technical
    )
    assert status == 200
    await bot.drain()
    moved = await state_of(bot, ticket.ticket_id)
    assert moved is not None
    assert moved.department == "Technical"
    await press(bot, stale)
    await bot.fake.wait_for(lambda: bool(ephemerals(bot.fake, "U0AGENT")))
    assert ephemerals(bot.fake, "U0AGENT") == [
        "This ticket was moved to *Technical* meanwhile; its card there is the current one."
    ]
    after = await state_of(bot, ticket.ticket_id)
    assert after is not None
    assert after.status == "open"


async def test_a_button_on_a_card_whose_ticket_was_deleted(bot: BotHarness) -> None:
    ticket = await routed(bot)
    async with bot.svc.db.transaction() as conn:
        await conn.execute(delete(tickets).where(tickets.c.id == ticket.ticket_id))
    await press(bot, press_payload("U0AGENT", ticket, "take"))
    await bot.fake.wait_for(lambda: bool(ephemerals(bot.fake, "U0AGENT")))
    assert ephemerals(bot.fake, "U0AGENT") == [
        "This ticket is no longer on the desk (withdrawn or deleted)."
    ]
    assert await state_of(bot, ticket.ticket_id) is None


async def test_emoji_take_on_the_ticket_and_resolve_on_the_card(bot: BotHarness) -> None:
    ticket = await routed(bot)
    await bot.send.event(reaction_event(True, "U0AGENT", "eyes", SUPPORT, ticket.ts))
    state = await until_state(bot, ticket.ticket_id, "in_progress")
    assert state.assignee == "U0AGENT"
    await bot.send.event(
        reaction_event(True, "U0BOSS", "white_check_mark", ticket.card_channel, ticket.card_ts)
    )
    await until_state(bot, ticket.ticket_id, "resolved")
    assert [t[2:] for t in await transitions(bot, ticket.ticket_id)] == [
        ("bot", "route"),
        ("U0AGENT", "reaction"),
        ("U0BOSS", "reaction"),
    ]
    # The bot's own status emoji coming back as an event changes nothing.
    await bot.send.event(reaction_event(True, BOT_USER_ID, "eyes", SUPPORT, ticket.ts))
    await bot.drain()
    assert len(await transitions(bot, ticket.ticket_id)) == 3


async def test_a_correction_keeps_the_owner_who_is_in_the_new_channel(bot: BotHarness) -> None:
    bot.fake.members[TECHNICAL] = ["U0AGENT"]
    await bot.svc.people.refresh()
    ticket = await routed(bot)
    await press(bot, press_payload("U0AGENT", ticket, "take"))
    await until_state(bot, ticket.ticket_id, "in_progress")
    await bot.send.event(reaction_event(True, "U0BOSS", "wrench", SUPPORT, ticket.ts))
    await bot.drain()
    state = await state_of(bot, ticket.ticket_id)
    assert state is not None
    assert (state.department, state.status, state.assignee) == (
        "Technical",
        "in_progress",
        "U0AGENT",
    )
    (card,) = bot.fake.live_messages(TECHNICAL)
    assert "owner <@U0AGENT>" in blocks_of(card)


async def test_a_correction_reopens_a_ticket_whose_owner_is_not_in_the_new_channel(
    bot: BotHarness,
) -> None:
    ticket = await routed(bot)
    await press(bot, press_payload("U0AGENT", ticket, "take"))
    await until_state(bot, ticket.ticket_id, "in_progress")
    await bot.fake.wait_for(lambda: "eyes" in bot.fake.reactions_on(SUPPORT, ticket.ts))
    await bot.send.event(reaction_event(True, "U0BOSS", "bust_in_silhouette", SUPPORT, ticket.ts))
    await bot.drain()
    state = await until_state(bot, ticket.ticket_id, "open")
    assert (state.department, state.assignee) == ("Account", None)
    (card,) = bot.fake.live_messages(ACCOUNT)
    assert "*Status:* Open" in blocks_of(card)
    assert buttons(card) == ["triage_desk:take", "triage_desk:resolve"]
    await bot.fake.wait_for(lambda: "eyes" not in bot.fake.reactions_on(SUPPORT, ticket.ts))
    assert (await transitions(bot, ticket.ticket_id))[-1] == (
        "in_progress",
        "open",
        "U0BOSS",
        "correction",
    )


async def test_a_withdrawn_ticket_leaves_the_desk_and_comes_back_when_routed_again(
    bot: BotHarness,
) -> None:
    ticket = await routed(bot)
    await bot.send.event(reaction_event(True, "U0AGENT", "no_entry_sign", SUPPORT, ticket.ts))
    await bot.drain()
    assert await state_of(bot, ticket.ticket_id) is None  # in no backlog, figure or timer
    assert (await transitions(bot, ticket.ticket_id))[-1][1:] == ("withdrawn", "bot", "withdraw")
    await bot.send.event(reaction_event(False, "U0AGENT", "no_entry_sign", SUPPORT, ticket.ts))
    await bot.drain()
    state = await state_of(bot, ticket.ticket_id)
    assert state is not None
    assert (state.status, state.department) == ("open", "Billing")
    assert (await transitions(bot, ticket.ticket_id))[-1] == (None, "open", "bot", "route")


async def test_an_agents_first_reply_is_the_first_response_and_takes_the_ticket(
    bot: BotHarness,
) -> None:
    ticket = await routed(bot)
    follow_up = message_event(SUPPORT, bot.send.new_ts(), "any news?", thread_ts=ticket.ts)
    await bot.send.event(follow_up)  # the requester's own reply is no response
    await bot.drain()
    state = await state_of(bot, ticket.ticket_id)
    assert state is not None
    assert state.first_response_at is None
    reply = message_event(
        SUPPORT, bot.send.new_ts(), "Looking into it", user="U0BOSS", thread_ts=ticket.ts
    )
    await bot.send.event(reply)
    state = await until_state(bot, ticket.ticket_id, "in_progress")
    assert (state.assignee, state.first_responder) == ("U0BOSS", "U0BOSS")
    assert state.first_response_at is not None
    await until_card_says(bot, ticket, "owner <@U0BOSS>")
    assert thread_lines(bot.fake, ticket.ts) == []  # they said so themselves
    await bot.send.event(reply)  # delivered again: nothing more
    await bot.drain()  # placed (a duplicate) and told to the desk, had it been new
    assert [t[3] for t in await transitions(bot, ticket.ticket_id)] == ["route", "reply"]


async def test_a_first_response_is_not_lost_when_the_bot_dies_while_placing_the_reply(
    bot: BotHarness,
) -> None:
    """The process dies while the agent's reply is being placed, at the one point where it
    waits for Slack (asking who wrote it: an event without ``team`` needs users.info): after
    the restart the reply is the first response. Placing the reply and recording the response
    used to be two transactions with that question between them, and the crash lost it."""
    ticket = await routed(bot)
    bot.fake.hold("users.info", when=lambda params: params.get("user") == "U0BOSS")
    reply = message_event(
        SUPPORT, bot.send.new_ts(), "Looking into it", user="U0BOSS", thread_ts=ticket.ts
    )
    del reply["team"]  # Slack leaves it out at times: then users.info says who it is
    assert (await bot.send.event(reply))[0] == 200
    await bot.fake.wait_for(lambda: bool(bot.fake.held))
    await bot.stop()  # killed while it waits for Slack's answer
    bot.fake.release()

    await bot.start()
    await bot.drain()
    state = await until_state(bot, ticket.ticket_id, "in_progress")
    assert (state.assignee, state.first_responder) == ("U0BOSS", "U0BOSS")
    assert state.first_response_at is not None
    assert [t[3] for t in await transitions(bot, ticket.ticket_id)] == ["route", "reply"]
    async with bot.svc.db.transaction() as conn:
        assert await inbox_repo.count_waiting(conn) == 0
    await bot.send.event(reply)  # Slack retries the event: nothing more
    await bot.drain()
    assert [t[3] for t in await transitions(bot, ticket.ticket_id)] == ["route", "reply"]


async def test_a_change_whose_slack_side_was_cut_short_is_done_after_a_restart(
    bot: BotHarness,
) -> None:
    ticket = await routed(bot)
    await bot.stop()
    # As if the process stopped right after storing the take: the card still says Open.
    await bot.start()
    async with bot.svc.db.transaction() as conn:
        taken = await desk.take(
            conn, ticket.ticket_id, "U0AGENT", at=bot.svc.clock.now(), source=desk.BUTTON
        )
    assert taken.applied
    assert "*Status:* Open" in blocks_of(bot.fake.message(ticket.card_channel, ticket.card_ts))
    assert await bot.svc.desk.sweep(settle=timedelta(0)) == 1
    await until_card_says(bot, ticket, "owner <@U0AGENT>")
    assert thread_lines(bot.fake, ticket.ts) == ["<@U0AGENT> from Billing is on it."]
    assert await bot.svc.desk.sweep(settle=timedelta(0)) == 0  # done: nothing twice
    assert len(thread_lines(bot.fake, ticket.ts)) == 1


async def test_a_thread_line_whose_answer_was_lost_is_looked_for_not_posted_again(
    bot: BotHarness,
) -> None:
    ticket = await routed(bot)

    def live_lines() -> list[dict[str, Any]]:
        return [m for m in bot.fake.live_messages(SUPPORT) if "is on it" in str(m.get("text"))]

    # The line reaches Slack, its answer is lost (a 5xx): the sync stops there.
    bot.fake.fail("chat.postMessage", status=500, error="internal_error", done=True)
    await press(bot, press_payload("U0AGENT", ticket, "take"))
    await bot.fake.wait_for(lambda: len(live_lines()) == 1)
    for _ in range(500):  # the stale sweep (here at once) finishes it
        await bot.svc.desk.sweep(settle=timedelta(0))
        async with bot.svc.db.transaction() as conn:
            if not await desk.unsynced(conn, before=bot.svc.clock.now() + timedelta(1)):
                break
        await asyncio.sleep(0.02)
    assert len(live_lines()) == 1
    assert bot.fake.called("conversations.replies", channel=SUPPORT, ts=ticket.ts)
    await until_card_says(bot, ticket, "owner <@U0AGENT>")


async def test_a_line_a_crash_cut_short_is_looked_for_when_the_next_change_is_drawn(
    bot: BotHarness,
) -> None:
    """The process dies while posting a take's thread line (Slack took it, its answer never
    came); after the restart the Resolve pressed next draws the ticket at once, before any
    sweep: the take's line, a change of the process before, is looked for in Slack first."""
    ticket = await routed(bot)

    def live_lines(text: str) -> list[dict[str, Any]]:
        return [m for m in bot.fake.live_messages(SUPPORT) if text in str(m.get("text"))]

    bot.fake.hold("chat.postMessage", when=lambda params: "is on it" in str(params.get("text")))
    await press(bot, press_payload("U0AGENT", ticket, "take"))
    await bot.fake.wait_for(lambda: len(live_lines("is on it")) == 1)
    await bot.stop()  # killed while it waits for Slack's answer
    bot.fake.release()

    await bot.start()
    await press(bot, press_payload("U0AGENT", ticket, "resolve"))
    await until_state(bot, ticket.ticket_id, "resolved")
    assert len(live_lines("is on it")) == 1  # found, not posted again
    assert len(live_lines("Resolved")) == 1
    assert bot.fake.called("conversations.replies", channel=SUPPORT, ts=ticket.ts)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"take_emoji": "moneybag"}, "TRIAGE_TAKE_EMOJI: :moneybag: is the Billing"),
        ({"resolve_emoji": "wrench"}, "TRIAGE_RESOLVE_EMOJI: :wrench: is the Technical"),
        ({"resolve_emoji": "eyes"}, "TRIAGE_RESOLVE_EMOJI: :eyes: is also TRIAGE_TAKE_EMOJI"),
        ({"take_emoji": "no_entry_sign"}, "TRIAGE_TAKE_EMOJI: :no_entry_sign: is also"),
    ],
)
async def test_desk_emoji_that_clash_stop_start_up_before_slack(
    fake_slack: FakeSlack,
    tmp_path: Path,
    taxonomy: Taxonomy,
    settings: dict[str, str],
    message: str,
) -> None:
    harness = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, **settings)
    try:
        with pytest.raises(SettingsError, match=message):
            await harness.start()
        assert fake_slack.calls == []  # before any Slack session opened
    finally:
        await harness.stop()


@pytest.fixture
async def bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy)
    await harness.start()
    yield harness
    await harness.stop()
