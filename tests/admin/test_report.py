from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from admin.context import AdminContext
from admin.errors import AdminError
from admin.report import build_report, parse_model_ref, render_report
from classifier.protocols import TrainedModel
from data.db import model_registry as store
from data.db.database import utcnow
from data.db.schema import corrections, predictions, tickets
from tests.admin.conftest import write_jsonl
from tests.admin.keyword_learner import LookupModel

LABELS = ("Technical", "Billing", "Account", "Product", "Other")
HOLDOUT = [
    ("t-a", "Technical"),
    ("t-b", "Technical"),
    ("b-c", "Billing"),
    ("b-d", "Billing"),
    ("a-e", "Account"),
]


async def _store(ctx: AdminContext, model: TrainedModel, status: str) -> int:
    async with ctx.db.transaction() as conn:
        return await store.save_model(
            conn,
            model_id=model.model_id,
            learner=model.learner,
            artefact=model.to_bytes(),
            data_hash="h",
            counts={},
            metrics={},
            status=status,
        )


async def test_report_figures_match_a_hand_computed_case(
    make_context: Callable[..., AdminContext], tmp_path: Path
) -> None:
    ctx = make_context(starter_test=(write_jsonl(tmp_path / "holdout.jsonl", HOLDOUT),))
    previous = LookupModel(
        {
            "t-a": "Technical",
            "t-b": "Billing",
            "b-c": "Technical",
            "b-d": "Technical",
            "a-e": "Account",
        },
        LABELS,
        "previous-model",
    )
    active = LookupModel(
        {
            "t-a": "Technical",
            "t-b": "Billing",
            "b-c": "Billing",
            "b-d": "Billing",
            "a-e": "Account",
        },
        LABELS,
        "active-model",
    )
    await _store(ctx, previous, store.ACTIVE)
    active_id = await _store(ctx, active, store.ACTIVE)  # retires the previous one

    # Live: two tickets in the period, one corrected Billing -> Account, one low-confidence.
    now = utcnow()
    async with ctx.db.transaction() as conn:
        for n, (label, confidence) in enumerate((("Billing", 0.9), ("Technical", 0.3)), 1):
            ticket = await conn.execute(
                tickets.insert()
                .values(
                    workspace="T",
                    channel="C",
                    ts=f"{n}.0",
                    user="U",
                    text=f"x{n}",
                    status="routed",
                    attempts=1,
                    created_at=now - timedelta(hours=1),
                    updated_at=now,
                )
                .returning(tickets.c.id)
            )
            ticket_id = ticket.scalar_one()
            await conn.execute(
                predictions.insert().values(
                    ticket_id=ticket_id,
                    label=label,
                    confidence=confidence,
                    ranking=[],
                    model_id="active-model",
                    latency_ms=3.0,
                    created_at=now,
                )
            )
            if label == "Billing":
                await conn.execute(
                    corrections.insert().values(
                        ticket_id=ticket_id,
                        user="U2",
                        from_label="Billing",
                        to_label="Account",
                        via="reaction",
                        created_at=now,
                    )
                )

    report = await build_report(ctx, requested_by="UADMIN")
    r = report.result.report
    assert report.model.id == active_id
    # 4 of 5 right; Wilson 95 % interval for 4/5 worked by hand: 0.3755 .. 0.9638.
    assert r.accuracy == pytest.approx(0.8)
    assert r.accuracy_ci == pytest.approx((0.3755, 0.9638), abs=1e-3)
    # Technical P 1/1 R 1/2; Billing P 2/3 R 2/2; Account 1/1: macro-F1 (2/3 + 4/5 + 1) / 3.
    assert (r.per_label["Technical"].precision, r.per_label["Technical"].recall) == (1.0, 0.5)
    assert r.per_label["Billing"].precision == pytest.approx(2 / 3)
    assert r.macro_f1 == pytest.approx((2 / 3 + 0.8 + 1.0) / 3)
    (comparison,) = report.comparisons
    assert comparison.role == "previous"
    assert comparison.result.report.accuracy == pytest.approx(0.4)
    # Paired: only the active model right on b-c, b-d; never only the previous: p = 2 * 1/4.
    assert (comparison.paired["only_a_right"], comparison.paired["only_b_right"]) == (2, 0)
    assert comparison.paired["p_value"] == pytest.approx(0.5)
    assert (report.live.tickets, report.live.corrected, report.live.below_threshold) == (2, 1, 1)

    text = render_report(report)
    assert "Accuracy *80.0%* (95 % CI 37.6%–96.4%), macro-F1 *0.822*" in text
    assert "Technical           1.00    0.50   0.67     2" in text
    assert "Previous model `previous-model` 40.0% → this model 80.0%" in text
    assert "McNemar p = 0.5" in text
    assert "2 tickets, 2 routed, 1 corrected (50.0%); 50.0% below the 50% confidence" in text
    assert "Billing 1/1 (100.0%)" in text
    assert "Most often moved: Billing → Account (1)" in text
    assert report.confusion_png().startswith(b"\x89PNG\r\n\x1a\n")

    # Any stored model can be reported on; the one it replaced is still the comparison.
    older = await build_report(ctx, parse_model_ref("#1"))
    assert older.result.report.accuracy == pytest.approx(0.4)
    with pytest.raises(AdminError, match="no model #9"):
        await build_report(ctx, 9)
    with pytest.raises(AdminError, match="not a model number"):
        parse_model_ref("latest")


async def test_report_without_a_model_says_what_to_do(
    make_context: Callable[..., AdminContext],
) -> None:
    with pytest.raises(AdminError, match="run /retrain first"):
        await build_report(make_context())
