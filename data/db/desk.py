"""The desk: who owns each routed ticket and where it stands (open, in progress, resolved).

A ticket enters the desk when it is routed (``open_ticket``): one ``ticket_states`` row, kept
current, and one ``ticket_transitions`` row per change, with who, when, from, to and through
what (``source``). Status::

    open --take--> in_progress (assignee) --resolve--> resolved --reopen--> in_progress | open
      `-------------------------resolve-------------------^

``resolve`` from ``open`` makes the resolver the assignee. ``reopen`` goes back to
``in_progress`` with the same assignee (``open`` if there was none). A correction
(``change_department``) keeps the assignee, or drops them and reopens the ticket as ``open`` in
the new department (the bot says which: only it knows the department channels' members).

Times are the caller's (``at``: its ``Clock``), so tests and timers agree on them.
``opened_at`` is when the requester asked; ``first_response_at`` is set once, by the first agent
reply in the ticket's thread (``record_first_response``), which also takes an open ticket;
``resolved_at`` is the latest resolution (cleared by a reopen). Status, owner and both times are
columns of one row per ticket, indexed for the figures and for "my tickets".

One owner across replicas: every change is one conditional UPDATE (compare-and-set on the
status, and on the department when the caller saw one), which the database re-checks on a row
changed concurrently; of two agents taking the same ticket at once exactly one gets
``APPLIED``, the other ``REFUSED`` with the winner as ``state.assignee``.

Idempotent: a change may carry a ``request_key`` (e.g. the button press's ``action_ts``); a key
already stored answers ``DUPLICATE`` and changes nothing. Two deliveries of one key racing each
other: the unique key makes the later transaction fail (``IntegrityError``); calling again then
answers ``DUPLICATE``.

The API, each taking an ``AsyncConnection`` inside the caller's transaction:

- ``open_ticket``: enter the desk (idempotent per ticket).
- ``take``, ``resolve``, ``reopen``: an agent's action; -> ``DeskChange``.
- ``record_first_response``: an agent replied in the thread; -> ``DeskChange``.
- ``change_department``: a correction moved the ticket; -> ``DeskChange``.
- ``withdraw``: an agent said it is no request: it leaves the desk (a routing enters it again).
- ``set_permalink``: remember the ticket's link.
- ``get_state``, ``states_for``, ``transitions_for``, ``tickets_of``: reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from data.clock import as_utc
from data.db.schema import ticket_states, ticket_transitions

OPEN = "open"
IN_PROGRESS = "in_progress"
RESOLVED = "resolved"

#: Every desk status, in the order of the flow.
STATUSES: tuple[str, ...] = (OPEN, IN_PROGRESS, RESOLVED)

# Where a change came from (``ticket_transitions.source``).
ROUTE = "route"
BUTTON = "button"
REACTION = "reaction"
REPLY = "reply"
CORRECTION = "correction"
COMMAND = "command"
WITHDRAW = "withdraw"  # an agent said it is no request (the request filter's emoji)

#: ``ticket_transitions.to_status`` of a ticket that left the desk (``withdraw``): it has no
#: ``ticket_states`` row any more, so it is in no backlog, figure or timer.
WITHDRAWN = "withdrawn"

#: The actor of changes the bot makes on its own (a ticket entering the desk).
BOT = "bot"

# What a change did (``DeskChange.outcome``).
APPLIED = "applied"
DUPLICATE = "duplicate"  # its request_key was seen before: nothing changed
REFUSED = "refused"  # the ticket is not in a state that allows it: see ``reason``
MISSING = "missing"  # no such ticket in the desk (never routed, or deleted)

# Why a change was refused (``DeskChange.reason``).
TAKEN = "taken"  # someone else owns it: state.assignee
ALREADY_YOURS = "already_yours"
ALREADY_RESOLVED = "already_resolved"
NOT_RESOLVED = "not_resolved"  # reopen of a ticket that is not resolved
MOVED = "moved"  # the caller saw another department: a correction moved it meanwhile
ALREADY_ANSWERED = "already_answered"  # the first response is recorded already


@dataclass(frozen=True)
class DeskState:
    """Where one ticket stands."""

    ticket_id: int
    department: str
    status: str
    assignee: str | None
    opened_at: datetime
    permalink: str | None
    taken_at: datetime | None
    first_response_at: datetime | None
    first_responder: str | None
    resolved_at: datetime | None
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class Transition:
    """One stored change of a ticket's desk state."""

    id: int
    ticket_id: int
    from_status: str | None
    to_status: str
    assignee: str | None
    department: str
    actor: str
    source: str
    request_key: str | None
    at: datetime


