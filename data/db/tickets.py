"""Tickets and the predictions made for them.

A ticket is stored before anything else happens to it, unique on (workspace, channel, ts), so a
retried Slack event finds the row already there and does nothing.

Status: ``received`` (stored, not yet classified) -> ``classified`` (predicted, or corrected, and
its Slack state not yet brought in line) -> ``routed`` | ``shadowed`` | ``failed``. The bot resumes
every ``received`` and ``classified`` ticket on start.

Leases: with several bot replicas on one database, one process at a time routes a ticket. A
ticket is stored with the storing process as ``owner`` and a ``lease_until``; any other run
first takes the lease with ``claim_ticket`` (a compare-and-set: free, expired or already its
own), and a run that ends releases it (``lease_until`` NULL). Unfinished tickets whose lease
ran out (their process died) are taken over with ``claim_unfinished``.

An admin hands ``failed`` tickets back with ``requeue_failed`` (-> ``requeued``). A bot takes them
with ``claim_requeued``, one compare-and-set statement that moves each one back to ``classified``
(or ``received`` when it was never classified) for exactly one caller, so among several replicas
on one database only one routes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Executable,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from classifier.protocols import Prediction
from data.clock import as_utc
from data.db.database import utcnow
from data.db.schema import predictions, tickets

_DATETIME = tickets.c.updated_at.type

RECEIVED = "received"
CLASSIFIED = "classified"
ROUTED = "routed"
SHADOWED = "shadowed"
FAILED = "failed"
REQUEUED = "requeued"
#: Stored but never routed: the request filter said it is no request ("thanks!", "+1").
SKIPPED = "skipped"
#: An agent said it is no request: its card, tag and reply were withdrawn.
NOT_REQUEST = "not_request"

#: Every status a ticket can have, in the order of the flow.
STATUSES: tuple[str, ...] = (
    RECEIVED,
    CLASSIFIED,
    ROUTED,
    SHADOWED,
    FAILED,
    REQUEUED,
    SKIPPED,
    NOT_REQUEST,
)

#: Statuses the bot picks up again after a restart. ``requeued`` is not one of them: those
#: tickets are taken with ``claim_requeued``, so two replicas never both take one.
UNFINISHED: tuple[str, ...] = (RECEIVED, CLASSIFIED)


class TicketNotFoundError(LookupError):
    """No ticket with that id."""


@dataclass(frozen=True)
class NewTicket:
    """A ticket as read from Slack, before it is stored."""

    workspace: str
    channel: str
    ts: str
    user: str
    text: str
    #: None: a support channel; "dm": a direct message to the bot; "shortcut": "Send to triage".
    source: str | None = None
    #: Who sent it with the shortcut (they declared it a request).
    submitted_by: str | None = None


@dataclass(frozen=True)
class Ticket:
    """A stored ticket."""

    id: int
    workspace: str
    channel: str
    ts: str
    user: str
    text: str
    status: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    edited_at: datetime | None
    owner: str | None = None
    lease_until: datetime | None = None
    #: Top-level messages in the conversation, and the requester's replies in its thread.
    parts: int = 1
    follow_ups: int = 0
    last_follow_up: str | None = None
    source: str | None = None
    submitted_by: str | None = None
    #: When its conversation closes and it is routed (None: nothing waits).
    regroup_at: datetime | None = None
    #: When a message of it was last edited (an edit classifies it again; a follow-up only
    #: when the answer it was routed on was unsure: ``bot.routing``).
    text_edited_at: datetime | None = None


@dataclass(frozen=True)
class TicketSummary:
    """A ticket with the label of its latest prediction (None before it is classified)."""

    ticket: Ticket
    label: str | None


@dataclass(frozen=True)
class RequeueResult:
    """What ``requeue_failed`` did: the ids requeued, and the others with their status."""

    requeued: tuple[int, ...]
    #: id -> its status (not ``failed``), or None when there is no such ticket.
    refused: dict[int, str | None]


@dataclass(frozen=True)
class StoredPrediction:
    """A prediction as stored for a ticket."""

    id: int
    ticket_id: int
    label: str
    confidence: float
    ranking: tuple[tuple[str, float], ...]
    model_id: str
    latency_ms: float
    created_at: datetime

    @property
    def runner_ups(self) -> tuple[tuple[str, float], ...]:
        """The labels after the winner, best first."""
        return tuple(item for item in self.ranking if item[0] != self.label)


def _ticket(row: Any) -> Ticket:
    return Ticket(
        id=row.id,
        workspace=row.workspace,
        channel=row.channel,
        ts=row.ts,
        user=row.user,
        text=row.text,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        edited_at=row.edited_at,
        owner=row.owner,
        lease_until=_utc(row.lease_until),
        parts=row.parts,
        follow_ups=row.follow_ups,
        last_follow_up=row.last_follow_up,
        source=row.source,
        submitted_by=row.submitted_by,
        regroup_at=_utc(row.regroup_at),
        text_edited_at=row.text_edited_at,
    )


#: A ``tickets`` row as a ``Ticket`` (for the other repositories of this package).
ticket_from_row = _ticket


def _utc(moment: datetime | None) -> datetime | None:
    """A stored time as UTC, or None."""
    return None if moment is None else as_utc(moment)


def _prediction(row: Any) -> StoredPrediction:
    return StoredPrediction(
        id=row.id,
        ticket_id=row.ticket_id,
        label=row.label,
        confidence=row.confidence,
        ranking=tuple((str(label), float(score)) for label, score in row.ranking),
        model_id=row.model_id,
        latency_ms=row.latency_ms,
        created_at=row.created_at,
    )


# The hot statements are built once, with their values passed at execution: a statement
# built with ``.values(...)`` on every call is traversed again for its cache key each time.


@cache
def _insert_ignoring_duplicates(dialect: str) -> Executable:
    """INSERT .. ON CONFLICT DO NOTHING in the connection's dialect (one statement, no race)."""
    keys = ["workspace", "channel", "ts"]
    if dialect == "postgresql":
        statement: Any = postgresql.insert(tickets).on_conflict_do_nothing(index_elements=keys)
    elif dialect == "sqlite":
        statement = sqlite.insert(tickets).on_conflict_do_nothing(index_elements=keys)
    else:  # pragma: no cover - only SQLite and PostgreSQL run
        statement = insert(tickets)
    return statement.returning(tickets.c.id)  # type: ignore[no-any-return]


