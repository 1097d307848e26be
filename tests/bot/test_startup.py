"""Start-up as ``triage serve`` does it: settings checked, auth.test, first model, resume."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from typer.testing import CliRunner

from admin.settings import Settings
from bot.cli import app as cli_app
from bot.errors import PermanentSlackError
from bot.server import EVENTS_PATH, create_web_app, started
from data.db import models as registry
from tests.bot.conftest import SIGNING_SECRET, SUPPORT
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_events import SlackSender, message_event


def _settings(fake: FakeSlack, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "slack_bot_token": fake.token,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.url,
        "support_channels": (SUPPORT,),
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "learner": "tfidf",
    }
    return Settings(**{**values, **overrides})


async def test_first_start_trains_stores_and_serves_the_starter_model(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    settings = _settings(fake_slack, tmp_path)
    async with started(settings) as (app, services):
        status = services.model.status()
        assert status["ready"] is True
        assert str(status["model_id"]).startswith("tfidf")
        async with services.db.transaction() as conn:
            active = await registry.get_active_model(conn)
        assert active is not None
        assert (active.id, active.created_by) == (status["registry_id"], "bootstrap")

        runner = web.AppRunner(create_web_app(app, services))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession() as session:
                sender = SlackSender(f"{url}{EVENTS_PATH}", SIGNING_SECRET, session)
                await sender.event(message_event(SUPPORT, "1700000001.000100", "refund me"))
                await services.drain()
                async with session.get(f"{url}/healthz") as response:
                    health = await response.json()
        finally:
            await runner.cleanup()
    assert health["ok"] is True
    assert health["tickets"] == {"routed": 1}
    assert len(fake_slack.posts()) == 2  # the card and the thread reply

    # A second start reuses the stored model instead of training again.
    async with started(settings) as (_app, services), services.db.transaction() as conn:
        assert await registry.count_models(conn) == 1
    assert [c.method for c in fake_slack.calls].count("auth.test") == 2


async def test_a_rejected_token_stops_start_up_before_training(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    settings = _settings(fake_slack, tmp_path, slack_bot_token="xoxb-revoked")
    with pytest.raises(PermanentSlackError) as caught:
        async with started(settings):
            pass
    assert caught.value.error == "invalid_auth"
    assert "reinstall the app" in str(caught.value)
    assert "xoxb-revoked" not in str(caught.value)


def test_serve_without_a_bot_token_names_the_setting(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["serve"],
        env={
            "SLACK_BOT_TOKEN": "",
            "SLACK_SIGNING_SECRET": "shh-do-not-print",
            "TRIAGE_SUPPORT_CHANNELS": "C1",
            "TRIAGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        },
    )
    assert result.exit_code == 2
    assert "SLACK_BOT_TOKEN is not set" in result.output
    assert "shh-do-not-print" not in result.output
