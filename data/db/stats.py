"""Read-only figures over tickets, predictions and corrections ("how is the bot doing live").

Per ticket, the bot's answer is its latest prediction, and the human answer is its human label
(``classifier.label_precedence``). A ticket counts in the period it was created in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.label_precedence import final_label
from data.db.corrections import human_labels
from data.db.schema import corrections, predictions, tickets


@dataclass(frozen=True)
class DepartmentFigures:
    """One department's live figures: tickets the bot sent there and how many people moved."""

    label: str
    predicted: int
    corrected: int

    @property
    def correction_rate(self) -> float:
        """Share of the tickets sent here that a person moved elsewhere (0 when none)."""
        return self.corrected / self.predicted if self.predicted else 0.0


@dataclass(frozen=True)
class LiveFigures:
    """What happened to real tickets between ``since`` and ``until``."""

    since: datetime
    until: datetime
    tickets: int
    routed: int
    classified: int
    corrected: int
    below_threshold: int
    threshold: float
    departments: tuple[DepartmentFigures, ...]
    #: (bot's label, human label, tickets), most frequent first.
    confusions: tuple[tuple[str, str, int], ...] = field(default=())

    @property
    def correction_rate(self) -> float:
        """Share of classified tickets that a person corrected."""
        return self.corrected / self.classified if self.classified else 0.0

    @property
    def below_threshold_share(self) -> float:
        """Share of classified tickets whose confidence was under the threshold."""
        return self.below_threshold / self.classified if self.classified else 0.0


async def live_figures(
    conn: AsyncConnection,
    *,
    since: datetime,
    until: datetime,
    threshold: float,
    labels: tuple[str, ...] = (),
    top_confusions: int = 3,
) -> LiveFigures:
    """Tickets routed, corrections per department, low-confidence share and confusions.

    ``labels`` lists departments to show even when they had no tickets (in that order).
    """
    in_period = (tickets.c.created_at >= since) & (tickets.c.created_at < until)
    ticket_rows = (
        await conn.execute(select(tickets.c.id, tickets.c.status).where(in_period))
    ).all()
    status_of = {row.id: row.status for row in ticket_rows}

    latest_prediction = (
        select(func.max(predictions.c.id).label("id"))
        .join(tickets, tickets.c.id == predictions.c.ticket_id)
        .where(in_period)
        .group_by(predictions.c.ticket_id)
        .subquery()
    )
    predicted: dict[int, tuple[str, float]] = {
        row.ticket_id: (row.label, row.confidence)
        for row in await conn.execute(
            select(predictions.c.ticket_id, predictions.c.label, predictions.c.confidence).where(
                predictions.c.id.in_(select(latest_prediction.c.id))
            )
        )
    }

    human = await human_labels(
        conn, corrections.c.ticket_id.in_(select(tickets.c.id).where(in_period))
    )

    per_label: Counter[str] = Counter()
    corrected_per_label: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    below = 0
    corrected = 0
    for ticket_id, (label, confidence) in predicted.items():
        per_label[label] += 1
        if confidence < threshold:
            below += 1
        final = final_label(label, human.get(ticket_id))
        if final != label:
            corrected += 1
            corrected_per_label[label] += 1
            confusions[(label, final)] += 1

    order = list(labels) + sorted(set(per_label) - set(labels))
    return LiveFigures(
        since=since,
        until=until,
        tickets=len(status_of),
        routed=sum(1 for status in status_of.values() if status == "routed"),
        classified=len(predicted),
        corrected=corrected,
        below_threshold=below,
        threshold=threshold,
        departments=tuple(
            DepartmentFigures(label, per_label[label], corrected_per_label[label])
            for label in order
        ),
        confusions=tuple(
            (bot, person, n)
            for (bot, person), n in sorted(confusions.items(), key=lambda kv: (-kv[1], kv[0]))[
                :top_confusions
            ]
        ),
    )


async def activity_counts(conn: AsyncConnection, since: datetime) -> tuple[int, int]:
    """(tickets received, corrections made and not undone) since ``since`` (App Home)."""
    n_tickets = (
        await conn.execute(
            select(func.count()).select_from(tickets).where(tickets.c.created_at >= since)
        )
    ).scalar_one()
    n_corrections = (
        await conn.execute(
            select(func.count())
            .select_from(corrections)
            .where(corrections.c.created_at >= since, corrections.c.undone_at.is_(None))
        )
    ).scalar_one()
    return int(n_tickets), int(n_corrections)