@cache
def _set_status(count_attempt: bool, unless_changed: bool, release: bool) -> Executable:
    condition = tickets.c.id == bindparam("b_id")
    if unless_changed:
        condition = condition & (tickets.c.updated_at == bindparam("b_seen", type_=_DATETIME))
    values: dict[str, Any] = {"status": bindparam("b_status"), "updated_at": bindparam("b_now")}
    if count_attempt:
        values["attempts"] = tickets.c.attempts + 1
    if release:
        values["lease_until"] = None
    return update(tickets).where(condition).values(values)


_INSERT_PREDICTION = predictions.insert().returning(predictions.c.id)


async def store_ticket(
    conn: AsyncConnection,
    new: NewTicket,
    *,
    owner: str | None = None,
    lease_until: datetime | None = None,
    status: str = RECEIVED,
    regroup_at: datetime | None = None,
) -> tuple[Ticket, bool]:
    """Store ``new`` unless a ticket with its (workspace, channel, ts) exists.

    ``owner`` and ``lease_until``: the storing process leases the ticket it will route.
    ``status``: ``SKIPPED`` for a message stored but not to be routed.
    ``regroup_at``: routed only from then on (its conversation may still grow).
    Returns the stored ticket and whether this call created it (False for a retried event).
    """
    now = utcnow()
    result = await conn.execute(
        _insert_ignoring_duplicates(conn.dialect.name),
        {
            "workspace": new.workspace,
            "channel": new.channel,
            "ts": new.ts,
            "user": new.user,
            "text": new.text,
            "status": status,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
            "owner": owner,
            "lease_until": lease_until,
            "parts": 1,
            "follow_ups": 0,
            "regroup_at": regroup_at,
            "source": new.source,
            "submitted_by": new.submitted_by,
        },
    )
    created_id = result.scalar_one_or_none()
    if created_id is not None:
        ticket = Ticket(
            id=int(created_id),
            workspace=new.workspace,
            channel=new.channel,
            ts=new.ts,
            user=new.user,
            text=new.text,
            status=status,
            attempts=0,
            created_at=now,
            updated_at=now,
            edited_at=None,
            owner=owner,
            lease_until=lease_until,
            source=new.source,
            submitted_by=new.submitted_by,
            regroup_at=regroup_at,
        )
        return ticket, True
    existing = await find_ticket(conn, new.workspace, new.channel, new.ts)
    assert existing is not None  # stored by the earlier delivery
    return existing, False


