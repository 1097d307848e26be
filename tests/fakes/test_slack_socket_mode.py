"""The fake Socket Mode itself, spoken to as a raw WebSocket client would (no SDK in between).

The bot's tests use the SDK's client, which hides what went over the wire; these pin the wire:
which token apps.connections.open takes, the hello, the envelope fields and what counts as an ack.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_socket_mode import APP_ID, APP_TOKEN


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


async def _open(session: aiohttp.ClientSession, fake: FakeSlack, token: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{fake.url}apps.connections.open", headers=headers) as response:
        assert response.status == 200
        body: dict[str, object] = await response.json()
        return body


async def test_apps_connections_open_takes_only_the_app_level_token(fake: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        assert await _open(session, fake, fake.token) == {
            "ok": False,
            "error": "not_allowed_token_type",
        }
        assert await _open(session, fake, "xapp-1-A0APP-1-other") == {
            "ok": False,
            "error": "invalid_auth",
        }
        opened = await _open(session, fake, APP_TOKEN)
        # ... and the app-level token opens nothing else.
        headers = {"Authorization": f"Bearer {APP_TOKEN}"}
        async with session.post(f"{fake.url}auth.test", headers=headers) as response:
            assert await response.json() == {"ok": False, "error": "not_allowed_token_type"}
    assert opened["ok"] is True
    url = str(opened["url"])
    assert url.startswith(f"ws://127.0.0.1:{fake.port}/link/?ticket=")
    assert url.endswith(f"&app_id={APP_ID}")
    assert [c.ok for c in fake.calls] == [False, False, True, False]


async def test_a_connection_says_hello_and_records_acks(fake: FakeSlack) -> None:
    socket_mode = fake.socket_mode
    async with aiohttp.ClientSession() as session:
        url = str((await _open(session, fake, APP_TOKEN))["url"])
        async with session.ws_connect(url) as ws:
            hello = json.loads((await ws.receive()).data)
            envelope_id = await socket_mode.deliver({"type": "event_callback"}, retry_attempt=1)
            envelope = json.loads((await ws.receive()).data)
            await ws.send_str(json.dumps({"envelope_id": envelope_id}))
            await ws.send_str(json.dumps({"type": "not an ack"}))
            command_id = await socket_mode.deliver({"command": "/retrain"}, "slash_commands")
            command = json.loads((await ws.receive()).data)
            await ws.send_str(json.dumps({"envelope_id": command_id, "payload": {"text": "no"}}))
            ack = await socket_mode.wait_for_ack(command_id, within=5)
            await socket_mode.disconnect()
            disconnect = json.loads((await ws.receive()).data)

        await socket_mode.wait_until(lambda: not socket_mode.connections[0].open, within=5)
        # A URL opens one connection only.
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)

    assert hello == {
        "type": "hello",
        "num_connections": 1,
        "debug_info": {
            "host": "applink-fake",
            "build_number": 1,
            "approximate_connection_time": 18060,
        },
        "connection_info": {"app_id": APP_ID},
    }
    assert envelope == {
        "envelope_id": envelope_id,
        "payload": {"type": "event_callback"},
        "type": "events_api",
        "accepts_response_payload": False,
        "retry_attempt": 1,
        "retry_reason": "timeout",
    }
    assert command["accepts_response_payload"] is True
    assert "retry_attempt" not in command
    assert [(a.envelope_id, a.payload) for a in socket_mode.acks] == [
        (envelope_id, None),
        (command_id, {"text": "no"}),
    ]
    assert ack.connection == 1
    assert socket_mode.connections[0].stray == ['{"type": "not an ack"}']
    assert disconnect["type"] == "disconnect"
    assert disconnect["reason"] == "refresh_requested"
