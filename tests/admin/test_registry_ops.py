from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from admin import registry
from admin.context import AdminContext
from admin.errors import AdminError
from bot.active_model import ActiveModel
from classifier.examples import Example
from data.db import model_registry as store
from data.db.admin_actions import list_actions
from tests.admin.keyword_learner import KeywordLearner, load_keyword_model
from tests.fakes.clock import FakeClock


async def _save(ctx: AdminContext, examples: list[Example], *, active: bool = False) -> int:
    model = await KeywordLearner().train(examples, ["Billing", "Technical"])
    async with ctx.db.transaction() as conn:
        return await store.save_model(
            conn,
            model_id=model.model_id,
            learner=model.learner,
            artefact=model.to_bytes(),
            data_hash="h",
            counts={"train": len(examples)},
            metrics={},
            status=store.ACTIVE if active else store.CANDIDATE,
        )


async def test_activate_and_rollback_switch_models_and_running_bots_follow(
    make_context: Callable[..., AdminContext],
) -> None:
    swapped: list[int] = []
    ctx = make_context(on_model_activated=lambda rid, _m: swapped.append(rid))
    old = await _save(
        ctx, [Example("refund", "Billing"), Example("crash", "Technical")], active=True
    )
    new = await _save(ctx, [Example("refund crash", "Billing"), Example("bug", "Technical")])

    # Another "replica": follows the registry and loads only when the active id changes.
    replica = ActiveModel(ctx.db, load_keyword_model)
    assert await replica.refresh()
    assert not await replica.refresh()
    assert replica.status()["registry_id"] == old
    assert (await replica.current().predict(["crash"]))[0].label == "Technical"

    await registry.activate(ctx, new, "UADMIN")
    assert swapped == [new]
    assert await replica.refresh()
    assert (await replica.current().predict(["crash"]))[0].label == "Billing"

    back = await registry.rollback(ctx, "UADMIN")
    assert (back.id, back.status) == (old, "active")
    assert [m.status for m in await registry.list_models(ctx)] == ["retired", "active"]
    # As the runtime runs it: a look at once, then one every interval of the clock.
    clock = FakeClock()
    following = asyncio.create_task(replica.follow(clock, 3.0))
    await clock.wait_for_sleepers(1)
    assert replica.status()["registry_id"] == old
    following.cancel()

    with pytest.raises(AdminError, match="no model #99"):
        await registry.activate(ctx, 99, "UADMIN")
    async with ctx.db.transaction() as conn:
        actions = await list_actions(conn)
    assert [(a.action, a.detail["model"], a.detail["previous"]) for a in actions] == [
        ("activate", old, new),
        ("activate", new, old),
    ]


async def test_rollback_without_history_says_so(make_context: Callable[..., AdminContext]) -> None:
    ctx = make_context()
    await _save(ctx, [Example("refund", "Billing"), Example("crash", "Technical")], active=True)
    with pytest.raises(AdminError, match="no earlier model"):
        await registry.rollback(ctx, "UADMIN")


async def test_home_summary_shows_active_model_jobs_and_activity(
    make_context: Callable[..., AdminContext],
) -> None:
    from admin.home import home_summary
    from admin.retrain import RetrainRequest, retrain

    ctx = make_context()
    empty = await home_summary(ctx)
    assert (empty.active, empty.jobs, empty.tickets, empty.macro_f1) == (None, (), 0, None)
    outcome = await retrain(ctx, RetrainRequest(requested_by="UADMIN"))
    summary = await home_summary(ctx)
    assert summary.active is not None
    assert summary.active.id == outcome.candidate_id
    assert summary.macro_f1 == outcome.evaluations[0].result.score.macro_f1
    assert [(j.id, j.status) for j in summary.jobs] == [(outcome.job_id, "succeeded")]
    assert (summary.tickets, summary.corrections, summary.days) == (0, 0, 7)