async def get_ticket(conn: AsyncConnection, ticket_id: int) -> Ticket:
    """The ticket ``ticket_id``; raises TicketNotFoundError."""
    row = (await conn.execute(select(tickets).where(tickets.c.id == ticket_id))).first()
    if row is None:
        raise TicketNotFoundError(f"No ticket with id {ticket_id}.")
    return _ticket(row)


async def find_ticket(
    conn: AsyncConnection, workspace: str, channel: str, ts: str
) -> Ticket | None:
    """The ticket posted as message ``ts`` in ``channel``, or None."""
    row = (
        await conn.execute(
            select(tickets).where(
                tickets.c.workspace == workspace, tickets.c.channel == channel, tickets.c.ts == ts
            )
        )
    ).first()
    return _ticket(row) if row is not None else None


async def find_ticket_by_message(conn: AsyncConnection, channel: str, ts: str) -> Ticket | None:
    """The ticket whose own message is ``channel``/``ts`` in any workspace, or None."""
    row = (
        await conn.execute(
            select(tickets).where(tickets.c.channel == channel, tickets.c.ts == ts).limit(1)
        )
    ).first()
    return _ticket(row) if row is not None else None


async def set_status(
    conn: AsyncConnection,
    ticket_id: int,
    status: str,
    *,
    count_attempt: bool = False,
    unless_changed_since: datetime | None = None,
    release: bool = False,
) -> datetime | None:
    """Move a ticket to ``status`` (and count one more routing attempt when asked).

    ``release``: also give up the ticket's lease (its run is over).

    With ``unless_changed_since`` (an ``updated_at`` read earlier) nothing happens if the ticket
    changed meanwhile, e.g. a correction arrived while it was being routed. Returns the new
    ``updated_at``, or None when nothing was changed.
    """
    now = utcnow()
    params: dict[str, Any] = {"b_id": ticket_id, "b_status": status, "b_now": now}
    if unless_changed_since is not None:
        params["b_seen"] = unless_changed_since
    statement = _set_status(count_attempt, unless_changed_since is not None, release)
    result = await conn.execute(statement, params)
    return now if result.rowcount else None


async def reset_attempts(conn: AsyncConnection, ticket_id: int) -> None:
    """Forget earlier failed attempts (a person asked for new work on the ticket)."""
    await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(attempts=0))


async def edit_text(conn: AsyncConnection, ticket_id: int, text: str) -> None:
    """Replace the ticket's text after an edit and queue it to be classified again."""
    now = utcnow()
    await conn.execute(
        update(tickets)
        .where(tickets.c.id == ticket_id)
        .values(
            text=text,
            edited_at=now,
            text_edited_at=now,
            updated_at=now,
            status=RECEIVED,
            attempts=0,
        )
    )


def _lease_free(owner: str, now: datetime) -> Any:
    """The ticket's lease is free, ran out, or is ``owner``'s already."""
    return or_(
        tickets.c.lease_until.is_(None), tickets.c.lease_until < now, tickets.c.owner == owner
    )


async def claim_ticket(
    conn: AsyncConnection,
    ticket_id: int,
    owner: str,
    lease_until: datetime,
    *,
    now: datetime | None = None,
) -> bool:
    """Take (or renew) the lease of one ticket for ``owner``; False if another process holds it.

    ``now``: the time leases are compared with (the caller's clock; default the real time).

    One UPDATE whose condition the database re-checks on a row changed concurrently, so two
    processes never both get the lease.
    """
    result = await conn.execute(
        update(tickets)
        .where(tickets.c.id == ticket_id, _lease_free(owner, now or utcnow()))
        .values(owner=owner, lease_until=lease_until)
    )
    return bool(result.rowcount)


async def claim_unfinished(
    conn: AsyncConnection,
    owner: str,
    lease_until: datetime,
    *,
    others_only: bool = False,
    limit: int = 10_000,
    now: datetime | None = None,
) -> list[int]:
    """Take the leases of unfinished tickets nobody holds (oldest first); returns their ids.

    ``others_only`` leaves out tickets ``owner`` itself leased: a running process already has
    those in hand (maybe waiting to retry), only a restarted one takes them back. ``now``: the
    time leases are compared with (the caller's clock; default the real time).
    """
    now = now or utcnow()
    free = or_(tickets.c.lease_until.is_(None), tickets.c.lease_until < now)
    if not others_only:
        free = or_(free, tickets.c.owner == owner)
    else:
        free = and_(free, or_(tickets.c.owner.is_(None), tickets.c.owner != owner))
    # A conversation still open is routed when it closes (bot.conversations), not before.
    free = and_(free, or_(tickets.c.regroup_at.is_(None), tickets.c.regroup_at <= now))
    waiting = (
        select(tickets.c.id)
        .where(tickets.c.status.in_(UNFINISHED), free)
        .order_by(tickets.c.id)
        .limit(limit)
    )
    result = await conn.execute(
        update(tickets)
        .where(tickets.c.id.in_(waiting), tickets.c.status.in_(UNFINISHED), free)
        .values(owner=owner, lease_until=lease_until)
        .returning(tickets.c.id)
    )
    return sorted(int(ticket_id) for ticket_id in result.scalars())