@dataclass(frozen=True)
class DeskChange:
    """What a change did: ``outcome`` (APPLIED, DUPLICATE, REFUSED, MISSING), the ticket's
    state afterwards (None when MISSING), the transition stored (when APPLIED and the status,
    owner or department changed) and, when REFUSED, ``reason``."""

    outcome: str
    state: DeskState | None
    transition: Transition | None = None
    reason: str | None = None

    @property
    def applied(self) -> bool:
        """Whether this call changed the ticket."""
        return self.outcome == APPLIED


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def _state(row: Any) -> DeskState:
    return DeskState(
        ticket_id=int(row.ticket_id),
        department=str(row.department),
        status=str(row.status),
        assignee=row.assignee,
        opened_at=as_utc(row.opened_at),
        permalink=row.permalink,
        taken_at=_utc(row.taken_at),
        first_response_at=_utc(row.first_response_at),
        first_responder=row.first_responder,
        resolved_at=_utc(row.resolved_at),
        updated_at=as_utc(row.updated_at),
        version=int(row.version),
    )


def _transition(row: Any) -> Transition:
    return Transition(
        id=int(row.id),
        ticket_id=int(row.ticket_id),
        from_status=row.from_status,
        to_status=str(row.to_status),
        assignee=row.assignee,
        department=str(row.department),
        actor=str(row.actor),
        source=str(row.source),
        request_key=row.request_key,
        at=as_utc(row.at),
    )


_INSERT_TRANSITION = insert(ticket_transitions).returning(ticket_transitions.c.id)


async def _record(
    conn: AsyncConnection,
    before: str | None,
    after: DeskState,
    *,
    actor: str,
    source: str,
    key: str | None,
    at: datetime,
) -> Transition:
    values = {
        "ticket_id": after.ticket_id,
        "from_status": before,
        "to_status": after.status,
        "assignee": after.assignee,
        "department": after.department,
        "actor": actor,
        "source": source,
        "request_key": key,
        "at": at,
    }
    transition_id = (await conn.execute(_INSERT_TRANSITION, values)).scalar_one()
    return Transition(id=int(transition_id), **values)  # type: ignore[arg-type]


# The statements of a press are built once, their values bound at execution: a statement
# built per call cost more in SQLAlchemy than SQLite takes to run it (a take was about 1 ms of
# CPU, on the event loop, in the transaction an acknowledgement waits for).
_SEEN = select(ticket_transitions.c.id).where(
    ticket_transitions.c.request_key == bindparam("b_key")
)
_GET_STATE = select(ticket_states).where(ticket_states.c.ticket_id == bindparam("b_ticket_id"))
_TRANSITIONS_FOR = (
    select(ticket_transitions)
    .where(ticket_transitions.c.ticket_id == bindparam("b_ticket_id"))
    .order_by(ticket_transitions.c.id)
)
_MARK_SYNCED = (
    update(ticket_states)
    .where(
        ticket_states.c.ticket_id == bindparam("b_ticket_id"),
        ticket_states.c.version == bindparam("b_version"),
    )
    .values(synced_version=bindparam("b_version"))
)
_MARK_SYNCED_FROM = _MARK_SYNCED.where(ticket_states.c.synced_version == bindparam("b_was"))


async def _seen(conn: AsyncConnection, key: str | None) -> bool:
    if key is None:
        return False
    # Only ``execute``: these functions also run inside the bot's group commit (bot/group_commit).
    found = await conn.execute(_SEEN, {"b_key": key})
    return found.first() is not None


