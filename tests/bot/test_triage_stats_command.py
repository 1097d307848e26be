"""``/triage stats [days]``: agents and admins get the figures and their picture in the channel;
anyone else a polite refusal; words it does not understand, the usage line."""

from __future__ import annotations

import json
import sys
from urllib.parse import urlencode

import pytest

from tests.bot.conftest import SUPPORT, BotHarness
from tests.fakes.slack_events import command_payload


async def slash(bot: BotHarness, text: str, user: str) -> str:
    body = urlencode(command_payload("/triage", text, user, SUPPORT))
    status, answer = await bot.send.post(body, "application/x-www-form-urlencoded")
    assert status == 200
    return answer


async def test_an_agent_gets_the_figures_and_the_picture(bot: BotHarness) -> None:
    await bot.ticket("I was charged twice, please refund the invoice")
    answer = await slash(bot, "stats 3", "U0AGENT")
    assert answer == "Counting the last 3 days; the figures will appear here shortly."
    fake = bot.fake
    await fake.wait_for(lambda: len(fake.shared_files) == 1)
    message = next(m for m in fake.live_messages(SUPPORT) if "Desk figures" in m["text"])
    blocks = json.dumps(message["blocks"])
    assert "Desk figures, last 3 days" in blocks
    assert "*Billing*" in blocks
    [shared] = fake.shared_files
    assert shared["data"].startswith(b"\x89PNG\r\n\x1a\n")
    assert (shared["channel_id"], shared["thread_ts"]) == (SUPPORT, message["ts"])


async def test_a_requester_is_refused_and_bad_words_get_the_usage(bot: BotHarness) -> None:
    assert await slash(bot, "stats", "U0MALLORY") == (
        "Sorry, the desk figures are for agents and admins."
    )
    for text in ("", "stats lots", "stats 0", "stats 400", "stats 7 extra", "help", "stats ²"):
        assert "Usage: `/triage stats [days]`" in await slash(bot, text, "U0AGENT")
    assert not [m for m in bot.fake.live_messages(SUPPORT) if "Desk figures" in m["text"]]


async def test_a_picture_that_cannot_be_drawn_costs_only_itself(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)  # Pillow cannot be imported: drawing fails
    await bot.ticket("I was charged twice, please refund the invoice")
    await slash(bot, "stats 3", "U0AGENT")
    fake = bot.fake
    await fake.wait_for(lambda: bool(fake.called("chat.postEphemeral")))
    assert [m for m in fake.live_messages(SUPPORT) if "Desk figures" in m["text"]]
    assert fake.shared_files == []
    [told] = fake.called("chat.postEphemeral")
    assert told.params["user"] == "U0AGENT"
    assert "desk-3-days.png could not be drawn" in told.params["text"]