async def release_ticket(conn: AsyncConnection, ticket_id: int, owner: str) -> None:
    """Give up ``owner``'s lease of a ticket (another process may take it at once)."""
    await conn.execute(
        update(tickets)
        .where(tickets.c.id == ticket_id, tickets.c.owner == owner)
        .values(lease_until=None)
    )


@dataclass(frozen=True)
class FailedRun:
    """What ``count_failed_run`` did: the ticket's failed attempts so far, and whether that
    made it ``failed``."""

    attempts: int
    failed: bool
    channel: str


async def count_failed_run(
    conn: AsyncConnection, ticket_id: int, owner: str, max_attempts: int
) -> FailedRun | None:
    """Count one failed run of an unfinished ticket and give up ``owner``'s lease of it.

    At ``max_attempts`` the ticket becomes ``failed`` (an admin can retry it). None when the
    ticket is not unfinished (its lease is given up all the same).
    """
    row = (
        await conn.execute(
            update(tickets)
            .where(tickets.c.id == ticket_id, tickets.c.status.in_(UNFINISHED))
            .values(attempts=tickets.c.attempts + 1)
            .returning(tickets.c.attempts, tickets.c.channel)
        )
    ).first()
    if row is None:
        await release_ticket(conn, ticket_id, owner)
        return None
    attempts = int(row.attempts)
    if attempts >= max_attempts:
        await set_status(conn, ticket_id, FAILED, release=True)
    else:
        await release_ticket(conn, ticket_id, owner)
    return FailedRun(attempts, attempts >= max_attempts, str(row.channel))


async def release_unfinished(conn: AsyncConnection, owner: str) -> int:
    """Give up ``owner``'s leases of unfinished tickets (a process stopping); returns how many."""
    result = await conn.execute(
        update(tickets)
        .where(tickets.c.owner == owner, tickets.c.status.in_(UNFINISHED))
        .values(lease_until=None)
    )
    return int(result.rowcount or 0)


async def unfinished_tickets(conn: AsyncConnection, limit: int = 10_000) -> list[int]:
    """Ids of tickets stored but not yet routed, oldest first, whoever holds them (a bot
    resumes only those it can claim: ``claim_unfinished``)."""
    rows = await conn.execute(
        select(tickets.c.id)
        .where(tickets.c.status.in_(UNFINISHED))
        .order_by(tickets.c.id)
        .limit(limit)
    )
    return [int(row.id) for row in rows]


