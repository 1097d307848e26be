"""A ticket end to end: signed event in, tag, thread reply and card out; and what is ignored."""

from __future__ import annotations

import asyncio
import json

from data.db import routings as routings_repo
from data.db import tickets as tickets_repo
from tests.bot.conftest import SUPPORT, TRIAGE, BotHarness
from tests.fakes.slack_api import BOT_ID, BOT_USER_ID
from tests.fakes.slack_events import message_event

BILLING = "C0BILLING"


async def _tickets(bot: BotHarness) -> dict[str, int]:
    async with bot.svc.db.transaction() as conn:
        return await tickets_repo.count_by_status(conn)


async def test_a_ticket_is_tagged_replied_to_and_routed(bot: BotHarness) -> None:
    ts = await bot.ticket("I was charged twice, please refund the second payment")

    fake = bot.fake
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    (reply,) = fake.posts(SUPPORT, threads=True)
    assert reply["thread_ts"] == ts
    assert "Routed to *Billing*" in reply["text"]
    assert f"<#{BILLING}>" in reply["text"]
    assert ":wrench: Technical" in reply["text"]  # how to correct
    (card,) = fake.posts(BILLING)
    blocks = json.dumps(card["blocks"])
    assert "charged twice" in blocks
    assert "<@U0ALICE>" in blocks
    assert f"https://fake-workspace.slack.com/archives/{SUPPORT}/p{ts.replace('.', '')}" in blocks
    assert "runner-ups" in blocks  # the two runner-ups with their confidence
    # Confident: no department buttons; the desk's Take it and Resolve only.
    (actions,) = [b for b in card["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [
        "triage_desk:take",
        "triage_desk:resolve",
    ]
    assert "*Status:* Open" in blocks
    assert fake.called("chat.getPermalink", channel=SUPPORT, message_ts=ts)
    assert await _tickets(bot) == {"routed": 1}
    async with bot.svc.db.transaction() as conn:
        (ticket_id,) = [
            t.id for t in [await tickets_repo.find_ticket_by_message(conn, SUPPORT, ts)] if t
        ]
        prediction = await tickets_repo.latest_prediction(conn, ticket_id)
        records = await routings_repo.routings_for(conn, ticket_id)
    assert prediction is not None
    assert (prediction.label, prediction.model_id) == ("Billing", "keywords-test")
    assert sorted(r.kind for r in records) == ["card", "reply", "tag"]


async def test_the_card_is_posted_first_and_the_ack_does_not_wait_for_slack(
    bot: BotHarness,
) -> None:
    # Slack does not answer the ticket's first call until released: the ack must not wait.
    bot.fake.hold("chat.getPermalink")
    ts = bot.send.new_ts()
    async with asyncio.timeout(30):  # a bound on a failure; the ack comes at once
        status, _ = await bot.send.event(message_event(SUPPORT, ts, "the app shows an error"))
    assert status == 200
    assert bot.calls_since_start() == []  # not one Slack call answered yet
    bot.fake.release()
    await bot.drain()
    methods = bot.calls_since_start()
    assert methods == ["chat.getPermalink", "chat.postMessage", "reactions.add", "chat.postMessage"]


async def test_a_retried_event_is_a_no_op(bot: BotHarness) -> None:
    envelope = bot.send.envelope(message_event(SUPPORT, "1700000999.000100", "refund please"))
    status, _ = await bot.send.post(json.dumps(envelope), "application/json")
    status_retry, _ = await bot.send.envelope_again(envelope, retry_num=1)
    await bot.drain()
    status_again, _ = await bot.send.envelope_again(envelope, retry_num=2)
    await bot.drain()
    assert (status, status_retry, status_again) == (200, 200, 200)
    assert len(bot.fake.posts(BILLING)) == 1
    assert len(bot.fake.posts(SUPPORT, threads=True)) == 1
    assert await _tickets(bot) == {"routed": 1}


async def test_messages_that_are_not_tickets_are_ignored(bot: BotHarness) -> None:
    send = bot.send
    parent = send.new_ts()
    events = [
        # another bot, and the bot itself
        message_event(SUPPORT, send.new_ts(), "refund", bot_id="B0OTHER", subtype="bot_message"),
        message_event(SUPPORT, send.new_ts(), "refund", user=BOT_USER_ID, bot_id=BOT_ID),
        # a thread reply, a join, a delete
        message_event(SUPPORT, send.new_ts(), "refund", thread_ts=parent),
        message_event(SUPPORT, send.new_ts(), "<@U0BOB> has joined", subtype="channel_join"),
        {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": SUPPORT,
            "ts": send.new_ts(),
            "deleted_ts": parent,
        },
        # a channel that is not a support channel
        message_event("C0RANDOM", send.new_ts(), "refund my invoice"),
        # empty, whitespace and files-only
        message_event(SUPPORT, send.new_ts(), ""),
        message_event(SUPPORT, send.new_ts(), "   \n\t "),
        message_event(
            SUPPORT, send.new_ts(), "", subtype="file_share", files=[{"id": "F1", "name": "a.png"}]
        ),
    ]
    for event in events:
        status, _ = await send.event(event)
        assert status == 200
    await bot.drain()
    assert await _tickets(bot) == {}
    assert bot.calls_since_start() == []


async def test_a_bad_signature_is_rejected_and_nothing_is_stored(bot: BotHarness) -> None:
    event = message_event(SUPPORT, bot.send.new_ts(), "refund please")
    status, _ = await bot.send.event(event, secret="not-the-signing-secret")
    stale, _ = await bot.send.post(
        json.dumps(bot.send.envelope(event)), "application/json", timestamp=1_000_000_000
    )
    await bot.drain()
    assert (status, stale) == (401, 401)
    assert await _tickets(bot) == {}
    assert bot.calls_since_start() == []


async def test_a_low_confidence_ticket_goes_to_triage_with_buttons(bot: BotHarness) -> None:
    ts = await bot.ticket("hello, something is odd with my thing")
    assert bot.fake.posts("C0OTHER") == []
    (card,) = bot.fake.posts(TRIAGE)
    (actions,) = [b for b in card["blocks"] if str(b.get("block_id")).startswith("triage_route_")]
    assert [e["action_id"] for e in actions["elements"]] == [
        f"triage_route:{d.name}" for d in bot.taxonomy
    ]
    (reply,) = bot.fake.posts(SUPPORT, threads=True)
    assert "not sure" in reply["text"]
    assert f"<#{TRIAGE}>" in reply["text"]
    assert bot.fake.reactions_on(SUPPORT, ts) == {"question": {BOT_USER_ID}}


async def test_shadow_mode_classifies_without_posting(fake_slack, tmp_path, taxonomy) -> None:  # type: ignore[no-untyped-def]
    harness = BotHarness(fake_slack, tmp_path / "shadow.db", taxonomy, shadow_mode=True)
    await harness.start()
    try:
        await harness.ticket("refund my invoice")
        assert harness.calls_since_start() == []
        assert await _tickets(harness) == {"shadowed": 1}
        async with harness.svc.db.transaction() as conn:
            prediction = await tickets_repo.latest_prediction(conn, 1)
        assert prediction is not None
        assert prediction.label == "Billing"
    finally:
        await harness.stop()


async def test_healthz_says_what_is_up_and_nothing_more(bot: BotHarness) -> None:
    await bot.ticket("I was charged twice")
    assert bot.session is not None
    async with bot.session.get(f"{bot.base_url}/healthz") as response:
        body = await response.json()
    assert response.status == 200
    # The public port tells a load balancer what is up: no model, no queue, no ticket figures.
    assert body == {"ok": True, "database": True, "model": True}
