"""The learning curve's figures: each model's holdout accuracy, and corrections per week."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from data.clock import as_utc
from data.db.corrections import human_labels
from data.db.schema import corrections, models, tickets


async def model_accuracies(conn: AsyncConnection, limit: int = 20) -> list[tuple[int, float]]:
    """(registry id, accuracy on its holdout) of the newest ``limit`` models that were ever
    active and were evaluated, oldest first."""
    rows = await conn.execute(
        select(models.c.id, models.c.metrics)
        .where(models.c.activated_at.is_not(None))
        .order_by(models.c.id.desc())
        .limit(limit)
    )
    out: list[tuple[int, float]] = []
    for registry_id, metrics in rows:
        accuracy = (metrics or {}).get("holdout", {}).get("accuracy")
        if isinstance(accuracy, int | float):
            out.append((int(registry_id), float(accuracy)))
    return out[::-1]


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


async def weekly_correction_rates(
    conn: AsyncConnection, until: datetime, weeks: int = 12
) -> list[tuple[str, float]]:
    """(ISO week, share of that week's tickets with a human label), oldest first, for
    the ``weeks`` weeks up to ``until`` that had tickets."""
    since = until - timedelta(weeks=weeks)
    rows = await conn.execute(
        select(tickets.c.id, tickets.c.created_at).where(tickets.c.created_at >= since)
    )
    corrected = await human_labels(
        conn, corrections.c.ticket_id.in_(select(tickets.c.id).where(tickets.c.created_at >= since))
    )
    totals: dict[str, list[int]] = {}
    for ticket_id, created_at in rows:
        counts = totals.setdefault(_week(as_utc(created_at)), [0, 0])
        counts[0] += 1
        counts[1] += int(ticket_id) in corrected
    return [(week, fixed / total) for week, (total, fixed) in sorted(totals.items())]
