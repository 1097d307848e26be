"""Corrections for admins: who labelled what, and undoing one person's labels.

``revert_corrections`` undoes every standing correction by one user (from a date on) in one
transaction, recorded in the audit log: each ticket's training example goes back to the
latest remaining human label (or away when none is left), and routed tickets are requeued so
a running bot moves their card and tag back (a stopped one at its next start). The model keeps
what it learnt from those labels until the next retrain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from admin.errors import AdminError
from data.clock import as_utc
from data.db import corrections as corrections_repo
from data.db import tickets as tickets_repo
from data.db.admin_actions import record_action
from data.db.corrections import Correction
from data.db.database import Database

#: The most corrections one listing shows.
MAX_LIST = 10_000


@dataclass(frozen=True)
class RevertOutcome:
    """What a revert did."""

    undone: tuple[Correction, ...]
    tickets: tuple[int, ...]  # tickets whose labels changed
    requeued: tuple[int, ...]  # of those, routed tickets handed back to the bot to move


def parse_since(value: str | None) -> datetime | None:
    """``--since``: an ISO date or date and time (UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise AdminError(
            f"--since must be a date such as 2026-11-30 or 2026-11-30T14:00, not {value!r}."
        ) from None
    return as_utc(moment)


def check_limit(limit: int) -> int:
    """``limit`` if it is a sensible number of corrections to list; AdminError otherwise."""
    if not 1 <= limit <= MAX_LIST:
        raise AdminError(f"--limit must be from 1 to {MAX_LIST}, not {limit}.")
    return limit


async def list_corrections(
    db: Database, user: str | None, since: datetime | None, limit: int
) -> list[Correction]:
    """The newest ``limit`` corrections (by ``user``, from ``since`` on), undone ones too."""
    async with db.transaction() as conn:
        return await corrections_repo.list_corrections(
            conn, user=user, since=since, limit=check_limit(limit)
        )


async def revert_corrections(
    db: Database, user: str, since: datetime | None, by: str
) -> RevertOutcome:
    """Undo ``user``'s standing corrections (from ``since`` on); ``by`` is who asked."""
    if not user.strip():
        raise AdminError("--user must name the person whose corrections to revert.")
    async with db.transaction() as conn:
        undone = await corrections_repo.revert_user(conn, user, since=since)
        tickets = tuple(dict.fromkeys(c.ticket_id for c in undone))
        requeued = await tickets_repo.requeue_routed(conn, tickets)
        await record_action(
            conn,
            user=by,
            action="corrections-revert",
            outcome="done" if undone else "none",
            detail={
                "of": user,
                "since": since.isoformat() if since else None,
                "corrections": [c.id for c in undone],
                "tickets": list(tickets),
            },
        )
    return RevertOutcome(tuple(undone), tickets, tuple(requeued))
