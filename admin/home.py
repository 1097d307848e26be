"""What the App Home shows: the active model, recent jobs, last week's activity and how many
tickets failed to route."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from admin.context import AdminContext
from data.db import jobs, stats
from data.db import model_registry as registry
from data.db import tickets as tickets_repo
from data.db.auto_retrain import auto_retrain_paused
from data.db.database import utcnow
from data.db.jobs import Job
from data.db.learning_curve import model_accuracies
from data.db.model_registry import StoredModel


@dataclass(frozen=True)
class HomeSummary:
    """The figures of the App Home tab."""

    active: StoredModel | None
    jobs: tuple[Job, ...]
    days: int
    tickets: int
    corrections: int
    #: Tickets that could not be routed (Slack refused them or kept failing), now.
    failed: int = 0
    #: Whether automatic retrains run (None: TRIAGE_AUTO_RETRAIN is off, no switch shown).
    auto_retrain: bool | None = None
    #: (registry id, holdout accuracy) of the last models that were active, oldest first.
    versions: tuple[tuple[int, float], ...] = ()

    @property
    def macro_f1(self) -> float | None:
        """The active model's macro-F1 on the holdout, when it has been evaluated."""
        value = self.active.metrics.get("holdout", {}).get("macro_f1") if self.active else None
        return float(value) if isinstance(value, int | float) else None

    @property
    def accuracy(self) -> float | None:
        """The active model's accuracy on the holdout, when it has been evaluated."""
        value = self.active.metrics.get("holdout", {}).get("accuracy") if self.active else None
        return float(value) if isinstance(value, int | float) else None


async def home_summary(ctx: AdminContext, *, days: int = 7, job_limit: int = 5) -> HomeSummary:
    """Read everything the Home tab shows, in one transaction."""
    async with ctx.db.transaction() as conn:
        active = await registry.get_active_model(conn)
        recent = await jobs.list_jobs(conn, job_limit)
        n_tickets, n_corrections = await stats.activity_counts(
            conn, utcnow() - timedelta(days=days)
        )
        failed = await tickets_repo.count_in_status(conn, tickets_repo.FAILED)
        auto = not await auto_retrain_paused(conn) if ctx.settings.auto_retrain else None
        versions = tuple(await model_accuracies(conn, limit=6))
    return HomeSummary(
        active, tuple(recent), days, n_tickets, n_corrections, failed, auto, versions
    )
