"""Signed requests that are not what Slack sends, invisible tickets, and a cheap /healthz."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import event

from bot.server import unreadable_body
from data.db import tickets as tickets_repo
from tests.bot.conftest import SUPPORT, BotHarness
from tests.fakes.slack_events import message_event


async def _statuses(bot: BotHarness) -> dict[str, int]:
    async with bot.svc.db.transaction() as conn:
        return await tickets_repo.count_by_status(conn)


@pytest.mark.parametrize(
    "text",
    [
        "\u200b",
        "\u200b\u200c\u200d\u2060\ufeff",
        " \u200b \n\u200e\u200f\t",
        "\u2060" * 500,
        "\u00ad\u180e\u2061\u2062\u2063\u2064",
    ],
)
async def test_a_message_of_only_invisible_characters_is_not_a_ticket(
    bot: BotHarness, text: str
) -> None:
    status, _ = await bot.send.event(message_event(SUPPORT, bot.send.new_ts(), text))
    await bot.drain()
    assert status == 200
    assert await _statuses(bot) == {}
    assert bot.calls_since_start() == []


async def test_an_invisible_edit_leaves_the_ticket_as_it_was(bot: BotHarness) -> None:
    ts = await bot.ticket("I was charged twice, please refund")
    edit = {
        "type": "message",
        "subtype": "message_changed",
        "channel": SUPPORT,
        "ts": bot.send.new_ts(),
        "message": {"type": "message", "user": "U0ALICE", "text": "\u200b\u200b", "ts": ts},
        "previous_message": {"type": "message", "user": "U0ALICE", "text": "x", "ts": ts},
    }
    status, _ = await bot.send.event(edit)
    await bot.drain()
    assert status == 200
    async with bot.svc.db.transaction() as conn:
        ticket = await tickets_repo.find_ticket_by_message(conn, SUPPORT, ts)
    assert ticket is not None
    assert ticket.text == "I was charged twice, please refund"


async def test_a_lone_surrogate_in_a_signed_body_is_a_400(bot: BotHarness) -> None:
    envelope = bot.send.envelope(message_event(SUPPORT, bot.send.new_ts(), "refund \ud800 me"))
    body = json.dumps(envelope)  # the escape "\ud800": ASCII on the wire, as an attacker sends
    assert "\\ud800" in body
    status, _ = await bot.send.post(body, "application/json")
    payload = {"type": "block_actions", "user": {"id": "U0X\udfff"}, "actions": []}
    form = urlencode({"payload": json.dumps(payload)})
    form_status, _ = await bot.send.post(form, "application/x-www-form-urlencoded")
    await bot.drain()
    assert (status, form_status) == (400, 400)
    assert await _statuses(bot) == {}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"type": "event_callback", "event": ', "application/json"),
        ("[1, 2, 3]", "application/json"),
        ("payload=%7Bnot+json", "application/x-www-form-urlencoded"),
    ],
)
async def test_malformed_json_in_a_signed_body_is_a_400(
    bot: BotHarness, body: str, content_type: str
) -> None:
    status, _ = await bot.send.post(body, content_type)
    assert status == 400


def test_unreadable_bodies_are_named() -> None:
    assert unreadable_body(b'{"a": "\xff"}', "application/json") == (
        "not UTF-8 text (or a lone surrogate)"
    )
    form = "application/x-www-form-urlencoded"
    assert unreadable_body(b"command=%2Fretrain&text=%ED%A0%80", form)
    assert unreadable_body(b'{"a": "\\ud83d\\ude00"}', "application/json") is None  # a pair
    assert unreadable_body(b"command=%2Fretrain&text=", form) is None


async def test_healthz_is_cheap_and_minimal(bot: BotHarness) -> None:
    for n in range(5):
        await bot.ticket(f"I was charged twice, please refund ({n})")
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = bot.svc.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert bot.session is not None
        async with bot.session.get(f"{bot.base_url}/healthz") as response:
            body = await response.json()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status == 200
    assert body == {"ok": True, "database": True, "model": True}
    assert len(statements) <= 1  # the ping
    assert not any("tickets" in s.lower() for s in statements)
