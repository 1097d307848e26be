"""Only requests are routed (#14 item 2): the filter's skips, the "not a ticket" emoji that
withdraws a card and teaches the filter, the way back, refits and restarts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.settings import SettingsError
from bot.request_feedback import FeedbackOutcome
from classifier.taxonomy import Taxonomy
from data.db import request_feedback as feedback_repo
from data.db import tickets as tickets_repo
from data.db.tickets import Ticket
from tests.bot.conftest import SUPPORT, TRIAGE, BotHarness
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.fakes.slack_events import reaction_event

BILLING, TECHNICAL = "C0BILLING", "C0TECHNICAL"
NOT_A_TICKET = "no_entry_sign"


async def _stored(bot: BotHarness, ts: str) -> Ticket:
    async with bot.svc.db.transaction() as conn:
        ticket = await tickets_repo.find_ticket_by_message(conn, SUPPORT, ts)
    assert ticket is not None
    return ticket


async def _feedback(bot: BotHarness) -> list[tuple[str, bool, str, str]]:
    async with bot.svc.db.transaction() as conn:
        return [
            (f.text, f.is_request, f.user, f.via) for f in await feedback_repo.all_feedback(conn)
        ]


async def _react(bot: BotHarness, user: str, channel: str, ts: str, *, added: bool = True) -> None:
    status, _ = await bot.send.event(reaction_event(added, user, NOT_A_TICKET, channel, ts))
    assert status == 200
    await bot.drain()


@pytest.mark.parametrize(
    "text",
    ["thanks!", "ok :+1:", "+1", ":pray:", "<https://status.acme.io|status>", "hi <@U0AGENT>"],
)
async def test_a_message_that_is_no_request_is_stored_but_not_routed(
    bot: BotHarness, text: str
) -> None:
    before = len(bot.fake.calls)
    ts = await bot.ticket(text)
    ticket = await _stored(bot, ts)
    assert ticket.status == tickets_repo.SKIPPED
    assert ticket.text == text
    # No card, no tag, no reply: not one Slack call for it.
    assert [c.method for c in bot.fake.calls[before:]] == []
    assert bot.fake.posts() == []


@pytest.mark.parametrize(
    "text", ["refund?", "login broken", "can't pay", "hi, my invoice is wrong"]
)
async def test_short_real_requests_are_routed(bot: BotHarness, text: str) -> None:
    ts = await bot.ticket(text)
    assert (await _stored(bot, ts)).status == tickets_repo.ROUTED
    assert len(bot.fake.posts(SUPPORT, threads=True)) == 1  # the reply


async def test_the_emoji_on_the_ticket_withdraws_card_tag_and_reply_and_stores_an_example(
    bot: BotHarness,
) -> None:
    ts = await bot.ticket("my invoice is wrong, please check")
    (card,) = bot.fake.live_messages(BILLING)
    assert bot.fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    (reply,) = bot.fake.live_messages(SUPPORT)  # the thread reply
    assert reply["thread_ts"] == ts

    await _react(bot, "U0AGENT", SUPPORT, ts)

    assert bot.fake.called("chat.delete", channel=BILLING, ts=card["ts"])
    assert bot.fake.live_messages(BILLING) == []
    assert bot.fake.reactions_on(SUPPORT, ts) == {}
    assert bot.fake.live_messages(SUPPORT) == []
    assert (await _stored(bot, ts)).status == tickets_repo.NOT_REQUEST
    assert await _feedback(bot) == [
        ("my invoice is wrong, please check", False, "U0AGENT", "reaction")
    ]


async def test_the_emoji_on_the_card_withdraws_it_too(bot: BotHarness) -> None:
    ts = await bot.ticket("The app crashes with an error")
    (card,) = bot.fake.live_messages(TECHNICAL)
    await _react(bot, "U0BOSS", TECHNICAL, card["ts"])
    assert bot.fake.live_messages(TECHNICAL) == []
    assert (await _stored(bot, ts)).status == tickets_repo.NOT_REQUEST
    assert [user for _t, _r, user, _v in await _feedback(bot)] == ["U0BOSS"]


async def test_a_non_agent_cannot_withdraw_a_ticket(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    ts = await bot.ticket("The app crashes with an error", user="U0ALICE")
    with caplog.at_level(logging.INFO, logger="bot.request_feedback"):
        await _react(bot, "U0ALICE", SUPPORT, ts)  # the author, no agent
        await _react(bot, "U0MALLORY", SUPPORT, ts)
    assert "by U0ALICE refused: the ticket's own author" in caplog.text
    assert "by U0MALLORY refused: not an agent" in caplog.text
    assert len(bot.fake.live_messages(TECHNICAL)) == 1
    assert (await _stored(bot, ts)).status == tickets_repo.ROUTED
    assert await _feedback(bot) == []


async def test_removing_the_emoji_routes_the_ticket_again(bot: BotHarness) -> None:
    ts = await bot.ticket("The app crashes with an error")
    await _react(bot, "U0AGENT", SUPPORT, ts)
    assert bot.fake.live_messages(TECHNICAL) == []
    await _react(bot, "U0BOSS", SUPPORT, ts, added=False)  # not theirs to take back
    assert bot.fake.live_messages(TECHNICAL) == []

    await _react(bot, "U0AGENT", SUPPORT, ts, added=False)

    assert len(bot.fake.live_messages(TECHNICAL)) == 1
    assert bot.fake.reactions_on(SUPPORT, ts) == {"wrench": {BOT_USER_ID}}
    assert (await _stored(bot, ts)).status == tickets_repo.ROUTED
    assert await _feedback(bot) == []


async def test_the_emoji_on_a_message_that_is_no_ticket_is_ignored(bot: BotHarness) -> None:
    await _react(bot, "U0AGENT", SUPPORT, "1700000000.000100")
    assert await _feedback(bot) == []
    assert bot.fake.called("chat.delete") == []


async def test_a_skipped_message_sent_to_triage_is_routed_and_teaches_the_filter(
    bot: BotHarness,
) -> None:
    ts = await bot.ticket("thanks!")
    ticket = await _stored(bot, ts)
    assert ticket.status == tickets_repo.SKIPPED

    outcome = await bot.svc.requests.send_to_triage(ticket, "U0AGENT")
    await bot.drain()

    assert outcome is FeedbackOutcome.SENT_TO_TRIAGE
    assert (await _stored(bot, ts)).status == tickets_repo.ROUTED
    assert len(bot.fake.posts(SUPPORT, threads=True)) == 1
    assert await _feedback(bot) == [("thanks!", True, "U0AGENT", "shortcut")]


async def test_an_edit_that_makes_a_skipped_message_a_request_routes_it(
    bot: BotHarness,
) -> None:
    ts = await bot.ticket("hi")
    await bot.send.event(_edit(ts, "hi", "hi, thanks :pray:"))
    await bot.drain()
    ticket = await _stored(bot, ts)
    assert (ticket.status, ticket.text) == (tickets_repo.SKIPPED, "hi, thanks :pray:")

    await bot.send.event(_edit(ts, "hi", "hi, my invoice shows the wrong VAT rate"))
    await bot.drain()
    assert (await _stored(bot, ts)).status == tickets_repo.ROUTED
    assert len(bot.fake.live_messages(BILLING)) == 1


async def test_feedback_refits_the_filter_on_its_next_look(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    clock = FakeClock()
    bot = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, clock=clock)
    await bot.start()
    try:
        requests = bot.svc.requests
        text = "standup moved to 10:30 today"
        await requests.wait_ready()  # fitted after start-up, not before it
        first = requests.current
        assert first is not None
        before = first.score(text)
        ts = await bot.ticket(text)
        await _react(bot, "U0AGENT", SUPPORT, ts)
        assert requests.current is first  # not before the next look

        await clock.advance(bot.settings.request_filter_refit_seconds)
        assert requests.last_look is not None
        assert await requests.last_look is True

        refitted = requests.current
        assert refitted is not None
        assert refitted is not first
        assert refitted.examples == first.examples + 1
        assert refitted.score(text) > before
        # Nothing new: the next look does not fit again.
        await clock.advance(bot.settings.request_filter_refit_seconds)
        assert await requests.last_look is False
    finally:
        await bot.stop()


async def test_start_up_does_not_wait_for_the_filter_and_the_next_start_loads_it_saved(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    cache = tmp_path / "cache"
    # A seed no other test fits with: this process has no fit of it to share.
    bot = BotHarness(
        fake_slack, tmp_path / "triage.db", taxonomy, seed=4242, vector_cache_dir=cache
    )
    await bot.start()
    try:
        assert bot.svc.requests.current is None  # serving already; the fit runs after
        ts = await bot.ticket("thanks!")  # judged once the fit is done: not routed
        assert (await _stored(bot, ts)).status == tickets_repo.SKIPPED
        assert bot.svc.requests.origin == "fitted"
        assert len(list(cache.glob("request-filter-*.npz"))) == 1

        await bot.restart()
        await bot.svc.requests.wait_ready()
        assert bot.svc.requests.origin == "saved"  # the same examples: loaded, not fitted
        ts = await bot.ticket("ok, thanks")
        assert (await _stored(bot, ts)).status == tickets_repo.SKIPPED
    finally:
        await bot.stop()


async def test_a_withdrawal_cut_short_finishes_after_a_restart_and_the_filter_keeps_the_word(
    bot: BotHarness,
) -> None:
    ts = await bot.ticket("The app crashes with an error")
    await bot.svc.requests.wait_ready()
    shipped = bot.svc.requests.current
    assert shipped is not None
    bot.fake.fail("chat.delete", error="internal_error", status=500, times=None)
    status, _ = await bot.send.event(reaction_event(True, "U0AGENT", NOT_A_TICKET, SUPPORT, ts))
    assert status == 200
    # The router tried to delete the card and Slack failed: the bot stops as in a crash.
    await bot.fake.wait_for(lambda: any(c.method == "chat.delete" for c in bot.fake.calls))
    assert len(bot.fake.live_messages(TECHNICAL)) == 1

    await bot.stop()
    bot.fake.clear_failures()
    await bot.start()
    await bot.drain()

    assert bot.fake.live_messages(TECHNICAL) == []
    assert bot.fake.reactions_on(SUPPORT, ts) == {}
    assert (await _stored(bot, ts)).status == tickets_repo.NOT_REQUEST
    await bot.svc.requests.wait_ready()
    restarted = bot.svc.requests.current
    assert restarted is not None
    assert restarted.examples == shipped.examples + 1


async def test_with_the_filter_off_every_message_is_routed(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    bot = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, request_filter=False)
    await bot.start()
    try:
        ts = await bot.ticket("thanks!")
        assert (await _stored(bot, ts)).status == tickets_repo.ROUTED
        assert "request-filter" not in bot.runtime.supervisor.running  # type: ignore[union-attr]
    finally:
        await bot.stop()


@pytest.fixture
async def clashing(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(
        fake_slack, tmp_path / "triage.db", taxonomy, not_a_ticket_emoji="moneybag"
    )
    yield harness
    await harness.stop()


async def test_a_department_emoji_cannot_be_the_not_a_ticket_emoji(
    clashing: BotHarness,
) -> None:
    with pytest.raises(SettingsError, match="TRIAGE_NOT_A_TICKET_EMOJI: :moneybag: is the Billing"):
        await clashing.start()


def test_the_emoji_setting_takes_a_name_with_or_without_colons() -> None:
    from admin.settings import load_settings

    assert load_settings(not_a_ticket_emoji=":x:").not_a_ticket_emoji == "x"
    with pytest.raises(SettingsError, match="TRIAGE_NOT_A_TICKET_EMOJI: must be an emoji name"):
        load_settings(not_a_ticket_emoji="no entry")


async def test_the_triage_channel_agents_are_who_may_mark(bot: BotHarness) -> None:
    # The agents of the harness are the triage channel's members.
    assert set(bot.fake.members[TRIAGE]) == {"U0AGENT", "U0BOSS"}
    ts = await bot.ticket("The app crashes with an error")
    ticket = await _stored(bot, ts)
    await _react(bot, "U0AGENT", SUPPORT, ts)
    await _react(bot, "U0AGENT", SUPPORT, ts)  # a second time: nothing more
    assert len(await _feedback(bot)) == 1
    assert (await _stored(bot, ts)).id == ticket.id
    assert len(bot.fake.called("chat.delete", channel=TECHNICAL)) == 1


def _edit(ts: str, old: str, new: str) -> dict[str, object]:
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": SUPPORT,
        "ts": f"{ts}9",
        "event_ts": f"{ts}9",
        "message": {
            "type": "message",
            "user": "U0ALICE",
            "text": new,
            "ts": ts,
            "edited": {"user": "U0ALICE", "ts": f"{ts}9"},
        },
        "previous_message": {"type": "message", "user": "U0ALICE", "text": old, "ts": ts},
    }
