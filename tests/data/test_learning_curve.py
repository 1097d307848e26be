"""The learning curve's figures: holdout accuracy per model that was active, corrections per week,
and the picture made of them."""

from __future__ import annotations

from datetime import timedelta

from classifier.learning_curve_png import learning_curve_png
from data.db import model_registry as registry
from data.db.database import Database
from data.db.learning_curve import model_accuracies, weekly_correction_rates
from data.db.schema import corrections
from tests.data.test_stats import T0, _ticket


async def test_accuracy_per_model_version_and_corrections_per_week(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        async with db.transaction() as conn:
            ids = []
            for n, accuracy in enumerate((0.5, 0.8, 0.9)):
                ids.append(
                    await registry.save_model(
                        conn,
                        model_id=f"m{n}",
                        learner="tfidf",
                        artefact=b"x",
                        data_hash=str(n),
                        counts={},
                        metrics={"holdout": {"accuracy": accuracy}},
                    )
                )
            await registry.activate_model(conn, ids[0])
            await registry.activate_model(conn, ids[2])  # ids[1] was refused: never active
            # Week 1: 4 tickets, 2 corrected (one correction undone); week 2: 2 tickets, 0.
            week1 = [await _ticket(conn, n, "Billing", 0.9, at=T0) for n in range(4)]
            later = T0 + timedelta(days=7)
            for n in range(4, 6):
                await _ticket(conn, n, "Billing", 0.9, at=later)
            for ticket_id, undone in ((week1[0], None), (week1[1], None), (week1[2], T0)):
                await conn.execute(
                    corrections.insert().values(
                        ticket_id=ticket_id,
                        user="U1",
                        from_label="Billing",
                        to_label="Account",
                        via="reaction",
                        created_at=T0,
                        undone_at=undone,
                    )
                )
            versions = await model_accuracies(conn)
            weeks = await weekly_correction_rates(conn, until=later + timedelta(days=1))
        assert versions == [(ids[0], 0.5), (ids[2], 0.9)]
        assert [rate for _, rate in weeks] == [0.5, 0.0]
        assert weeks[0][0] == "2026-W47"
        png = learning_curve_png([(f"#{i}", a) for i, a in versions], weeks)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert learning_curve_png([], []).startswith(b"\x89PNG")
    finally:
        await db.close()
