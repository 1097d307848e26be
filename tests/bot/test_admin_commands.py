"""/retrain, /evalreport and the App Home, through the real Bolt app and the fake Slack.

The admin jobs use the small test learners of ``tests.admin`` (fast and deterministic); the
bot, its database, its model holder and every Slack call are the real ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.admin_payloads import (
    HOME_REPORT_ACTION,
    HOME_RETRAIN_ACTION,
    HOME_RETRY_FAILED_ACTION,
    RetrainCommand,
)
from bot.services import Intervals
from classifier.learners import get_learner
from classifier.protocols import Learner
from classifier.taxonomy import Taxonomy
from data.clock import Clock
from data.db import jobs
from data.db import model_registry as registry
from data.db import tickets as tickets_repo
from data.db.admin_actions import list_actions
from tests.admin.conftest import add_labelled_ticket
from tests.admin.keyword_learner import BlockingLearner
from tests.bot.conftest import SUPPORT, BotHarness
from tests.fakes.clock import FakeClock
from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack
from tests.fakes.slack_events import command_payload

ADMIN = "U0ADMIN"
ADMIN_CHANNEL = "C0ADMIN"


#: The admin services' loops, shortened for tests (production: seconds).
FAST = Intervals(registry=0.05, jobs=0.05, progress=0.01)


def admin_harness(
    fake: FakeSlack,
    tmp_path: Path,
    taxonomy: Taxonomy,
    learners: dict[str, Learner] | None = None,
    *,
    clock: Clock | None = None,
    intervals: Intervals = FAST,
    **overrides: Any,
) -> BotHarness:
    """A bot whose admin jobs use the test learners (plus ``learners``) and small starter data;
    ``clock``: a FakeClock for the tests that wait for time (default: the real one)."""
    values: dict[str, Any] = {
        "admin_users": (ADMIN,),
        "admin_usergroup": "S0ADMINS",
        "admin_channel": ADMIN_CHANNEL,
    }
    values.update(overrides)
    fake.usergroups.setdefault("S0ADMINS", [])
    return BotHarness(
        fake,
        tmp_path / "triage.db",
        taxonomy,
        learners=learners or {},
        clock=clock,
        intervals=intervals,
        **values,
    )


@pytest.fixture
async def admin_bot(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> AsyncIterator[BotHarness]:
    harness = admin_harness(fake_slack, tmp_path, taxonomy)
    await harness.start()
    yield harness
    await harness.stop()


@asynccontextmanager
async def running(harness: BotHarness) -> AsyncIterator[BotHarness]:
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def slash(bot: BotHarness, command: str, text: str, user: str) -> str:
    """Send a signed slash command (form-encoded, as Slack does); the ephemeral answer."""
    body = urlencode(command_payload(command, text, user, SUPPORT))
    status, answer = await bot.send.post(body, "application/x-www-form-urlencoded")
    assert status == 200
    # Bolt answers ack(text=...) with the bare text; ack(blocks=...) would be JSON.
    return answer


def _board(fake: FakeSlack) -> str:
    """The retrain progress message in the admin channel's thread, as last updated."""
    replies = [m for m in fake.live_messages(ADMIN_CHANNEL) if m.get("thread_ts")]
    return str(replies[-1]["text"]) if replies else ""


async def test_a_non_admin_is_refused_and_nothing_starts(admin_bot: BotHarness) -> None:
    answer = await slash(admin_bot, "/retrain", "", "U0MALLORY")
    assert answer.startswith("Sorry, only triage admins")
    assert "Sorry, only triage admins" in await slash(admin_bot, "/evalreport", "", "U0MALLORY")
    async with admin_bot.svc.db.transaction() as conn:
        assert await jobs.list_jobs(conn) == []
        actions = await list_actions(conn)
    assert [(a.user, a.action, a.outcome) for a in actions] == [
        ("U0MALLORY", "evalreport", "refused"),
        ("U0MALLORY", "retrain", "refused"),
    ]
    assert admin_bot.fake.posts(ADMIN_CHANNEL) == []


async def test_non_ascii_digits_are_refused_and_audited_not_a_500(admin_bot: BotHarness) -> None:
    for user in (ADMIN, "U0MALLORY"):
        assert "Usage: `/evalreport" in await slash(admin_bot, "/evalreport", "²", user)
        assert "generate=N" in await slash(admin_bot, "/retrain", "generate=²", user)
    async with admin_bot.svc.db.transaction() as conn:
        assert await jobs.list_jobs(conn) == []
        actions = await list_actions(conn)
    refused = {(a.user, a.action, a.outcome, a.detail["text"]) for a in actions}
    assert refused == {
        (user, action, "bad-arguments", typed)
        for user in (ADMIN, "U0MALLORY")
        for action, typed in (("evalreport", "²"), ("retrain", "generate=²"))
    }


