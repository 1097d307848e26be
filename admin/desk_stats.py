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
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
    def of(cls, seconds: Sequence[float]) -> Spread:
        """The spread of ``seconds`` (None for the figures of an empty list)."""
        if not seconds:
            return cls(0, None, None)
        ordered = sorted(seconds)
        # Nearest rank: the smallest value with at least 90 % of the values at or below it.
        p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
        return cls(len(ordered), float(statistics.median(ordered)), float(p90))

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


def _breaches(
    dept: Department | None, tickets: Sequence[TicketTimes], timeline: OpenTimeline, now: float
) -> tuple[int, int]:
    """(first-response breaches, resolution breaches) of one department's tickets."""
    if dept is None:
        return 0, 0
    first = resolved = 0
    if dept.first_response_minutes:
        limit = dept.first_response_minutes * 60
        first = sum(
            timeline.between(t.opened, t.first_response if t.first_response is not None else now)
            > limit
            for t in tickets
        )
    if dept.resolution_hours:
        limit_h = dept.resolution_hours * 3600
        resolved = sum(
            timeline.between(t.opened, t.resolved if t.resolved is not None else now) > limit_h
            for t in tickets
        )
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
    for name in names:
        own = by_department.get(name, [])
        dept = taxonomy.get(name)
        timeline = OpenTimeline(dept.hours if dept else None, since, until)
        first, resolved = _breaches(dept, own, timeline, now)
        departments.append(
            DepartmentStats(
                department=name,
                tickets=len(own),
                taken=sum(t.taken for t in own),
                first_response=Spread.of(
                    [t.first_response - t.opened for t in own if t.first_response is not None]
                ),
                resolution=Spread.of(
                    [t.resolved - t.opened for t in own if t.resolved is not None]
                ),
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
    return DeskStats(since, until, days, tuple(departments), _daily(tickets, names, since, until))


def _daily(
    tickets: Sequence[TicketTimes], names: Sequence[str], since: datetime, until: datetime
) -> tuple[DayStats, ...]:
    first_day = since.astimezone(UTC).date()
    origin = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC).timestamp()
    n_days = (until.astimezone(UTC).date() - first_day).days + 1
    counts: list[Counter[str]] = [Counter() for _ in range(n_days)]
    waits: list[list[float]] = [[] for _ in range(n_days)]
    for t in tickets:
        index = int((t.opened - origin) // 86400)  # whole UTC days since the first
        if 0 <= index < n_days:
            counts[index][t.department] += 1
            if t.first_response is not None:
                waits[index].append(t.first_response - t.opened)
    return tuple(
        DayStats(
            (first_day + timedelta(days=i)).isoformat(),
            {name: counts[i][name] for name in names},
            float(statistics.median(waits[i])) if waits[i] else None,
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
