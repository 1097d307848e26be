"""Bad settings stop with one sentence naming the setting; `triage config` shows no secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin.cli import build_app
from admin.settings import SettingsError, load_settings, mask_credentials

app = build_app()


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TRIAGE_OPENAI_PRICES", "{bad", "TRIAGE_OPENAI_PRICES: must be JSON like"),
        ("TRIAGE_OPENAI_PRICES", '{"gpt-4o": [1, "inf"]}', "TRIAGE_OPENAI_PRICES: "),
        ("TRIAGE_DATABASE_URL", "postgresql+asyncpg://u:s3cret@db:notaport/x", "not a database"),
        ("TRIAGE_DATABASE_URL", "nonsense", "TRIAGE_DATABASE_URL: is not a database URL"),
        ("TRIAGE_DATABASE_URL", "mysql://u:s3cret@db/x", "must be a SQLite or PostgreSQL URL"),
        ("TRIAGE_JOB_LEASE_SECONDS", "inf", "TRIAGE_JOB_LEASE_SECONDS: "),
        ("TRIAGE_JOB_LEASE_SECONDS", "nan", "TRIAGE_JOB_LEASE_SECONDS: "),
        ("TRIAGE_OPENAI_TIMEOUT_SECONDS", "Infinity", "TRIAGE_OPENAI_TIMEOUT_SECONDS: "),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"{variable}: ")
    assert says in message
    assert message.endswith(".")
    assert "\n" not in message
    assert "s3cret" not in message  # the value may hold a password: never repeated

    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert says in result.output


def test_valid_values_still_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIAGE_OPENAI_PRICES", '{"gpt-x": [1, 2.5]}')
    monkeypatch.setenv("TRIAGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    monkeypatch.setenv("TRIAGE_JOB_LEASE_SECONDS", "12.5")
    settings = load_settings()
    assert settings.openai_prices == {"gpt-x": (1.0, 2.5)}
    assert settings.job_lease_seconds == 12.5
    pg = load_settings(database_url="postgresql+asyncpg://triage:pw@db:5432/triage")
    assert pg.database_url.endswith("@db:5432/triage")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+asyncpg://triage:s3cret@db:5432/triage",
            "postgresql+asyncpg://triage:***@db:5432/triage",
        ),
        (
            "postgresql+asyncpg://triage@db/triage?sslmode=require&password=s3cret",
            "postgresql+asyncpg://***@db/triage?sslmode=require&password=***",
        ),
        ("https://xoxb-s3cret@slack.example/api/", "https://***@slack.example/api/"),
        ("https://llm.example/v1?api-key=s3cret&x=1", "https://llm.example/v1?api-key=***&x=1"),
        ("https://slack.com/api/", "https://slack.com/api/"),
        (
            "sqlite+aiosqlite:///var/lib/triage/triage.db",
            "sqlite+aiosqlite:///var/lib/triage/triage.db",
        ),
        ("not a url", "not a url"),
    ],
)
def test_credentials_are_masked_in_urls(url: str, shown: str) -> None:
    assert mask_credentials(url) == shown


def test_triage_config_masks_credentials_in_every_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    taxonomy = Path(__file__).parents[2] / "data" / "taxonomy.toml"
    env = {
        "TRIAGE_DATABASE_URL": "postgresql+asyncpg://triage:s3cret-db@db:5432/triage",
        "SLACK_API_URL": "https://user:s3cret-slack@slack.example/api/",
        "OPENAI_BASE_URL": "https://llm.example/v1?api_key=s3cret-llm",
        "SLACK_BOT_TOKEN": "xoxb-s3cret-token",
        "OPENAI_API_KEY": "sk-s3cret-key",
        "TRIAGE_TAXONOMY": str(taxonomy),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert "database_url = postgresql+asyncpg://triage:***@db:5432/triage" in result.output
    assert "slack_api_url = https://user:***@slack.example/api/" in result.output
    assert "openai_base_url = https://llm.example/v1?api_key=***" in result.output