async def test_retrain_with_corrections_promotes_and_the_next_ticket_uses_the_new_model(
    admin_bot: BotHarness,
) -> None:
    commands = admin_bot.svc.commands
    fake = admin_bot.fake
    fake.usergroups["S0ADMINS"].append("U0GROUPADMIN")
    async with admin_bot.svc.db.transaction() as conn:
        await add_labelled_ticket(conn, "okta sso sign in broken", "Account", holdout=False)
        await add_labelled_ticket(conn, "saml sso via okta fails", "Account", holdout=False)

    answer = await slash(admin_bot, "/retrain", "local", "U0GROUPADMIN")
    assert answer == f"Started retrain #1; progress is in a thread in <#{ADMIN_CHANNEL}>."
    await fake.wait_for(lambda: "*promoted*" in _board(fake))
    (parent,) = fake.posts(ADMIN_CHANNEL, threads=False)
    assert parent["text"] == ":gear: Retrain #1 with *auto* started by <@U0GROUPADMIN>."
    board = _board(fake)
    assert "● Assemble data — 12 training examples" in board
    assert "correction 2, starter 10" in board
    assert "– Generate examples — skipped" in board
    assert "● Evaluate on holdout" in board
    assert "there is no active model yet" in board
    assert fake.called("chat.update", channel=ADMIN_CHANNEL)

    async with admin_bot.svc.db.transaction() as conn:
        active = await registry.get_active_model(conn)
    assert active is not None
    assert admin_bot.svc.model.current().model_id == active.model_id

    ts = await admin_bot.ticket("our okta sso sign in fails")
    async with admin_bot.svc.db.transaction() as conn:
        ticket = await tickets_repo.find_ticket_by_message(conn, SUPPORT, ts)
        assert ticket is not None
        prediction = await tickets_repo.latest_prediction(conn, ticket.id)
    assert prediction is not None
    assert (prediction.label, prediction.model_id) == ("Account", active.model_id)
    assert commands.ctx.owner


async def test_a_worse_candidate_is_kept_out_and_the_thread_says_why(admin_bot: BotHarness) -> None:
    fake = admin_bot.fake
    await slash(admin_bot, "/retrain", "", ADMIN)
    await fake.wait_for(lambda: "*promoted*" in _board(fake))
    model_before = admin_bot.svc.model.current().model_id
    # A learner name the admin jobs know only in tests: it always answers one department.
    outcome_text = await admin_bot.svc.commands.retrain(
        RetrainCommand(user=ADMIN, channel=SUPPORT, learner="constant")
    )
    assert outcome_text.startswith("Started retrain #2")
    await fake.wait_for(lambda: "*kept*" in _board(fake))
    assert "macro-F1 on the starter test set would fall from" in _board(fake)
    assert admin_bot.svc.model.current().model_id == model_before


