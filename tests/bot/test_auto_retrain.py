"""Automatic retrains: started by the schedule on the runtime's clock, one line in the admin
channel, one at a time across replicas, pausable by admins for every replica."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from admin.auto_retrain import AutoRetrainStarted
from bot.admin_payloads import HOME_AUTO_RETRAIN_ACTION
from bot.auto_retrainer import INTERVAL, AutoRetrainer
from classifier.taxonomy import Taxonomy
from data.db import jobs
from data.db.admin_actions import list_actions
from data.db.corrections import record_correction, sync_training_example
from data.db.tickets import NewTicket, store_ticket
from tests.bot.conftest import SUPPORT, BotHarness
from tests.bot.test_admin_commands import ADMIN, ADMIN_CHANNEL, admin_harness, slash
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import TEAM_ID, FakeSlack


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def auto_bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy, clock: FakeClock
) -> AsyncIterator[BotHarness]:
    harness = admin_harness(fake_slack, tmp_path, taxonomy, clock=clock, auto_retrain=True)
    await harness.start()
    yield harness
    await harness.stop()


async def _check(
    bot: BotHarness, retrainer: AutoRetrainer | None = None
) -> AutoRetrainStarted | None:
    """One look of the automatic retrainer; waits for the retrain it started to end."""
    retrainer = retrainer or bot.svc.auto_retrainer
    started = await retrainer.check()
    if started is not None:
        assert retrainer.last_run is not None
        await retrainer.last_run
    return started


async def _corrections(bot: BotHarness, count: int, start: int = 0) -> None:
    """``count`` tickets corrected to Account now, through the correction rows the bot writes."""
    async with bot.svc.db.transaction() as conn:
        for n in range(start, start + count):
            text = f"okta sso sign in broken {n}"
            new = NewTicket(TEAM_ID, SUPPORT, f"{n}.0001", "U9", text)
            ticket, _ = await store_ticket(conn, new)
            await record_correction(
                conn,
                ticket.id,
                user="U0AGENT",
                from_label="Technical",
                to_label="Account",
                via="reaction",
            )
            await sync_training_example(conn, ticket.id, text)


def _lines(fake: FakeSlack) -> list[str]:
    return [str(m["text"]) for m in fake.posts(ADMIN_CHANNEL, threads=False)]


async def test_corrections_start_a_retrain_by_themselves_at_5_then_10(
    auto_bot: BotHarness,
) -> None:
    await _corrections(auto_bot, 4)
    assert await _check(auto_bot) is None

    await _corrections(auto_bot, 1, start=4)
    started = await _check(auto_bot)
    assert started is not None
    assert started.reason == "5 new corrections (retrain at 5)"
    (line,) = _lines(auto_bot.fake)
    assert line.startswith(
        "Automatic retrain #1 (5 new corrections (retrain at 5)): promoted model #1."
    )
    async with auto_bot.svc.db.transaction() as conn:
        (job,) = await jobs.list_jobs(conn)
    assert (job.created_by, job.status) == ("auto", jobs.SUCCEEDED)
    assert auto_bot.svc.model.status().get("registry_id") == 1

    # Counted from that retrain: nothing is due until the tenth correction.
    await _corrections(auto_bot, 4, start=5)
    assert await _check(auto_bot) is None
    await _corrections(auto_bot, 1, start=9)
    again = await _check(auto_bot)
    assert again is not None
    assert again.reason == "5 new corrections (retrain at 10)"
    assert _lines(auto_bot.fake)[-1].startswith(
        "Automatic retrain #2 (5 new corrections (retrain at 10)): promoted model #2."
    )
    # App Home shows the learning curve: each model's accuracy on its holdout.
    await auto_bot.svc.home.opened(ADMIN)
    home = json.dumps(auto_bot.fake.home_views[ADMIN], ensure_ascii=False)
    assert "*Learning curve* (accuracy on the holdout): #1 " in home
    assert " → #2 " in home


async def test_the_runtime_retrains_waiting_corrections_after_a_day_on_its_clock(
    auto_bot: BotHarness, clock: FakeClock
) -> None:
    await _corrections(auto_bot, 5)
    assert await _check(auto_bot) is not None
    await _corrections(auto_bot, 2, start=5)

    # The supervisor's task looks every INTERVAL seconds of the runtime's clock. Each step
    # waits until the task sleeps on the clock before time moves (a look still running when
    # time jumped would start its sleep after the jump and miss it: seen under load), and
    # until it has slept again after its look at the new time.
    assert auto_bot.runtime is not None
    assert "auto-retrain" in auto_bot.runtime.supervisor.running
    await clock.advance_and_settle(timedelta(hours=23).total_seconds(), "auto-retrain")
    await clock.advance_and_settle(INTERVAL, "auto-retrain")
    assert len(_lines(auto_bot.fake)) == 1
    await clock.advance_and_settle(timedelta(hours=1).total_seconds(), "auto-retrain")
    await auto_bot.fake.wait_for(lambda: len(_lines(auto_bot.fake)) == 2)
    assert _lines(auto_bot.fake)[-1].startswith(
        "Automatic retrain #2 (2 corrections waiting for a day):"
    )
    async with auto_bot.svc.db.transaction() as conn:
        assert [j.created_by for j in await jobs.list_jobs(conn)] == ["auto", "auto"]


async def test_admins_pause_and_resume_automatic_retrains_for_every_replica(
    auto_bot: BotHarness, clock: FakeClock
) -> None:
    svc = auto_bot.svc
    other_replica = AutoRetrainer(svc.admin, svc.slack, clock, svc.jobs)
    await _corrections(auto_bot, 5)
    refused = await slash(auto_bot, "/retrain", "auto off", "U0MALLORY")
    assert refused.startswith("Sorry, only triage admins")

    answer = await slash(auto_bot, "/retrain", "auto off", ADMIN)
    assert answer.startswith("Automatic retrains are paused for every replica")
    assert await _check(auto_bot) is None
    assert await _check(auto_bot, other_replica) is None

    await svc.home.opened(ADMIN)
    assert "Resume automatic retrains" in json.dumps(auto_bot.fake.home_views[ADMIN])
    await _press_switch(auto_bot, ADMIN, "on")
    await auto_bot.fake.wait_for(
        lambda: "Pause automatic retrains" in json.dumps(auto_bot.fake.home_views[ADMIN])
    )
    assert await _check(auto_bot, other_replica) is not None
    async with svc.db.transaction() as conn:
        actions = [(a.user, a.action, a.outcome) for a in await list_actions(conn)]
    assert (ADMIN, "retrain-auto", "off") in actions
    assert (ADMIN, "retrain-auto", "on") in actions
    assert ("U0MALLORY", "retrain", "refused") in actions


async def test_only_one_automatic_retrain_runs_across_replicas(
    auto_bot: BotHarness, clock: FakeClock
) -> None:
    svc = auto_bot.svc
    other_replica = AutoRetrainer(svc.admin, svc.slack, clock, svc.jobs)
    await _corrections(auto_bot, 5)
    first = await svc.auto_retrainer.check()
    second = await other_replica.check()
    assert first is not None
    assert second is None
    assert svc.auto_retrainer.last_run is not None
    await svc.auto_retrainer.last_run
    assert await other_replica.check() is None  # and it is not due again afterwards
    async with svc.db.transaction() as conn:
        assert len(await jobs.list_jobs(conn)) == 1


async def _press_switch(bot: BotHarness, user: str, value: str) -> None:
    status, _ = await bot.send.interaction(
        {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
            "api_app_id": "A0APP",
            "token": "legacy-verification-token",
            "container": {"type": "view", "view_id": "V00000001"},
            "trigger_id": "1234.5678.abcdef",
            "team": {"id": TEAM_ID, "domain": "fake-workspace"},
            "view": {"id": "V00000001", "type": "home"},
            "actions": [
                {
                    "action_id": HOME_AUTO_RETRAIN_ACTION,
                    "block_id": "b",
                    "type": "button",
                    "value": value,
                    "text": {"type": "plain_text", "text": "Press"},
                    "action_ts": "1700000001.000100",
                }
            ],
        }
    )
    assert status == 200
