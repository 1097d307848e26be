"""Start-up checks of the configured channels (#10 item 7): the shipped sample channel ids stop
start-up with one sentence naming them; every channel the bot is not in is named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.errors import SampleChannelsError, SlackConfigError
from bot.services import sample_channels
from classifier.taxonomy import Taxonomy
from tests.bot.conftest import TRIAGE, BotHarness
from tests.fakes.slack_api import FakeSlack

SAMPLES = ("C0TECHNICAL", "C0BILLING", "C0ACCOUNT", "C0PRODUCT", "C0OTHER")


def _unknown_to_slack(fake: FakeSlack, channels: set[str]) -> None:
    """The workspace has no such channels (what Slack answers for the sample ids)."""
    fake.fail(
        "conversations.info",
        error="channel_not_found",
        times=None,
        when=lambda params: params.get("channel") in channels,
    )


async def test_start_up_refuses_the_sample_channel_ids_naming_them(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    assert sample_channels() == frozenset(SAMPLES)
    _unknown_to_slack(fake_slack, set(SAMPLES))
    bot = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy)
    with pytest.raises(SampleChannelsError) as caught:
        await bot.start()
    await bot.stop()
    message = str(caught.value)
    assert isinstance(caught.value, SlackConfigError)  # `triage serve` prints it, no traceback
    assert all(channel in message for channel in SAMPLES)
    assert "TRIAGE_TAXONOMY" in message
    assert message.count(". ") == 0  # one sentence
    assert message.endswith(".")
    assert not fake_slack.called("chat.postMessage")


async def test_a_missing_channel_that_is_not_a_sample_does_not_stop_start_up(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy, caplog: pytest.LogCaptureFixture
) -> None:
    _unknown_to_slack(fake_slack, {TRIAGE})  # e.g. a private channel the bot was not invited to
    bot = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy)
    with caplog.at_level(logging.ERROR, logger="bot.services"):
        await bot.start()
    try:
        assert bot.svc.queue is not None
        (line,) = [r.getMessage() for r in caplog.records if r.name == "bot.services"]
        assert "not in 1 configured channel(s): C0TRIAGE." in line
    finally:
        await bot.stop()


async def test_start_up_names_every_channel_the_bot_is_not_in(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.outside.update({"C0BILLING", "C0PRODUCT", TRIAGE})
    bot = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy, admin_channel="C0ADMIN")
    fake_slack.outside.add("C0ADMIN")
    with caplog.at_level(logging.ERROR, logger="bot.services"):
        await bot.start()
    try:
        assert sorted(await bot.svc.check_channels()) == sorted(
            ["C0BILLING", "C0PRODUCT", TRIAGE, "C0ADMIN"]
        )
        line = next(r.getMessage() for r in caplog.records if r.name == "bot.services")
        for name in ("#c0billing (C0BILLING)", "#c0product (C0PRODUCT)", "#c0triage (C0TRIAGE)"):
            assert name in line
        assert "#c0admin (C0ADMIN)" in line
        assert line.startswith("The bot is not in 4 configured channel(s)")
    finally:
        await bot.stop()