async def test_a_second_retrain_is_refused_and_cancel_stops_the_first(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    blocking = BlockingLearner()
    async with running(admin_harness(fake_slack, tmp_path, taxonomy, {"auto": blocking})) as bot:
        await _second_retrain_refused_and_cancel(bot, blocking)


async def _second_retrain_refused_and_cancel(
    admin_bot: BotHarness, blocking: BlockingLearner
) -> None:
    fake = admin_bot.fake
    assert (await slash(admin_bot, "/retrain", "", ADMIN)).startswith("Started retrain #1")
    await asyncio.wait_for(blocking.started.wait(), 5)
    second = await slash(admin_bot, "/retrain", "dry-run", ADMIN)
    assert second.startswith("A retrain is already running: job #1 (local), started by U0ADMIN")
    assert "`/retrain cancel`" in second
    assert await slash(admin_bot, "/retrain", "cancel", ADMIN) == (
        "Asked retrain #1 to stop; its thread will say when it has."
    )
    await fake.wait_for(lambda: "*cancelled*" in _board(fake))
    assert "the active model is unchanged" in _board(fake)
    assert await slash(admin_bot, "/retrain", "cancel", ADMIN) == "No retrain is running."
    assert "I don't understand `please`" in await slash(admin_bot, "/retrain", "please", ADMIN)


async def test_evalreport_posts_the_report_and_uploads_the_confusion_matrix_and_learning_curve(
    admin_bot: BotHarness,
) -> None:
    fake = admin_bot.fake
    await slash(admin_bot, "/retrain", "", ADMIN)
    await fake.wait_for(lambda: "*promoted*" in _board(fake))
    await admin_bot.ticket("I was charged twice, please refund")

    answer = await slash(admin_bot, "/evalreport", "", ADMIN)
    assert (
        answer
        == "Building the evaluation report for the active model; it will appear here shortly."
    )
    await fake.wait_for(lambda: len(fake.shared_files) == 2)
    report = next(m for m in fake.live_messages(SUPPORT) if "Evaluation report" in m["text"])
    blocks = json.dumps(report["blocks"])
    assert "on 7 held-out tickets" in blocks
    assert "department" in blocks
    assert "precision" in blocks
    assert "*Live, last 7 days:* 1 tickets, 1 routed" in blocks
    # files_upload_v2: get an upload URL, send the bytes there, complete into the channel.
    url_calls = fake.called("files.getUploadURLExternal")
    assert [c.params["filename"] for c in url_calls] == [
        "confusion-model-1.png",
        "learning-curve-model-1.png",
    ]
    for url_call, shared in zip(url_calls, fake.shared_files, strict=True):
        assert shared["data"] is not None
        assert shared["data"].startswith(b"\x89PNG\r\n\x1a\n")
        assert int(url_call.params["length"]) == len(shared["data"])
        # The pictures go in the report's thread, in the channel where it was asked.
        assert (shared["channel_id"], shared["thread_ts"]) == (SUPPORT, report["ts"])
    assert fake.called("files.completeUploadExternal", channel_id=SUPPORT)


async def test_app_home_shows_the_model_and_gives_admins_buttons(admin_bot: BotHarness) -> None:
    fake = admin_bot.fake
    for user in (ADMIN, "U0AGENT"):
        status, _ = await admin_bot.send.event(
            {
                "type": "app_home_opened",
                "user": user,
                "channel": "D0HOME",
                "tab": "home",
                "event_ts": "1700000000.000100",
            }
        )
        assert status == 200
    await fake.wait_for(lambda: len(fake.home_views) == 2)
    admin_view = json.dumps(fake.home_views[ADMIN])
    assert "Active model:* none yet" in admin_view
    assert HOME_RETRAIN_ACTION in admin_view
    assert HOME_REPORT_ACTION in admin_view
    assert HOME_RETRAIN_ACTION not in json.dumps(fake.home_views["U0AGENT"])

    await _press(admin_bot, ADMIN, HOME_RETRAIN_ACTION)
    await fake.wait_for(lambda: "*promoted*" in _board(fake))
    (dm,) = fake.posts(ADMIN)
    assert dm["text"].startswith("Started retrain #1")
    await fake.wait_for(lambda: "Active model:* #1" in json.dumps(fake.home_views[ADMIN]))
    assert "Recent jobs" in json.dumps(fake.home_views[ADMIN])


async def test_another_replica_picks_up_the_promoted_model_without_a_restart(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    # A real learner here: the replica loads the model with the production loader.
    admin = admin_harness(fake_slack, tmp_path, taxonomy, {"auto": get_learner("tfidf")})
    clock = FakeClock()
    replica = admin_harness(fake_slack, tmp_path, taxonomy, clock=clock)
    async with running(admin) as admin_bot, running(replica):
        assert replica.svc.model.current().model_id == "keywords-test"

        await slash(admin_bot, "/retrain", "", ADMIN)
        await fake_slack.wait_for(lambda: "*promoted*" in _board(fake_slack))
        async with admin_bot.svc.db.transaction() as conn:
            active = await registry.get_active_model(conn)
        assert active is not None
        assert replica.svc.model.current().model_id == "keywords-test"  # not looked yet
        # The replica's registry follower looks again (every few seconds in production).
        await clock.advance_and_settle(FAST.registry, "registry-follower")
        assert replica.svc.model.current().model_id == active.model_id


async def test_a_restarted_bot_resumes_the_retrain_in_the_same_thread(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    from tests.admin.keyword_learner import FakeRemoteService, RemoteJobLearner

    service = FakeRemoteService()
    clock = FakeClock()
    bot = admin_harness(
        fake_slack,
        tmp_path,
        taxonomy,
        {"auto": RemoteJobLearner(service)},
        clock=clock,
        intervals=replace(FAST, progress=0.0),  # progress updates are not throttled here
    )
    await bot.start()
    try:
        await slash(bot, "/retrain", "", ADMIN)
        await service.followed(1)
        assert service.follows == ["ftjob-1"]
        await fake_slack.wait_for(lambda: "ftjob-1" in _board(fake_slack))
        # The process dies mid-retrain (its tasks are cancelled, the job stays running).
        bot.learners = {"auto": RemoteJobLearner(service)}
        await bot.restart()
        # The restarted bot looked for orphans on start: the dead process's lease still ran.
        assert service.follows == ["ftjob-1"]
        # Past the dead process's lease: the follower's next look resumes the retrain.
        await clock.advance_and_settle(
            bot.settings.job_lease_seconds + FAST.jobs, "retrain-follower"
        )
        await service.followed(2)
        await fake_slack.wait_for(
            lambda: "*Retrain #1 (auto), resumed after a restart*" in _board(fake_slack)
        )
        service.finished.set()
        await fake_slack.wait_for(lambda: "*promoted*" in _board(fake_slack))
        assert list(service.jobs) == ["ftjob-1"]
        assert service.follows == ["ftjob-1", "ftjob-1"]
        # Still one progress message: the resumed job kept updating the same thread reply.
        assert len(fake_slack.posts(ADMIN_CHANNEL, threads=True)) == 1
    finally:
        await bot.stop()


async def _open_home(bot: BotHarness, user: str) -> None:
    status, _ = await bot.send.event(
        {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0HOME",
            "tab": "home",
            "event_ts": "1700000000.000100",
        }
    )
    assert status == 200


async def _press(bot: BotHarness, user: str, action_id: str) -> None:
    """``user`` presses the App Home button ``action_id``; Slack gets a 200."""
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
                    "action_id": action_id,
                    "block_id": "b",
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Press"},
                    "action_ts": "1700000001.000100",
                }
            ],
        }
    )
    assert status == 200