async def get_state(conn: AsyncConnection, ticket_id: int) -> DeskState | None:
    """Where the ticket stands, or None when it is not in the desk."""
    row = (await conn.execute(_GET_STATE, {"b_ticket_id": ticket_id})).first()
    return _state(row) if row is not None else None


async def states_for(conn: AsyncConnection, ticket_ids: Iterable[int]) -> dict[int, DeskState]:
    """The states of the tickets among ``ticket_ids`` that are in the desk, by id."""
    ids = list(ticket_ids)
    result: dict[int, DeskState] = {}
    for start in range(0, len(ids), 500):
        rows = await conn.execute(
            select(ticket_states).where(ticket_states.c.ticket_id.in_(ids[start : start + 500]))
        )
        result.update((int(row.ticket_id), _state(row)) for row in rows)
    return result


async def transitions_for(conn: AsyncConnection, ticket_id: int) -> list[Transition]:
    """A ticket's transitions, oldest first."""
    rows = await conn.execute(_TRANSITIONS_FOR, {"b_ticket_id": ticket_id})
    return [_transition(row) for row in rows]


async def tickets_of(
    conn: AsyncConnection, assignee: str, statuses: Iterable[str] = (IN_PROGRESS,)
) -> list[DeskState]:
    """The tickets ``assignee`` owns in ``statuses``, oldest first."""
    rows = await conn.execute(
        select(ticket_states)
        .where(ticket_states.c.assignee == assignee, ticket_states.c.status.in_(list(statuses)))
        .order_by(ticket_states.c.opened_at, ticket_states.c.ticket_id)
    )
    return [_state(row) for row in rows]


