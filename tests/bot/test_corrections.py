"""Corrections by emoji (on the ticket or its card) and by button; undo; what is ignored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from classifier.protocols import Prediction
from classifier.taxonomy import Taxonomy
from data.db import corrections as corrections_repo
from data.db import tickets as tickets_repo
from tests.bot.conftest import SUPPORT, TRIAGE, BotHarness
from tests.bot.keyword_classifier import KeywordClassifier
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.fakes.slack_events import button_payload, message_event, reaction_event

BILLING, TECHNICAL, ACCOUNT = "C0BILLING", "C0TECHNICAL", "C0ACCOUNT"


async def _react(
    bot: BotHarness, added: bool, user: str, emoji: str, channel: str, ts: str
) -> None:
    status, _ = await bot.send.event(reaction_event(added, user, emoji, channel, ts))
    assert status == 200
    await bot.drain()


async def _example(bot: BotHarness, ts: str) -> tuple[str, str] | None:
    async with bot.svc.db.transaction() as conn:
        ticket = await tickets_repo.find_ticket_by_message(conn, SUPPORT, ts)
        assert ticket is not None
        example = await corrections_repo.example_for_ticket(conn, ticket.id)
    return (example.label, example.source) if example else None


async def test_an_emoji_on_the_ticket_moves_it_and_removing_it_undoes(bot: BotHarness) -> None:
    ts = await bot.ticket("The app crashes with an error when I export")
    fake = bot.fake
    (tech_card,) = fake.live_messages(TECHNICAL)

    await _react(bot, True, "U0AGENT", "moneybag", SUPPORT, ts)

    assert fake.live_messages(TECHNICAL) == []
    assert fake.called("chat.delete", channel=TECHNICAL, ts=tech_card["ts"])
    (billing_card,) = fake.live_messages(BILLING)
    assert "chosen by <@U0AGENT>" in str(billing_card["blocks"])
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    replies = fake.posts(SUPPORT, threads=True)
    assert len(replies) == 2
    assert "Moved to *Billing* by <@U0AGENT>" in replies[-1]["text"]
    assert await _example(bot, ts) == ("Billing", "correction")
    async with bot.svc.db.transaction() as conn:
        (correction,) = await corrections_repo.corrections_for(conn, 1)
    assert (correction.user, correction.from_label, correction.to_label, correction.via) == (
        "U0AGENT",
        "Technical",
        "Billing",
        "reaction",
    )

    await _react(bot, False, "U0AGENT", "moneybag", SUPPORT, ts)

    assert len(fake.posts(TECHNICAL)) == 2  # back where the model put it
    assert len(fake.live_messages(TECHNICAL)) == 1
    assert fake.live_messages(BILLING) == []
    assert fake.reactions_on(SUPPORT, ts) == {"wrench": {BOT_USER_ID}}
    assert "Correction undone: back to *Technical*" in fake.posts(SUPPORT, threads=True)[-1]["text"]
    assert await _example(bot, ts) is None


async def test_the_latest_human_label_wins(bot: BotHarness) -> None:
    ts = await bot.ticket("The app crashes with an error")
    await _react(bot, True, "U0AGENT", "moneybag", SUPPORT, ts)
    await _react(bot, True, "U0BOSS", "bust_in_silhouette", SUPPORT, ts)
    assert await _example(bot, ts) == ("Account", "correction")
    assert bot.fake.reactions_on(SUPPORT, ts) == {"bust_in_silhouette": {BOT_USER_ID}}
    # The first agent takes their reaction back: the boss's label still stands.
    await _react(bot, False, "U0AGENT", "moneybag", SUPPORT, ts)
    assert await _example(bot, ts) == ("Account", "correction")
    assert len(bot.fake.posts(ACCOUNT)) == 1


async def test_an_emoji_on_the_card_corrects_the_ticket(bot: BotHarness) -> None:
    ts = await bot.ticket("I need a refund for this invoice")
    (card,) = bot.fake.live_messages(BILLING)
    await _react(bot, True, "U0AGENT", "wrench", BILLING, card["ts"])
    assert await _example(bot, ts) == ("Technical", "correction")
    assert len(bot.fake.posts(TECHNICAL)) == 1
    assert bot.fake.reactions_on(SUPPORT, ts) == {"wrench": {BOT_USER_ID}}


async def test_a_button_on_a_triage_card_routes_the_ticket(bot: BotHarness) -> None:
    ts = await bot.ticket("hello, something odd happened")
    (card,) = bot.fake.live_messages(TRIAGE)
    status, _ = await bot.send.interaction(
        button_payload("U0AGENT", TRIAGE, card["ts"], "triage_route:Billing", "1")
    )
    assert status == 200
    await bot.drain()
    assert len(bot.fake.posts(BILLING)) == 1
    resolved = bot.fake.message(TRIAGE, card["ts"])
    assert resolved is not None
    assert "Sent to *Billing* by <@U0AGENT>" in str(resolved["blocks"])
    assert "actions" not in str(resolved["blocks"])
    assert await _example(bot, ts) == ("Billing", "correction")
    async with bot.svc.db.transaction() as conn:
        (correction,) = await corrections_repo.corrections_for(conn, 1)
    assert correction.via == "button"


async def test_agreeing_with_a_triage_guess_by_button_routes_it(bot: BotHarness) -> None:
    ts = await bot.ticket("hello, something odd happened")  # guessed Other at 30 %
    (card,) = bot.fake.live_messages(TRIAGE)
    await bot.send.interaction(
        button_payload("U0AGENT", TRIAGE, card["ts"], "triage_route:Other", "1")
    )
    await bot.drain()
    assert len(bot.fake.posts("C0OTHER")) == 1
    assert await _example(bot, ts) == ("Other", "correction")


async def test_reactions_that_are_not_corrections_are_ignored(bot: BotHarness) -> None:
    ts = await bot.ticket("I need a refund for this invoice")
    bot.fake.add_user("U0OTHERBOT", is_bot=True)
    before = len(bot.fake.calls)
    await _react(bot, True, "U0AGENT", "thumbsup", SUPPORT, ts)  # not a department
    await _react(bot, True, BOT_USER_ID, "wrench", SUPPORT, ts)  # the bot's own
    await _react(bot, True, "U0OTHERBOT", "wrench", SUPPORT, ts)  # another bot
    await _react(bot, True, "U0AGENT", "wrench", SUPPORT, "1234.5678")  # not a ticket
    await _react(bot, True, "U0AGENT", "moneybag", SUPPORT, ts)  # already Billing
    await _react(bot, False, "U0AGENT", "wrench", SUPPORT, ts)  # nothing to undo
    assert await _example(bot, ts) is None
    assert [c.method for c in bot.fake.calls[before:]] == ["users.info", "users.info"]


async def test_a_skin_tone_reaction_counts_as_its_emoji(bot: BotHarness) -> None:
    ts = await bot.ticket("I need a refund for this invoice")
    await _react(bot, True, "U0AGENT", "wrench::skin-tone-3", SUPPORT, ts)
    assert await _example(bot, ts) == ("Technical", "correction")


class _GatedClassifier(KeywordClassifier):
    """Holds every prediction until the test opens the gate."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        super().__init__(taxonomy)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.entered.set()
        await self.gate.wait()
        return await super().predict(texts)