async def test_app_home_offers_admins_to_retry_the_tickets_that_failed_to_route(
    fake_slack: FakeSlack, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    # On a clock that does not move, the requeue watcher never looks by itself: a routed
    # ticket shows the button woke it.
    async with running(admin_harness(fake_slack, tmp_path, taxonomy, clock=FakeClock())) as bot:
        await _retry_from_app_home(bot)


async def _retry_from_app_home(admin_bot: BotHarness) -> None:
    fake = admin_bot.fake
    fake.fail(
        "chat.postMessage",
        error="not_in_channel",
        times=None,
        when=lambda params: params.get("channel") == "C0BILLING",
    )
    ts = await admin_bot.ticket("refund my invoice please")
    for user in (ADMIN, "U0AGENT"):
        await _open_home(admin_bot, user)
    await fake.wait_for(lambda: len(fake.home_views) == 2)
    admin_view = json.dumps(fake.home_views[ADMIN])
    assert "*1 ticket failed to route.*" in admin_view
    assert HOME_RETRY_FAILED_ACTION in admin_view
    assert "failed to route" not in json.dumps(fake.home_views["U0AGENT"])

    # Someone who is not an admin (a forged or stale button) is refused; nothing changes.
    await _press(admin_bot, "U0AGENT", HOME_RETRY_FAILED_ACTION)
    await fake.wait_for(lambda: len(fake.posts("U0AGENT")) == 1)
    assert fake.posts("U0AGENT")[0]["text"].startswith("Sorry, only triage admins")
    async with admin_bot.svc.db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"failed": 1}

    fake.clear_failures()  # the admin invited the bot to #billing
    await _press(admin_bot, ADMIN, HOME_RETRY_FAILED_ACTION)
    await fake.wait_for(lambda: len(fake.posts(ADMIN)) == 1)
    assert fake.posts(ADMIN)[0]["text"] == "Requeued 1 failed ticket; the bot is routing it again."
    # Routed at once: the button wakes this replica's watcher.
    await fake.wait_for(lambda: len(fake.posts(SUPPORT, threads=True)) == 1)
    await admin_bot.drain()
    assert len(fake.posts("C0BILLING")) == 1
    assert fake.reactions_on(SUPPORT, ts) == {"moneybag": {BOT_USER_ID}}
    async with admin_bot.svc.db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"routed": 1}
        actions = await list_actions(conn)
    assert [(a.user, a.action, a.outcome) for a in actions[:2]] == [
        (ADMIN, "ticket-retry", "done"),
        ("U0AGENT", "ticket-retry", "refused"),
    ]
    await fake.wait_for(lambda: "failed to route" not in json.dumps(fake.home_views[ADMIN]))


async def test_a_report_upload_slack_refuses_is_logged_and_the_report_stays(
    admin_bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """files_upload_v2 goes through the gateway: Slack's refusal becomes a SlackCallError
    (logged with its fix), never an exception out of the background task."""
    fake = admin_bot.fake
    await slash(admin_bot, "/retrain", "", ADMIN)
    await fake.wait_for(lambda: "*promoted*" in _board(fake))
    fake.fail("files.getUploadURLExternal", error="not_in_channel", times=None)
    await slash(admin_bot, "/evalreport", "", ADMIN)
    await fake.wait_for(
        lambda: any(
            "could not upload learning-curve-model" in r.getMessage() for r in caplog.records
        )
    )
    assert any("Evaluation report" in m["text"] for m in fake.live_messages(SUPPORT))
    assert fake.shared_files == []
    # Each picture is tried on its own; the gateway logs the same refusal with its fix once.
    failures = [r for r in caplog.records if r.name == "bot.slack_gateway"]
    assert [r.getMessage().split(".")[0] for r in failures] == [
        "Slack files_upload_v2 failed: not_in_channel (channel C0SUPPORT)"
    ]
    uploads = [r for r in caplog.records if "could not upload" in r.getMessage()]
    assert len(uploads) == 2
