"""The figures a support lead runs the team on: ``/triage stats``, ``triage stats``, App Home.

Per department, over the tickets that entered the desk in the last ``days`` days: how many,
the share an agent took, median and 90th percentile of the time to first response and to
resolution (wall-clock, as the requester waited), target breaches (counted on the
department's business-hours clock, against its ``first_response_minutes`` and
``resolution_hours``; a ticket still waiting past its target counts too), and corrections
(tickets people moved in and out). Plus the open backlog now, with its oldest ticket, and per
day (UTC): tickets per department and the median first response.

``DeskStats.as_json()`` is the stable shape for dashboards (``"schema": "triage.stats/1"``;
fields are only ever added). README ("Desk figures") documents it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier.business_hours import OpenTimeline
from classifier.taxonomy import Department, Taxonomy
from data.db import desk_stats as repo
from data.db.database import Database
from data.db.desk_stats import Backlog, TicketTimes

SCHEMA = "triage.stats/1"
#: The longest period the figures cover (a year of tickets is what a dashboard asks for).
MAX_DAYS = 366


@dataclass(frozen=True)
class Spread:
    """How long something took: how many, the median and the 90th percentile, in seconds."""

    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, seconds: Sequence[float] | npt.NDArray[np.float64]) -> Spread:
        """The spread of ``seconds`` (None for the figures of an empty list)."""
        ordered = np.sort(np.asarray(seconds, dtype=np.float64))
        if not len(ordered):
            return cls(0, None, None)
        # Nearest rank: the smallest value with at least 90 % of the values at or below it.
        p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
        return cls(len(ordered), float(np.median(ordered)), float(p90))

    def as_json(self) -> dict[str, Any]:
        """``{"count", "median", "p90"}`` (seconds; null when count is 0)."""
        return {"count": self.count, "median": self.median, "p90": self.p90}


@dataclass(frozen=True)
class DepartmentStats:
    """One department's figures."""

    department: str
    tickets: int
    taken: int
    first_response: Spread
    resolution: Spread
    backlog: Backlog
    first_response_breaches: int
    resolution_breaches: int
    corrected_in: int
    corrected_out: int
    first_response_minutes: int | None = None
    resolution_hours: float | None = None
    hours: str | None = None

    @property
    def share_taken(self) -> float | None:
        """Share of the period's tickets an agent took (None without tickets)."""
        return self.taken / self.tickets if self.tickets else None


@dataclass(frozen=True)
class DayStats:
    """One UTC day: tickets per department and the median first response."""

    day: str
    tickets: dict[str, int]
    median_first_response: float | None


@dataclass(frozen=True)
class DeskStats:
    """Everything ``/triage stats`` shows."""

    since: datetime
    until: datetime
    days: int
    departments: tuple[DepartmentStats, ...]
    daily: tuple[DayStats, ...]

    def as_json(self) -> dict[str, Any]:
        """The stable JSON for dashboards (see the module docstring and README)."""
        return {
            "schema": SCHEMA,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "days": self.days,
            "departments": [_department_json(d, self.until) for d in self.departments],
            "daily": [
                {
                    "date": d.day,
                    "tickets": d.tickets,
                    "median_first_response_seconds": d.median_first_response,
                }
                for d in self.daily
            ],
        }


def _department_json(d: DepartmentStats, now: datetime) -> dict[str, Any]:
    oldest = d.backlog.oldest
    return {
        "department": d.department,
        "tickets": d.tickets,
        "taken": d.taken,
        "share_taken": d.share_taken,
        "first_response_seconds": d.first_response.as_json(),
        "resolution_seconds": d.resolution.as_json(),
        "backlog": {
            "open": d.backlog.open,
            "unassigned": d.backlog.unassigned,
            "oldest": None
            if oldest is None
            else {
                "ticket_id": oldest.ticket_id,
                "opened_at": oldest.opened_at.isoformat(),
                "age_seconds": max(0.0, (now - oldest.opened_at).total_seconds()),
                "link": oldest.permalink,
            },
        },
        "breaches": {
            "first_response": d.first_response_breaches,
            "resolution": d.resolution_breaches,
        },
        "corrections": {"in": d.corrected_in, "out": d.corrected_out},
        "targets": {
            "first_response_minutes": d.first_response_minutes,
            "resolution_hours": d.resolution_hours,
            "hours": d.hours,
        },
    }


class _Columns:
    """One department's tickets as arrays of epoch seconds (NaN: not yet)."""

    def __init__(self, tickets: Sequence[TicketTimes]) -> None:
        n = len(tickets)
        self.opened = np.fromiter((t.opened for t in tickets), np.float64, n)
        self.first = np.fromiter(
            (np.nan if t.first_response is None else t.first_response for t in tickets),
            np.float64,
            n,
        )
        self.resolved = np.fromiter(
            (np.nan if t.resolved is None else t.resolved for t in tickets), np.float64, n
        )
        self.taken = int(sum(t.taken for t in tickets))


def _breaches(
    dept: Department | None, own: _Columns, timeline: OpenTimeline, now: float
) -> tuple[int, int]:
    """(first-response breaches, resolution breaches) of one department's tickets: a ticket
    still waiting counts its clock up to ``now``."""
    if dept is None:
        return 0, 0
    first = resolved = 0
    if dept.first_response_minutes:
        ends = np.where(np.isnan(own.first), now, own.first)
        waited = timeline.between_many(own.opened, ends)
        first = int(np.count_nonzero(waited > dept.first_response_minutes * 60))
    if dept.resolution_hours:
        ends = np.where(np.isnan(own.resolved), now, own.resolved)
        waited = timeline.between_many(own.opened, ends)
        resolved = int(np.count_nonzero(waited > dept.resolution_hours * 3600))
    return first, resolved


