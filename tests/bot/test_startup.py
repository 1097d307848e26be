"""Start-up as ``triage serve`` does it: settings checked, auth.test, first model, resume."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from typer.testing import CliRunner

from admin.learner_setup import learner_context
from admin.settings import Settings
from bot.cli import build_app
from bot.errors import PermanentSlackError
from bot.runtime import open_runtime
from bot.server import EVENTS_PATH, create_web_app
from classifier.learners import get_learner
from classifier.taxonomy import load_taxonomy
from data import DEFAULT_TAXONOMY
from data.db import model_registry as registry
from data.db import tickets as tickets_repo
from data.db.database import Database
from tests.bot.conftest import SIGNING_SECRET, SUPPORT
from tests.fakes.openai_api import API_KEY, FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_events import SlackSender, message_event

cli_app = build_app()


#: The loggers configure_logging sets the level of.


def _settings(fake: FakeSlack, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "slack_bot_token": fake.token,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.url,
        "support_channels": (SUPPORT,),
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "group_seconds": 0,  # routed at once, not when a conversation closes
        "learner": "tfidf",
    }
    return Settings(**{**values, **overrides})


async def test_first_start_trains_stores_and_serves_the_starter_model(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    settings = _settings(fake_slack, tmp_path)
    async with open_runtime(settings) as runtime:
        app, services = runtime.app, runtime.services
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
            async with services.db.transaction() as conn:
                statuses = await tickets_repo.count_by_status(conn)
        finally:
            await runner.cleanup()
    assert health["ok"] is True
    assert statuses == {"routed": 1}
    assert len(fake_slack.posts()) == 2  # the card and the thread reply

    # A second start reuses the stored model instead of training again.
    async with open_runtime(settings) as runtime, runtime.services.db.transaction() as conn:
        assert await registry.count_models(conn) == 1
    assert [c.method for c in fake_slack.calls].count("auth.test") == 2


async def test_a_rejected_token_stops_start_up_before_training(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    settings = _settings(fake_slack, tmp_path, slack_bot_token="xoxb-revoked")
    with pytest.raises(PermanentSlackError) as caught:
        async with open_runtime(settings):
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


async def test_an_active_prompted_model_answers_through_the_configured_endpoint(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    fake_openai = FakeOpenAI()
    await fake_openai.start()
    try:
        settings = _settings(
            fake_slack,
            tmp_path,
            openai_api_key=API_KEY,
            openai_base_url=fake_openai.base_url,
            openai_timeout_seconds=5.0,
        )
        taxonomy = load_taxonomy(settings.taxonomy)
        context = learner_context(settings, taxonomy)
        prompted = await get_learner("openai", context).train([], taxonomy.labels)
        assert context.openai is not None
        await context.openai.aclose()
        db = Database(settings.database_url)
        await db.start()
        async with db.transaction() as conn:
            await registry.save_model(
                conn,
                model_id=prompted.model_id,
                learner="openai",
                artefact=prompted.to_bytes(),
                data_hash="none",
                counts={},
                metrics={},
                status=registry.ACTIVE,
            )
        await db.close()

        # The bot loads the stored prompted model with its own client, so tickets reach the
        # configured endpoint.
        async with open_runtime(settings) as runtime:
            services = runtime.services
            assert str(services.model.status()["model_id"]).startswith("openai:")
            predictions = await services.model.current().predict(["I want a refund"])
        assert predictions[0].label == "Billing"
        assert fake_openai.requests_to("POST", "/v1/chat/completions")
    finally:
        await fake_openai.stop()


def test_serve_refuses_business_hours_in_an_unknown_time_zone(tmp_path: Path) -> None:
    taxonomy = tmp_path / "taxonomy.toml"
    taxonomy.write_text(
        DEFAULT_TAXONOMY.read_text().replace(
            'emoji = "moneybag"',
            'emoji = "moneybag"\nfirst_response_minutes = 30\n'
            'hours = "Mon-Fri 09:00-18:00 Europe/Atlantis"',
        )
    )
    result = CliRunner().invoke(
        cli_app,
        ["serve"],
        env={
            "SLACK_BOT_TOKEN": "xoxb-not-used",
            "SLACK_SIGNING_SECRET": "shh",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",  # nothing listens: never contacted
            "TRIAGE_SUPPORT_CHANNELS": "C1",
            "TRIAGE_TAXONOMY": str(taxonomy),
            "TRIAGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        },
    )
    assert result.exit_code == 2, result.output
    assert "(Billing): unknown time zone 'Europe/Atlantis'" in result.output
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened
