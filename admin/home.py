"""What the App Home shows: the active model, recent jobs, last week's activity and how many
tickets failed to route; and the desk: an agent's open tickets, a lead's backlog and figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from admin.context import AdminContext
from admin.desk_stats import DeskStats, build_desk_stats
from data.db import desk, jobs, stats
from data.db import desk_stats as desk_stats_repo
from data.db import model_registry as registry
from data.db import tickets as tickets_repo
from data.db.auto_retrain import auto_retrain_paused
from data.db.database import utcnow
from data.db.desk import DeskState
from data.db.desk_stats import Backlog, OldestOpen
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


@dataclass(frozen=True)
class DeskHome:
    """The desk part of a person's Home tab: their open tickets and, for a lead, each
    department's backlog with its oldest unassigned tickets and the week's figures."""

    mine: tuple[DeskState, ...]
    backlog: tuple[Backlog, ...] = ()
    unassigned: dict[str, tuple[OldestOpen, ...]] = field(default_factory=dict)
    figures: DeskStats | None = None


async def desk_home(
    ctx: AdminContext, user: str, *, lead: bool, days: int = 7, limit: int = 10
) -> DeskHome:
    """What the Home tab shows ``user`` of the desk (a lead also sees every department)."""
    async with ctx.db.transaction() as conn:
        mine = await desk.tickets_of(conn, user, (desk.IN_PROGRESS,))
        if not lead:
            return DeskHome(tuple(mine[:limit]))
        backlogs = await desk_stats_repo.backlog(conn, ctx.taxonomy.labels)
        unassigned = {
            b.department: tuple(await desk_stats_repo.unassigned(conn, b.department, limit=3))
            for b in backlogs
            if b.unassigned
        }
    figures = await build_desk_stats(ctx.db, ctx.taxonomy, days=days, now=ctx.clock.now())
    return DeskHome(tuple(mine[:limit]), tuple(backlogs), unassigned, figures)
