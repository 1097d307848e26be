"""First-response timers: per open ticket, a nudge and an escalation, each with its due time.

A ticket of a department with a first-response target gets two rows once it is in the desk
(``data/db/desk.py``) and unanswered: ``nudge`` (due at the target) and ``escalation`` (due at
twice the target), computed by the caller with the department's business hours. A correction
that moves the ticket reschedules the timers not yet done for the new department. The sweep
(``bot/response_timers.py``) takes the due ones, ``claim``s them (``claimed_at``) before posting
and ``finish``es them with an ``outcome`` after, so each is posted at most once: a timer claimed
but never finished was cut short mid-post, and its post is looked for in Slack before posting.

Outcomes: ``posted``; ``answered`` or ``resolved`` (the first response or a resolution came
first: the timer is cancelled); ``late`` (already long overdue when first scheduled, e.g. a
target added to old tickets: not posted, so a deploy does not nudge every old ticket at once);
``nowhere`` (no card, or no triage channel, to post in); ``untargeted`` (the department has no
target any more); ``failed`` (Slack refused it for good, e.g. the bot left the channel).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from data.clock import as_utc
from data.db.schema import response_timers, routings, ticket_states

NUDGE = "nudge"
ESCALATION = "escalation"
KINDS = (NUDGE, ESCALATION)

POSTED = "posted"
ANSWERED = "answered"
RESOLVED = "resolved"
LATE = "late"
NOWHERE = "nowhere"
UNTARGETED = "untargeted"
FAILED = "failed"

_RESOLVED_STATUS = "resolved"  # data.db.desk.RESOLVED


@dataclass(frozen=True)
class Unscheduled:
    """An unanswered ticket whose timers are missing, or are for another department."""

    ticket_id: int
    department: str
    opened_at: datetime


@dataclass(frozen=True)
class NewTimer:
    """A timer to store."""

    ticket_id: int
    kind: str
    department: str
    due_at: datetime
    #: Set to store it done already (``late``).
    outcome: str | None = None


@dataclass(frozen=True)
class DueTimer:
    """A timer whose time has come, with what the sweep needs to decide and post."""

    ticket_id: int
    kind: str
    department: str
    due_at: datetime
    opened_at: datetime
    #: Claimed by an earlier sweep that did not finish it: its post may have reached Slack.
    uncertain: bool
    #: The ticket's desk state now (None: it left the desk).
    status: str | None
    answered: bool
    current_department: str | None
    #: The ticket's card now (channel, ts), if it has one.
    card: tuple[str, str] | None

    @property
    def key(self) -> tuple[int, str]:
        """(ticket id, kind): the timer's identity."""
        return (self.ticket_id, self.kind)


@dataclass(frozen=True)
class Finished:
    """What became of one timer."""

    ticket_id: int
    kind: str
    outcome: str
    channel: str | None = None
    ts: str | None = None


def _unanswered(departments: Collection[str]) -> Any:
    return and_(
        ticket_states.c.first_response_at.is_(None),
        ticket_states.c.status != _RESOLVED_STATUS,
        ticket_states.c.department.in_(list(departments)),
    )


async def unscheduled(
    conn: AsyncConnection, departments: Collection[str], limit: int = 5_000
) -> list[Unscheduled]:
    """Unanswered tickets of ``departments`` without timers, or whose timers not yet done were
    set for another department (a correction moved them), oldest first."""
    if not departments:
        return []
    has_timer = exists().where(response_timers.c.ticket_id == ticket_states.c.ticket_id)
    moved = exists().where(
        response_timers.c.ticket_id == ticket_states.c.ticket_id,
        response_timers.c.done_at.is_(None),
        response_timers.c.department != ticket_states.c.department,
    )
    rows = await conn.execute(
        select(ticket_states.c.ticket_id, ticket_states.c.department, ticket_states.c.opened_at)
        .where(_unanswered(departments), ~has_timer | moved)
        .order_by(ticket_states.c.opened_at, ticket_states.c.ticket_id)
        .limit(limit)
    )
    return [Unscheduled(int(r.ticket_id), str(r.department), as_utc(r.opened_at)) for r in rows]


def _insert_new(dialect: str) -> Any:
    keys = ["ticket_id", "kind"]
    if dialect == "postgresql":
        return postgresql.insert(response_timers).on_conflict_do_nothing(index_elements=keys)
    if dialect == "sqlite":
        return sqlite.insert(response_timers).on_conflict_do_nothing(index_elements=keys)
    return insert(response_timers)  # pragma: no cover - only SQLite and PostgreSQL run


