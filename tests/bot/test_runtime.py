"""The one runtime: what it starts, and that closing it stops and closes everything."""

from __future__ import annotations

from pathlib import Path

from classifier.taxonomy import Taxonomy
from tests.bot.conftest import BotHarness
from tests.fakes.slack_api import FakeSlack


async def test_the_runtime_supervises_every_background_task_and_closes_what_it_opened(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    bot = BotHarness(fake_slack, tmp_path / "triage.db", taxonomy)
    await bot.start()
    runtime = bot.runtime
    assert runtime is not None
    services = runtime.services
    assert runtime.supervisor.running == [
        "group-commit",
        "ticket-workers",
        "inbox",
        "requeue-watcher",
        "registry-follower",
        "retrain-follower",
        "people-refresher",
        "request-filter",
        "conversation-closer",
        "triage-threshold",  # TRIAGE_ADAPTIVE_THRESHOLD; auto-retrain is off in the harness
        "desk-sync",  # the Slack side of desk changes cut short (bot/desk.py)
    ]
    # One OpenAI client for the whole process (none here: no key), shared by the admin jobs.
    assert runtime.learners.openai is None
    assert services.commands.ctx is services.jobs.ctx is services.admin
    await bot.ticket("refund my invoice please")
    await bot.stop()
    assert runtime.supervisor.running == []
    assert services.http.closed
