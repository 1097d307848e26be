"""Tickets for admins: list them, and hand failed ones back to the bot.

A ticket ends ``failed`` when Slack refused it (e.g. the bot is not in the department's
channel) or kept failing. Once the cause is fixed, ``retry_tickets`` marks it ``requeued``; a
running bot claims it within seconds (one replica only) and routes it, and a bot that is not
running claims it at its next start. Used by ``triage tickets`` and the App Home's Retry button.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from admin.errors import AdminError
from data.db import tickets as tickets_repo
from data.db.admin_actions import record_action
from data.db.database import Database
from data.db.tickets import TicketSummary

#: The most tickets one listing shows.
MAX_LIST = 1000


@dataclass(frozen=True)
class Refusal:
    """A ticket asked for that was not requeued, and why (a sentence for a person)."""

    ticket_id: int
    reason: str


@dataclass(frozen=True)
class RetryOutcome:
    """What a retry did."""

    requeued: tuple[int, ...]
    refused: tuple[Refusal, ...]


def check_status(status: str | None) -> str | None:
    """``status`` if it is a ticket status (or None); AdminError naming the valid ones."""
    if status is None or status in tickets_repo.STATUSES:
        return status
    raise AdminError(
        f"There is no ticket status {status!r}; use one of {', '.join(tickets_repo.STATUSES)}."
    )


def check_limit(limit: int) -> int:
    """``limit`` if it is a sensible number of tickets to list; AdminError otherwise."""
    if not 1 <= limit <= MAX_LIST:
        raise AdminError(f"--limit must be from 1 to {MAX_LIST}, not {limit}.")
    return limit


async def list_tickets(db: Database, status: str | None, limit: int) -> list[TicketSummary]:
    """The newest ``limit`` tickets (in ``status`` when given), newest first."""
    status, limit = check_status(status), check_limit(limit)
    async with db.transaction() as conn:
        return await tickets_repo.list_tickets(conn, status=status, limit=limit)


def _reason(ticket_id: int, status: str | None) -> str:
    if status is None:
        return f"there is no ticket #{ticket_id}"
    if status == tickets_repo.REQUEUED:
        return "it is already requeued; a running bot routes it within seconds"
    if status in tickets_repo.UNFINISHED:
        return f"it is {status}, not failed: the bot is still working on it"
    return f"it is {status}, not failed"


async def retry_tickets(db: Database, ticket_ids: Sequence[int] | None, user: str) -> RetryOutcome:
    """Requeue the failed tickets among ``ticket_ids`` (None: every failed ticket).

    One transaction, recorded in the audit log. An id that is not a failed ticket is refused
    with a reason; the others are requeued all the same.
    """
    wanted = list(dict.fromkeys(ticket_ids)) if ticket_ids is not None else None
    async with db.transaction() as conn:
        result = await tickets_repo.requeue_failed(conn, wanted)
        refused = tuple(
            Refusal(ticket_id, _reason(ticket_id, status))
            for ticket_id, status in result.refused.items()
        )
        await record_action(
            conn,
            user=user,
            action="ticket-retry",
            outcome="done" if result.requeued else "none",
            detail={
                "asked": wanted if wanted is not None else "failed",
                "requeued": list(result.requeued),
                "refused": {str(r.ticket_id): result.refused[r.ticket_id] for r in refused},
            },
        )
    return RetryOutcome(result.requeued, refused)