def summarise(
    taxonomy: Taxonomy,
    tickets: Sequence[TicketTimes],
    backlogs: Sequence[Backlog],
    corrections: dict[tuple[str, str], int],
    *,
    since: datetime,
    until: datetime,
    days: int,
) -> DeskStats:
    """The figures from what ``data.db.desk_stats`` read (pure: tests feed it directly)."""
    by_department: dict[str, list[TicketTimes]] = defaultdict(list)
    for ticket in tickets:
        by_department[ticket.department].append(ticket)
    backlog_of = {b.department: b for b in backlogs}
    names = list(taxonomy.labels)
    names += sorted((set(by_department) | set(backlog_of)) - set(names))
    moved_in: Counter[str] = Counter()
    moved_out: Counter[str] = Counter()
    for (source, target), n in corrections.items():
        moved_out[source] += n
        moved_in[target] += n
    now = until.timestamp()
    departments = []
    columns = {name: _Columns(by_department.get(name, [])) for name in names}
    for name in names:
        own = columns[name]
        dept = taxonomy.get(name)
        timeline = OpenTimeline(dept.hours if dept else None, since, until)
        first, resolved = _breaches(dept, own, timeline, now)
        answered = ~np.isnan(own.first)
        done = ~np.isnan(own.resolved)
        departments.append(
            DepartmentStats(
                department=name,
                tickets=len(own.opened),
                taken=own.taken,
                first_response=Spread.of(own.first[answered] - own.opened[answered]),
                resolution=Spread.of(own.resolved[done] - own.opened[done]),
                backlog=backlog_of.get(name, Backlog(name, 0, 0, None)),
                first_response_breaches=first,
                resolution_breaches=resolved,
                corrected_in=moved_in[name],
                corrected_out=moved_out[name],
                first_response_minutes=dept.first_response_minutes if dept else None,
                resolution_hours=dept.resolution_hours if dept else None,
                hours=dept.hours.text if dept and dept.hours else None,
            )
        )
    return DeskStats(since, until, days, tuple(departments), _daily(columns, since, until))


def _daily(columns: dict[str, _Columns], since: datetime, until: datetime) -> tuple[DayStats, ...]:
    first_day = since.astimezone(UTC).date()
    origin = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC).timestamp()
    n_days = (until.astimezone(UTC).date() - first_day).days + 1
    counts: dict[str, list[int]] = {}
    day_of_wait, waits = [], []
    for name, own in columns.items():
        day = np.floor_divide(own.opened - origin, 86400).astype(np.int64)  # whole UTC days
        inside = (day >= 0) & (day < n_days)
        counts[name] = np.bincount(day[inside], minlength=n_days).tolist()
        answered = inside & ~np.isnan(own.first)
        day_of_wait.append(day[answered])
        waits.append(own.first[answered] - own.opened[answered])
    days = np.concatenate(day_of_wait) if day_of_wait else np.zeros(0, np.int64)
    seconds = np.concatenate(waits) if waits else np.zeros(0)
    order = np.lexsort((seconds, days))
    days, seconds = days[order], seconds[order]
    bounds = np.searchsorted(days, np.arange(n_days + 1))
    return tuple(
        DayStats(
            (first_day + timedelta(days=i)).isoformat(),
            {name: counts[name][i] for name in columns},
            float(np.median(seconds[bounds[i] : bounds[i + 1]]))
            if bounds[i + 1] > bounds[i]
            else None,
        )
        for i in range(n_days)
    )


async def build_desk_stats(
    db: Database, taxonomy: Taxonomy, *, days: int, now: datetime
) -> DeskStats:
    """Read and summarise the last ``days`` days up to ``now`` (see the module docstring)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1 to {MAX_DAYS}")
    since = now - timedelta(days=days)
    async with db.transaction() as conn:
        tickets = await repo.period_tickets(conn, since, now)
        backlogs = await repo.backlog(conn, taxonomy.labels)
        corrections = await repo.correction_counts(conn, since, now)
    return summarise(taxonomy, tickets, backlogs, corrections, since=since, until=now, days=days)


def duration(seconds: float | None) -> str:
    """Seconds as people read them: "—", "42 s", "12 min", "3.5 h", "2.1 d"."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def render_lines(stats: DeskStats) -> list[str]:
    """One plain line per department (the terminal's table and the Slack message's body)."""
    lines = []
    for d in stats.departments:
        share = "—" if d.share_taken is None else f"{100 * d.share_taken:.0f} %"
        oldest = d.backlog.oldest
        age = (
            ""
            if oldest is None
            else f", oldest #{oldest.ticket_id} "
            + duration((stats.until - oldest.opened_at).total_seconds())
        )
        lines.append(
            f"{d.department}: {d.tickets} tickets, {share} taken; first response "
            f"{duration(d.first_response.median)} median / {duration(d.first_response.p90)} p90; "
            f"resolution {duration(d.resolution.median)} / {duration(d.resolution.p90)}; "
            f"backlog {d.backlog.open}{age}; breaches {d.first_response_breaches} first "
            f"response, {d.resolution_breaches} resolution; corrections {d.corrected_in} in, "
            f"{d.corrected_out} out"
        )
    return lines
