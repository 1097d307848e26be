"""Start-up after the taxonomy changed: a model for exactly the new departments, announced."""

from __future__ import annotations

from pathlib import Path

from admin.settings import Settings
from admin.startup_model import stored_labels
from bot.runtime import open_runtime
from data import DEFAULT_TAXONOMY
from data.db import model_registry as registry
from tests.bot.conftest import SIGNING_SECRET, SUPPORT
from tests.fakes.slack_api import FakeSlack

ADMIN = "C0ADMINS"

SECURITY = """
[[department]]
name = "Security"
description = "Phishing, suspicious logins, vulnerability reports and leaked credentials."
channel = "C0SECURITY"
emoji = "lock"
examples = ["I got a phishing email pretending to be you", "someone logged in from Brazil"]
"""


def _settings(fake: FakeSlack, tmp_path: Path, taxonomy: Path) -> Settings:
    return Settings(
        slack_bot_token=fake.token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake.url,
        support_channels=(SUPPORT,),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        learner="tfidf",
        taxonomy=taxonomy,
        admin_channel=ADMIN,
    )


async def _active_labels(settings: Settings) -> tuple[str, ...] | None:
    async with open_runtime(settings) as runtime, runtime.services.db.transaction() as conn:
        active = await registry.get_active_model(conn)
        assert active is not None
        labels = stored_labels(await registry.get_artefact(conn, active.id))
        assert runtime.services.model.current().labels == labels
        return labels


async def test_a_department_added_then_removed_is_trained_for_at_start_up(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    default = DEFAULT_TAXONOMY.read_text(encoding="utf-8")
    first = _settings(fake_slack, tmp_path, DEFAULT_TAXONOMY)
    assert await _active_labels(first) == ("Technical", "Billing", "Account", "Product", "Other")
    assert fake_slack.posts(ADMIN) == []

    grown = tmp_path / "grown.toml"
    grown.write_text(default + SECURITY, encoding="utf-8")
    labels = await _active_labels(_settings(fake_slack, tmp_path, grown))
    assert labels is not None
    assert "Security" in labels
    (post,) = fake_slack.posts(ADMIN)
    assert "The departments changed since model #1 was trained (added: Security)" in post["text"]

    # "Other" removed: the bot can no longer route there.
    shrunk = tmp_path / "shrunk.toml"
    shrunk.write_text(default[: default.index('[[department]]\nname = "Other"')], encoding="utf-8")
    assert await _active_labels(_settings(fake_slack, tmp_path, shrunk)) == (
        "Technical",
        "Billing",
        "Account",
        "Product",
    )
    assert "removed: Other, Security" in fake_slack.posts(ADMIN)[-1]["text"]