async def test_a_correction_while_the_ticket_is_being_routed_is_applied(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    harness = BotHarness(fake_slack, tmp_path / "race.db", taxonomy)
    gated = _GatedClassifier(taxonomy)
    harness.classifier = gated
    await harness.start()
    try:
        ts = harness.send.new_ts()
        await harness.send.event(message_event(SUPPORT, ts, "refund my invoice"))
        async with asyncio.timeout(5):
            await gated.entered.wait()
        # The agent corrects it before the bot has even classified it.
        await harness.send.event(reaction_event(True, "U0AGENT", "wrench", SUPPORT, ts))
        gated.gate.set()
        await harness.drain()
        assert len(fake_slack.live_messages(TECHNICAL)) == 1
        assert fake_slack.live_messages(BILLING) == []
        assert fake_slack.reactions_on(SUPPORT, ts) == {"wrench": {BOT_USER_ID}}
        async with harness.svc.db.transaction() as conn:
            assert await tickets_repo.count_by_status(conn) == {"routed": 1}
    finally:
        await harness.stop()


async def test_a_near_duplicate_of_a_corrected_ticket_is_routed_by_the_correction(
    bot: BotHarness,
) -> None:
    first = await bot.ticket("The app crashes with an error when I export my report")
    await _react(bot, True, "U0BOSS", "moneybag", SUPPORT, first)

    # The same customer asks again: the model alone would say Technical again.
    await bot.ticket("the app crashes with an error when I export my report!")
    # Something unrelated is still the model's call.
    await bot.ticket("Please reset my password")

    cards = bot.fake.live_messages(BILLING)
    assert len(cards) == 2
    assert "like #1, corrected by <@U0BOSS>" in str(cards[-1]["blocks"])
    async with bot.svc.db.transaction() as conn:
        again = await tickets_repo.latest_prediction(conn, 2)
        unrelated = await tickets_repo.latest_prediction(conn, 3)
    assert again is not None
    assert (again.label, again.model_id) == ("Billing", "like:1:U0BOSS")
    assert unrelated is not None
    assert unrelated.label == "Account"
    assert not unrelated.model_id.startswith("like:")


async def test_an_undone_correction_no_longer_routes_its_near_duplicates(
    bot: BotHarness,
) -> None:
    first = await bot.ticket("The app crashes with an error when I export my report")
    await _react(bot, True, "U0BOSS", "moneybag", SUPPORT, first)
    await _react(bot, False, "U0BOSS", "moneybag", SUPPORT, first)

    await bot.ticket("the app crashes with an error when I export my report!")

    async with bot.svc.db.transaction() as conn:
        again = await tickets_repo.latest_prediction(conn, 2)
    assert again is not None
    assert (again.label, again.model_id) == ("Technical", "keywords-test")


async def test_the_teams_labelled_tickets_vote_on_a_ticket_like_them(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The vote runs next to sentence embeddings; here with the test model's n-grams, in full
    # from the first labelled ticket.
    monkeypatch.setattr("admin.near_duplicates.vote_weight_for", lambda _learner: 0.6)
    monkeypatch.setattr("admin.near_duplicates.VOTE_FULL_AT", 1)
    first = await bot.ticket("The app crashes with an error when I export my report")
    await _react(bot, True, "U0BOSS", "moneybag", SUPPORT, first)

    # Like it, but not a near-duplicate (n-gram similarity 0.65, under the threshold): the
    # model says Technical (73 %), the correction's vote (60 % of the blend) says Billing.
    await bot.ticket("exporting a report crashes")
    # Nothing labelled is like this one: the model's call.
    await bot.ticket("Please reset my password")

    async with bot.svc.db.transaction() as conn:
        voted = await tickets_repo.latest_prediction(conn, 2)
        unrelated = await tickets_repo.latest_prediction(conn, 3)
    assert voted is not None
    assert (voted.label, voted.model_id) == ("Billing", "keywords-test")
    assert voted.confidence == pytest.approx(0.6 + 0.4 * 0.1 / 1.5)
    assert "corrected by" not in str(bot.fake.live_messages(BILLING)[-1]["blocks"])
    assert unrelated is not None
    assert unrelated.label == "Account"