def _insert_state(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(ticket_states).on_conflict_do_nothing(index_elements=["ticket_id"])
    if dialect == "sqlite":
        return sqlite.insert(ticket_states).on_conflict_do_nothing(index_elements=["ticket_id"])
    return insert(ticket_states)  # pragma: no cover - only SQLite and PostgreSQL run


async def open_ticket(
    conn: AsyncConnection,
    ticket_id: int,
    department: str,
    *,
    opened_at: datetime,
    at: datetime,
    permalink: str | None = None,
) -> DeskChange:
    """Enter a routed ticket into the desk as ``open`` in ``department``.

    ``opened_at``: when the requester asked; ``permalink``: the ticket's link in Slack.

    Idempotent per ticket: a ticket already in the desk is left as it is (DUPLICATE with its
    state), so a ticket routed again after a crash or a requeue keeps its owner and history.
    """
    values = {
        "ticket_id": ticket_id,
        "department": department,
        "status": OPEN,
        "assignee": None,
        "opened_at": opened_at,
        "permalink": permalink,
        "taken_at": None,
        "first_response_at": None,
        "first_responder": None,
        "resolved_at": None,
        "updated_at": at,
        "version": 1,
    }
    statement = _insert_state(conn.dialect.name).returning(ticket_states.c.ticket_id)
    created = (await conn.execute(statement, values)).scalar_one_or_none()
    if created is None:
        return DeskChange(DUPLICATE, await get_state(conn, ticket_id))
    state = DeskState(**values)  # type: ignore[arg-type]
    transition = await _record(conn, None, state, actor=BOT, source=ROUTE, key=None, at=at)
    return DeskChange(APPLIED, state, transition)


@cache
def _compare_and_set_statement(
    keys: tuple[str, ...], department: bool, version: bool, unanswered: bool
) -> Any:
    """The UPDATE of ``_compare_and_set`` for one shape of call (a handful in all)."""
    condition = (
        ticket_states.c.ticket_id == bindparam("b_ticket_id")
    ) & ticket_states.c.status.in_(bindparam("b_statuses", expanding=True))
    if department:
        condition = condition & (ticket_states.c.department == bindparam("b_department"))
    if version:
        condition = condition & (ticket_states.c.version == bindparam("b_version"))
    if unanswered:
        condition = condition & ticket_states.c.first_response_at.is_(None)
    values: dict[str, Any] = {}
    for key in keys:
        column = ticket_states.c[key]
        value = bindparam(f"v_{key}", type_=column.type)
        # ``taken_at`` is set once: a ticket taken, reopened and taken again keeps the first.
        values[key] = func.coalesce(column, value) if key == "taken_at" else value
    return (
        update(ticket_states)
        .where(condition)
        .values(version=ticket_states.c.version + 1, **values)
        .returning(*ticket_states.c)
    )


async def _compare_and_set(
    conn: AsyncConnection,
    ticket_id: int,
    *,
    statuses: tuple[str, ...],
    department: str | None,
    values: dict[str, Any],
    version: int | None = None,
    unanswered: bool = False,
) -> DeskState | None:
    """One UPDATE of the ticket's row if its status is in ``statuses`` (and its department is
    ``department`` when given, its version ``version`` when given, and it has no first
    response when ``unanswered``); returns the new state, or None when the condition failed.
    A ``taken_at`` in ``values`` is set only when the row has none."""
    keys = tuple(sorted(values))
    statement = _compare_and_set_statement(
        keys, department is not None, version is not None, unanswered
    )
    parameters: dict[str, Any] = {f"v_{key}": values[key] for key in keys}
    parameters.update(b_ticket_id=ticket_id, b_statuses=list(statuses))
    if department is not None:
        parameters["b_department"] = department
    if version is not None:
        parameters["b_version"] = version
    row = (await conn.execute(statement, parameters)).first()
    return _state(row) if row is not None else None


async def _refusal(
    conn: AsyncConnection, ticket_id: int, department: str | None, agent: str, action: str
) -> DeskChange:
    """Why a compare-and-set failed, read after it."""
    state = await get_state(conn, ticket_id)
    if state is None:
        return DeskChange(MISSING, None)
    if department is not None and state.department != department:
        return DeskChange(REFUSED, state, reason=MOVED)
    if action == "reopen":
        return DeskChange(REFUSED, state, reason=NOT_RESOLVED)
    if state.status == RESOLVED:
        return DeskChange(REFUSED, state, reason=ALREADY_RESOLVED)
    if state.assignee == agent:
        return DeskChange(REFUSED, state, reason=ALREADY_YOURS)
    return DeskChange(REFUSED, state, reason=TAKEN)


async def take(
    conn: AsyncConnection,
    ticket_id: int,
    agent: str,
    *,
    at: datetime,
    source: str,
    request_key: str | None = None,
    department: str | None = None,
) -> DeskChange:
    """``agent`` takes an open ticket (-> ``in_progress``, owned by them).

    ``department``: the department the caller saw (its card's); REFUSED with MOVED when a
    correction moved the ticket meanwhile. REFUSED with TAKEN (the owner is
    ``state.assignee``), ALREADY_YOURS or ALREADY_RESOLVED otherwise.
    """
    if await _seen(conn, request_key):
        return DeskChange(DUPLICATE, await get_state(conn, ticket_id))
    values = {
        "status": IN_PROGRESS,
        "assignee": agent,
        "taken_at": at,
        "updated_at": at,
    }
    state = await _compare_and_set(
        conn, ticket_id, statuses=(OPEN,), department=department, values=values
    )
    if state is None:
        return await _refusal(conn, ticket_id, department, agent, "take")
    transition = await _record(
        conn, OPEN, state, actor=agent, source=source, key=request_key, at=at
    )
    return DeskChange(APPLIED, state, transition)


async def resolve(
    conn: AsyncConnection,
    ticket_id: int,
    agent: str,
    *,
    at: datetime,
    source: str,
    request_key: str | None = None,
    department: str | None = None,
) -> DeskChange:
    """``agent`` resolves an open or in-progress ticket (an open one becomes theirs).

    REFUSED with ALREADY_RESOLVED, or MOVED (see ``take``).
    """

    def resolved(before: DeskState) -> dict[str, Any]:
        values: dict[str, Any] = {"status": RESOLVED, "resolved_at": at, "updated_at": at}
        if before.assignee is None:
            values["assignee"] = agent
        return values

    return await _change_as_read(
        conn,
        ticket_id,
        agent,
        "resolve",
        statuses=(OPEN, IN_PROGRESS),
        values=resolved,
        at=at,
        source=source,
        request_key=request_key,
        department=department,
    )


async def reopen(
    conn: AsyncConnection,
    ticket_id: int,
    agent: str,
    *,
    at: datetime,
    source: str,
    request_key: str | None = None,
    department: str | None = None,
) -> DeskChange:
    """``agent`` reopens a resolved ticket: back to ``in_progress`` with its assignee (``open``
    when it has none). REFUSED with NOT_RESOLVED, or MOVED (see ``take``)."""

    def reopened(before: DeskState) -> dict[str, Any]:
        status = IN_PROGRESS if before.assignee is not None else OPEN
        return {"status": status, "resolved_at": None, "updated_at": at}

    return await _change_as_read(
        conn,
        ticket_id,
        agent,
        "reopen",
        statuses=(RESOLVED,),
        values=reopened,
        at=at,
        source=source,
        request_key=request_key,
        department=department,
    )


async def _change_as_read(
    conn: AsyncConnection,
    ticket_id: int,
    agent: str,
    action: str,
    *,
    statuses: tuple[str, ...],
    values: Callable[[DeskState], dict[str, Any]],
    at: datetime,
    source: str,
    request_key: str | None,
    department: str | None,
) -> DeskChange:
    """``values(state)`` applied to the ticket as it was read, if its status is in ``statuses``.

    The version makes it a compare-and-set on what was read (status and assignee alike): when
    the ticket changed in between, it is read again and the change decided anew; when it did
    not, the change is refused (``_refusal`` says why).
    """
    if await _seen(conn, request_key):
        return DeskChange(DUPLICATE, await get_state(conn, ticket_id))
    while True:
        before = await get_state(conn, ticket_id)
        if before is None:
            return DeskChange(MISSING, None)
        state = await _compare_and_set(
            conn,
            ticket_id,
            statuses=statuses,
            department=department,
            values=values(before),
            version=before.version,
        )
        if state is not None:
            break
        if (await get_state(conn, ticket_id)) == before:
            return await _refusal(conn, ticket_id, department, agent, action)
    transition = await _record(
        conn, before.status, state, actor=agent, source=source, key=request_key, at=at
    )
    return DeskChange(APPLIED, state, transition)


async def record_first_response(
    conn: AsyncConnection,
    ticket_id: int,
    agent: str,
    *,
    at: datetime,
    request_key: str | None = None,
) -> DeskChange:
    """An agent replied in the ticket's thread: the first such reply is the first response.

    Sets ``first_response_at`` once (REFUSED with ALREADY_ANSWERED afterwards) and, when the
    ticket is still open, also takes it for ``agent`` (a transition with source ``reply``).
    APPLIED without a transition when only the time was recorded.
    """
    if await _seen(conn, request_key):
        return DeskChange(DUPLICATE, await get_state(conn, ticket_id))
    answered = {"first_response_at": at, "first_responder": agent}
    taken = await _compare_and_set(
        conn,
        ticket_id,
        statuses=(OPEN,),
        department=None,
        values={
            **answered,
            "status": IN_PROGRESS,
            "assignee": agent,
            "taken_at": at,
            "updated_at": at,
        },
        unanswered=True,
    )
    if taken is not None:
        transition = await _record(
            conn, OPEN, taken, actor=agent, source=REPLY, key=request_key, at=at
        )
        return DeskChange(APPLIED, taken, transition)
    state = await _compare_and_set(
        conn,
        ticket_id,
        statuses=STATUSES,
        department=None,
        values=answered,
        unanswered=True,
    )
    if state is not None:
        return DeskChange(APPLIED, state)
    current = await get_state(conn, ticket_id)
    if current is None:
        return DeskChange(MISSING, None)
    return DeskChange(REFUSED, current, reason=ALREADY_ANSWERED)


async def change_department(
    conn: AsyncConnection,
    ticket_id: int,
    department: str,
    *,
    keep: str | None,
    actor: str,
    at: datetime,
    source: str = CORRECTION,
    request_key: str | None = None,
) -> DeskChange:
    """A correction (or an edit classified again) moved the ticket to ``department``.

    ``keep``: the agent the caller found in the new department's channel. When the ticket is
    in progress and its assignee is not ``keep``, it goes back to ``open`` without an owner in
    the new department; otherwise it keeps its status and owner. A resolved ticket stays
    resolved. A ticket already in ``department`` is left alone (REFUSED, reason None).
    """
    if await _seen(conn, request_key):
        return DeskChange(DUPLICATE, await get_state(conn, ticket_id))
    before = await get_state(conn, ticket_id)
    if before is None:
        return DeskChange(MISSING, None)
    if before.department == department:
        return DeskChange(REFUSED, before)
    values: dict[str, Any] = {"department": department, "updated_at": at}
    if before.status == IN_PROGRESS and (keep is None or before.assignee != keep):
        values.update(status=OPEN, assignee=None)
    state = await _compare_and_set(
        conn,
        ticket_id,
        statuses=STATUSES,
        department=None,
        values=values,
        version=before.version,
    )
    if state is None:  # changed in between: decide again on what is there now
        return await change_department(
            conn,
            ticket_id,
            department,
            keep=keep,
            actor=actor,
            at=at,
            source=source,
            request_key=request_key,
        )
    transition = await _record(
        conn, before.status, state, actor=actor, source=source, key=request_key, at=at
    )
    return DeskChange(APPLIED, state, transition)


async def set_permalink(conn: AsyncConnection, ticket_id: int, permalink: str) -> None:
    """Remember the ticket's Slack link (not a transition: nothing about it changed)."""
    await conn.execute(
        update(ticket_states)
        .where(ticket_states.c.ticket_id == ticket_id)
        .values(permalink=permalink)
    )


async def withdraw(
    conn: AsyncConnection, ticket_id: int, *, actor: str, at: datetime
) -> DeskChange:
    """The ticket is no request after all (an agent's not-a-ticket emoji): it leaves the desk.

    Its row is deleted, so it is in no backlog, "my tickets" or figure, and its timers are
    cancelled (``data.db.response_timers``: a ticket out of the desk); a transition to
    ``WITHDRAWN`` keeps the record. Routed again later (the emoji taken back), the ticket enters
    the desk anew with ``open_ticket``. MISSING when it is not in the desk (withdrawn already).
    """
    before = await get_state(conn, ticket_id)
    if before is None:
        return DeskChange(MISSING, None)
    await conn.execute(delete(ticket_states).where(ticket_states.c.ticket_id == ticket_id))
    gone = DeskState(**{**before.__dict__, "status": WITHDRAWN, "assignee": None})
    transition = await _record(
        conn, before.status, gone, actor=actor, source=WITHDRAW, key=None, at=at
    )
    return DeskChange(APPLIED, None, transition)


async def mark_synced(
    conn: AsyncConnection, ticket_id: int, version: int, *, was: int | None = None
) -> bool:
    """Slack shows version ``version`` of the ticket (its card, status emoji, thread lines);
    False when the ticket changed meanwhile (its Slack side is to be brought up to date again).

    ``was``: only if Slack showed that version (a change nothing in Slack shows, such as the
    first response's time, keeps a ticket in line without drawing it again)."""
    parameters = {"b_ticket_id": ticket_id, "b_version": version}
    if was is None:
        done = await conn.execute(_MARK_SYNCED, parameters)
    else:
        done = await conn.execute(_MARK_SYNCED_FROM, {**parameters, "b_was": was})
    return bool(done.rowcount)


async def unsynced(conn: AsyncConnection, *, before: datetime, limit: int = 500) -> list[int]:
    """Tickets changed before ``before`` whose Slack side does not show their latest change
    (the bot stopped between the change and its Slack side), oldest change first."""
    rows = await conn.execute(
        select(ticket_states.c.ticket_id)
        .where(
            (ticket_states.c.synced_version.is_(None))
            | (ticket_states.c.synced_version < ticket_states.c.version),
            ticket_states.c.updated_at < before,
        )
        .order_by(ticket_states.c.updated_at)
        .limit(limit)
    )
    return [int(row.ticket_id) for row in rows]