async def list_tickets(
    conn: AsyncConnection, *, status: str | None = None, limit: int = 20
) -> list[TicketSummary]:
    """The newest ``limit`` tickets (only those in ``status`` when given), newest first."""
    latest_label = (
        select(predictions.c.label)
        .where(predictions.c.ticket_id == tickets.c.id)
        .order_by(predictions.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = select(tickets, latest_label.label("latest_label")).order_by(tickets.c.id.desc())
    if status is not None:
        query = query.where(tickets.c.status == status)
    rows = await conn.execute(query.limit(limit))
    return [TicketSummary(_ticket(row), row.latest_label) for row in rows]


async def count_in_status(conn: AsyncConnection, status: str) -> int:
    """How many tickets are in ``status`` (one indexed count)."""
    count = await conn.scalar(
        select(func.count()).select_from(tickets).where(tickets.c.status == status)
    )
    return int(count or 0)


async def requeue_failed(
    conn: AsyncConnection, ticket_ids: Sequence[int] | None = None
) -> RequeueResult:
    """Mark failed tickets ``requeued`` with their attempts reset, for a bot to claim.

    ``ticket_ids`` None means every failed ticket. Only tickets still ``failed`` change (a
    compare-and-set on the status); the other ids asked for are returned with their status.
    The write comes first, so SQLite takes its write lock before anything is read.
    """
    statement = (
        update(tickets)
        .where(tickets.c.status == FAILED)
        .values(status=REQUEUED, attempts=0, updated_at=utcnow())
        .returning(tickets.c.id)
    )
    if ticket_ids is not None:
        statement = statement.where(tickets.c.id.in_(list(ticket_ids)))
    requeued = sorted(int(ticket_id) for ticket_id in (await conn.execute(statement)).scalars())
    refused: dict[int, str | None] = {}
    done = set(requeued)
    rest = [ticket_id for ticket_id in ticket_ids or () if ticket_id not in done]
    if rest:
        rows = await conn.execute(
            select(tickets.c.id, tickets.c.status).where(tickets.c.id.in_(rest))
        )
        found = {int(row.id): str(row.status) for row in rows}
        refused = {ticket_id: found.get(ticket_id) for ticket_id in rest}
    return RequeueResult(tuple(requeued), refused)


async def requeue_routed(conn: AsyncConnection, ticket_ids: Sequence[int]) -> list[int]:
    """Mark the routed tickets among ``ticket_ids`` ``requeued``, for a bot to claim and route
    again (its label changed: the card and tag move); returns their ids."""
    if not ticket_ids:
        return []
    statement = (
        update(tickets)
        .where(tickets.c.status == ROUTED, tickets.c.id.in_(list(ticket_ids)))
        .values(status=REQUEUED, attempts=0, updated_at=utcnow())
        .returning(tickets.c.id)
    )
    return sorted(int(ticket_id) for ticket_id in (await conn.execute(statement)).scalars())


async def claim_requeued(
    conn: AsyncConnection,
    limit: int = 500,
    *,
    owner: str | None = None,
    lease_until: datetime | None = None,
) -> list[int]:
    """Take up to ``limit`` requeued tickets for this process; returns their ids, oldest first.

    One UPDATE .. WHERE status = 'requeued' .. RETURNING: SQLite runs it under its write lock,
    and PostgreSQL re-checks the condition on a row another transaction changed meanwhile, so
    a ticket claimed elsewhere is skipped: each ticket goes to exactly one caller. A claimed
    ticket is ``classified`` (``received`` if it has no prediction), where the router resumes.
    """
    waiting = (
        select(tickets.c.id).where(tickets.c.status == REQUEUED).order_by(tickets.c.id).limit(limit)
    )
    classified = exists().where(predictions.c.ticket_id == tickets.c.id)
    result = await conn.execute(
        update(tickets)
        .where(tickets.c.status == REQUEUED, tickets.c.id.in_(waiting))
        .values(
            status=case((classified, CLASSIFIED), else_=RECEIVED),
            updated_at=utcnow(),
            owner=owner,
            lease_until=lease_until,
        )
        .returning(tickets.c.id)
    )
    return sorted(int(ticket_id) for ticket_id in result.scalars())


async def count_by_status(conn: AsyncConnection) -> dict[str, int]:
    """How many tickets are in each status."""
    rows = await conn.execute(select(tickets.c.status, func.count()).group_by(tickets.c.status))
    return {str(status): int(count) for status, count in rows}


async def save_prediction(
    conn: AsyncConnection, ticket_id: int, prediction: Prediction
) -> StoredPrediction:
    """Store a model's prediction for a ticket; returns it as stored."""
    now = utcnow()
    ranking = tuple((label, float(score)) for label, score in prediction.ranking)
    result = await conn.execute(
        _INSERT_PREDICTION,
        {
            "ticket_id": ticket_id,
            "label": prediction.label,
            "confidence": float(prediction.confidence),
            "ranking": [list(item) for item in ranking],
            "model_id": prediction.model_id,
            "latency_ms": float(prediction.latency_ms),
            "created_at": now,
        },
    )
    return StoredPrediction(
        id=int(result.scalar_one()),
        ticket_id=ticket_id,
        label=prediction.label,
        confidence=float(prediction.confidence),
        ranking=ranking,
        model_id=prediction.model_id,
        latency_ms=float(prediction.latency_ms),
        created_at=now,
    )


async def latest_prediction(conn: AsyncConnection, ticket_id: int) -> StoredPrediction | None:
    """The newest prediction for the ticket, or None before it is classified."""
    row = (
        await conn.execute(
            select(predictions)
            .where(predictions.c.ticket_id == ticket_id)
            .order_by(predictions.c.id.desc())
            .limit(1)
        )
    ).first()
    return _prediction(row) if row is not None else None
