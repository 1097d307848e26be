"""Reads behind the desk's figures (``/triage stats``): tickets of a period, backlog, corrections.

Read-only and built for size: the period's tickets come back as plain tuples from one indexed
scan of ``ticket_states`` (100,000 tickets in well under a second on SQLite and PostgreSQL), the
backlog per department is a grouped count plus one indexed lookup for its oldest ticket, and
corrections are counted in the database. The arithmetic (medians, targets, business hours)
is ``admin.desk_stats``'s.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Boolean, Float, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from data.clock import as_utc
from data.db.schema import corrections, ticket_states

_RESOLVED = "resolved"  # data.db.desk.RESOLVED
_OPEN = ("open", "in_progress")


class TicketTimes(NamedTuple):
    """One ticket of the period, as the figures need it (times in epoch seconds)."""

    ticket_id: int
    department: str
    opened: float
    taken: bool
    first_response: float | None
    resolved: float | None


@dataclass(frozen=True)
class OldestOpen:
    """A department's oldest ticket still open."""

    ticket_id: int
    opened_at: datetime
    permalink: str | None


@dataclass(frozen=True)
class Backlog:
    """A department's open tickets now (open or in progress, any age)."""

    department: str
    open: int
    unassigned: int
    oldest: OldestOpen | None


def _epoch(column: Any, dialect: str) -> Any:
    """``column`` as epoch seconds, computed by the database: parsing 100,000 timestamps into
    datetimes in Python costs more than the whole rest of the figures."""
    if dialect == "sqlite":  # stored as UTC text; julianday parses it in C (to the ms: rounded
        # off its float error)
        return func.round((func.julianday(column) - 2440587.5) * 86400.0, 3)
    # PostgreSQL's extract gives numeric, which the driver decodes into Decimal objects: four
    # times the cost of the rest of the figures over 100,000 tickets. Double precision is exact
    # to the microsecond for these dates.
    return cast(func.extract("epoch", column), Float)


async def period_tickets(
    conn: AsyncConnection, since: datetime, until: datetime
) -> list[TicketTimes]:
    """Tickets that entered the desk in [since, until), with their response times."""
    dialect = conn.dialect.name
    resolved = case(
        (ticket_states.c.status == _RESOLVED, _epoch(ticket_states.c.resolved_at, dialect)),
        else_=None,
    )
    rows = await conn.execute(
        select(
            ticket_states.c.ticket_id,
            ticket_states.c.department,
            _epoch(ticket_states.c.opened_at, dialect),
            cast(ticket_states.c.taken_at.is_not(None), Boolean),
            _epoch(ticket_states.c.first_response_at, dialect),
            resolved,
        ).where(ticket_states.c.opened_at >= since, ticket_states.c.opened_at < until)
    )
    # The columns already have the right types (ids, text, floats, booleans); no per-row
    # conversion, which is most of the Python time over 100,000 rows.
    return list(map(TicketTimes._make, rows.all()))


async def backlog(conn: AsyncConnection, departments: Collection[str] = ()) -> list[Backlog]:
    """Open tickets per department now, with the oldest of each (``departments`` first, in
    that order, then any other department that has open tickets)."""
    counts = {
        str(r.department): (int(r.n), int(r.n) - int(r.assigned))
        for r in await conn.execute(
            select(
                ticket_states.c.department,
                func.count().label("n"),
                func.count(ticket_states.c.assignee).label("assigned"),  # not NULL ones
            )
            .where(ticket_states.c.status.in_(_OPEN))
            .group_by(ticket_states.c.department)
        )
    }
    order = list(departments) + sorted(set(counts) - set(departments))
    result = []
    for department in order:
        n, unassigned = counts.get(department, (0, 0))
        oldest = None
        if n:
            row = (
                await conn.execute(
                    select(
                        ticket_states.c.ticket_id,
                        ticket_states.c.opened_at,
                        ticket_states.c.permalink,
                    )
                    .where(
                        ticket_states.c.status.in_(_OPEN),
                        ticket_states.c.department == department,
                    )
                    .order_by(ticket_states.c.opened_at, ticket_states.c.ticket_id)
                    .limit(1)
                )
            ).first()
            if row is not None:
                oldest = OldestOpen(int(row.ticket_id), as_utc(row.opened_at), row.permalink)
        result.append(Backlog(department, n, unassigned, oldest))
    return result


async def unassigned(conn: AsyncConnection, department: str, limit: int = 10) -> list[OldestOpen]:
    """A department's open tickets nobody took, oldest first (a lead's App Home)."""
    rows = await conn.execute(
        select(ticket_states.c.ticket_id, ticket_states.c.opened_at, ticket_states.c.permalink)
        .where(
            ticket_states.c.status == "open",
            ticket_states.c.department == department,
            ticket_states.c.assignee.is_(None),
        )
        .order_by(ticket_states.c.opened_at, ticket_states.c.ticket_id)
        .limit(limit)
    )
    return [OldestOpen(int(r.ticket_id), as_utc(r.opened_at), r.permalink) for r in rows]


async def correction_counts(
    conn: AsyncConnection, since: datetime, until: datetime
) -> dict[tuple[str, str], int]:
    """Corrections made in [since, until) and not undone: (from, to) -> how many."""
    rows = await conn.execute(
        select(corrections.c.from_label, corrections.c.to_label, func.count().label("n"))
        .where(
            corrections.c.created_at >= since,
            corrections.c.created_at < until,
            corrections.c.undone_at.is_(None),
        )
        .group_by(corrections.c.from_label, corrections.c.to_label)
    )
    return {(str(r.from_label), str(r.to_label)): int(r.n) for r in rows}