async def schedule(conn: AsyncConnection, timers: Sequence[NewTimer], *, at: datetime) -> None:
    """Store ``timers``, replacing the tickets' timers not yet done (a done one stays done)."""
    if not timers:
        return
    ids = sorted({t.ticket_id for t in timers})
    for start in range(0, len(ids), 500):
        await conn.execute(
            delete(response_timers).where(
                response_timers.c.ticket_id.in_(ids[start : start + 500]),
                response_timers.c.done_at.is_(None),
            )
        )
    await conn.execute(
        _insert_new(conn.dialect.name),
        [
            {
                "ticket_id": t.ticket_id,
                "kind": t.kind,
                "department": t.department,
                "due_at": t.due_at,
                "claimed_at": None,
                "done_at": at if t.outcome else None,
                "outcome": t.outcome,
                "channel": None,
                "ts": None,
            }
            for t in timers
        ],
    )


async def due(conn: AsyncConnection, now: datetime, limit: int = 500) -> list[DueTimer]:
    """Timers due by ``now`` and not done, earliest first, with their tickets' state."""
    rows = (
        await conn.execute(
            select(
                response_timers.c.ticket_id,
                response_timers.c.kind,
                response_timers.c.department,
                response_timers.c.due_at,
                response_timers.c.claimed_at,
                ticket_states.c.status,
                ticket_states.c.first_response_at,
                ticket_states.c.department.label("current_department"),
                ticket_states.c.opened_at,
            )
            .select_from(
                response_timers.outerjoin(
                    ticket_states, ticket_states.c.ticket_id == response_timers.c.ticket_id
                )
            )
            .where(response_timers.c.done_at.is_(None), response_timers.c.due_at <= now)
            .order_by(response_timers.c.due_at, response_timers.c.ticket_id)
            .limit(limit)
        )
    ).all()
    cards = await _cards(conn, {int(r.ticket_id) for r in rows})
    return [
        DueTimer(
            ticket_id=int(r.ticket_id),
            kind=str(r.kind),
            department=str(r.department),
            due_at=as_utc(r.due_at),
            opened_at=as_utc(r.opened_at) if r.opened_at is not None else as_utc(r.due_at),
            uncertain=r.claimed_at is not None,
            status=r.status,
            answered=r.first_response_at is not None,
            current_department=r.current_department,
            card=cards.get(int(r.ticket_id)),
        )
        for r in rows
    ]


async def _cards(conn: AsyncConnection, ticket_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """The latest card still standing of each ticket: (channel, ts)."""
    ids = sorted(ticket_ids)
    found: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ids), 500):
        rows = await conn.execute(
            select(routings.c.ticket_id, routings.c.channel, routings.c.ts)
            .where(
                routings.c.ticket_id.in_(ids[start : start + 500]),
                routings.c.kind == "card",
                routings.c.removed_at.is_(None),
                routings.c.ts.is_not(None),
            )
            .order_by(routings.c.id)
        )
        for row in rows:
            found[int(row.ticket_id)] = (str(row.channel), str(row.ts))  # later rows win
    return found


async def claim(conn: AsyncConnection, keys: Sequence[tuple[int, str]], *, at: datetime) -> None:
    """Mark timers as being posted (before the post, so a crash leaves them ``uncertain``)."""
    for start in range(0, len(keys), 400):
        await conn.execute(
            update(response_timers)
            .where(
                tuple_(response_timers.c.ticket_id, response_timers.c.kind).in_(
                    list(keys[start : start + 400])
                ),
                response_timers.c.done_at.is_(None),
            )
            .values(claimed_at=at)
        )


async def finish(conn: AsyncConnection, results: Sequence[Finished], *, at: datetime) -> None:
    """Record what became of timers (done: never posted again)."""
    if not results:
        return
    await conn.execute(
        update(response_timers)
        .where(
            response_timers.c.ticket_id == bindparam("t_id"),
            response_timers.c.kind == bindparam("t_kind"),
            response_timers.c.done_at.is_(None),
        )
        .values(
            done_at=at,
            outcome=bindparam("t_outcome"),
            channel=bindparam("t_channel"),
            ts=bindparam("t_ts"),
        ),
        [
            {
                "t_id": r.ticket_id,
                "t_kind": r.kind,
                "t_outcome": r.outcome,
                "t_channel": r.channel,
                "t_ts": r.ts,
            }
            for r in results
        ],
    )


async def timers_for(conn: AsyncConnection, ticket_id: int) -> dict[str, Finished | None]:
    """A ticket's timers by kind: what became of each (None while pending)."""
    rows = await conn.execute(
        select(response_timers).where(response_timers.c.ticket_id == ticket_id)
    )
    return {
        str(r.kind): None
        if r.done_at is None
        else Finished(int(r.ticket_id), str(r.kind), str(r.outcome), r.channel, r.ts)
        for r in rows
    }
