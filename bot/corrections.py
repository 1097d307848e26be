"""Corrections by people: a department emoji on a ticket or its card, or a card's button.

Only agents correct (``data.people.may_label``, facts from ``bot.people``): never a bot, an
external (Slack Connect) user, a person in no agent channel or group (the ticket's author
included), nor anyone the bot could not look up. Each agent may record at most
``per_hour`` corrections in any hour (counted in the database, so across replicas); one past
that is refused with a log line. The correction is recorded and the ticket's training example
updated in one transaction; the queue then moves the tag, the card and confirms in the thread
(``bot.routing``). Removing the reaction undoes that person's correction; the latest standing
human label wins.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.payloads import ReactionChange, RouteChoice
from bot.people import People
from bot.policy import RoutingPolicy
from bot.work_queue import TicketQueue
from classifier.label_precedence import final_label
from classifier.redaction import redact_pii
from classifier.taxonomy import Taxonomy
from data.clock import Clock
from data.db import corrections as corrections_repo
from data.db import routings as routings_repo
from data.db import tickets as tickets_repo
from data.db.database import Database
from data.db.tickets import Ticket
from data.people import Refusal, may_label

log = logging.getLogger(__name__)


class CorrectionOutcome(StrEnum):
    """What became of a reaction or button press (logged; also what the tests check)."""

    RECORDED = "recorded"
    UNDONE = "undone"
    SAME_LABEL = "already this department"
    NOT_A_DEPARTMENT = "not a department emoji"
    BY_A_BOT = "by a bot"
    NOT_A_TICKET = "not a ticket"
    NOTHING_TO_UNDO = "nothing to undo"
    NOT_AN_AGENT = "not an agent"
    BY_THE_AUTHOR = "by the ticket's author, not an agent"
    BY_AN_EXTERNAL_USER = "by a user of another organisation"
    UNSURE = "could not tell who this is"
    RATE_LIMITED = "too many corrections by this person"


#: Corrections one agent may record in any hour, unless configured otherwise.
PER_HOUR = 30

_REFUSED = {
    Refusal.NOT_AN_AGENT: CorrectionOutcome.NOT_AN_AGENT,
    Refusal.AUTHOR: CorrectionOutcome.BY_THE_AUTHOR,
    Refusal.EXTERNAL: CorrectionOutcome.BY_AN_EXTERNAL_USER,
    Refusal.BOT: CorrectionOutcome.BY_A_BOT,
    Refusal.UNSURE: CorrectionOutcome.UNSURE,
}


class CorrectionDesk:
    """Records people's labels for tickets and queues the ticket to be moved."""

    def __init__(
        self,
        db: Database,
        queue: TicketQueue,
        people: People,
        taxonomy: Taxonomy,
        policy: RoutingPolicy,
        clock: Clock,
        *,
        per_hour: int = PER_HOUR,
    ) -> None:
        self._db = db
        self._queue = queue
        self._people = people
        self._taxonomy = taxonomy
        self._policy = policy
        self._per_hour = per_hour
        self._clock = clock

    async def react(self, change: ReactionChange) -> CorrectionOutcome:
        """A reaction added (correct) or removed (undo) on a ticket or its card."""
        dept = self._taxonomy.by_emoji(change.emoji)
        if dept is None:
            return CorrectionOutcome.NOT_A_DEPARTMENT
        ticket = await self._ticket_at(change.channel, change.ts)
        if ticket is None:
            return CorrectionOutcome.NOT_A_TICKET
        if change.action == "removed":
            # Only the remover's own recorded corrections can be undone: no lookup needed.
            return await self._undo(ticket, change.user, dept.name)
        refused = await self._refusal(ticket, change.user, change.team)
        if refused is not None:
            return refused
        return await self._correct(ticket, change.user, dept.name, corrections_repo.REACTION)

    async def choose(self, choice: RouteChoice) -> CorrectionOutcome:
        """A department button pressed on a card."""
        dept = self._taxonomy.get(choice.label)
        if dept is None:
            return CorrectionOutcome.NOT_A_DEPARTMENT
        ticket = await self._ticket_at(choice.channel, choice.message_ts)
        if ticket is None and choice.ticket_id is not None:
            async with self._db.transaction() as conn:
                try:
                    ticket = await tickets_repo.get_ticket(conn, choice.ticket_id)
                except tickets_repo.TicketNotFoundError:
                    ticket = None
        if ticket is None:
            return CorrectionOutcome.NOT_A_TICKET
        refused = await self._refusal(ticket, choice.user, choice.team)
        if refused is not None:
            return refused
        return await self._correct(ticket, choice.user, dept.name, corrections_repo.BUTTON)

    async def _refusal(
        self, ticket: Ticket, user: str, team: str | None
    ) -> CorrectionOutcome | None:
        """None when ``user`` may correct ``ticket`` now; else the outcome, logged."""
        person = await self._people.who(user, team=team)
        refusal = may_label(person, ticket.user)
        if refusal is not None:
            log.info(
                "Correction of ticket %s by %s refused: %s (%s)",
                ticket.id,
                user,
                refusal,
                person.reason,
            )
            return _REFUSED[refusal]
        since = self._clock.now() - timedelta(hours=1)
        async with self._db.transaction() as conn:
            recent = await corrections_repo.count_by_user_since(conn, user, since)
        if recent >= self._per_hour:
            log.warning(
                "Correction of ticket %s by %s refused: %d corrections in the last hour "
                "(limit %d, TRIAGE_CORRECTIONS_PER_HOUR)",
                ticket.id,
                user,
                recent,
                self._per_hour,
            )
            return CorrectionOutcome.RATE_LIMITED
        return None

    async def _ticket_at(self, channel: str, ts: str) -> Ticket | None:
        async with self._db.transaction() as conn:
            return await routings_repo.ticket_at(conn, channel, ts)

    def _training_text(self, ticket: Ticket) -> str:
        return redact_pii(ticket.text) if self._policy.redact_pii else ticket.text

    async def _correct(self, ticket: Ticket, user: str, label: str, via: str) -> CorrectionOutcome:
        async with self._db.transaction() as conn:
            prediction = await tickets_repo.latest_prediction(conn, ticket.id)
            human = await corrections_repo.current_correction(conn, ticket.id)
            current = final_label(prediction.label if prediction else "", human)
            waiting = (
                human is None
                and prediction is not None
                and self._policy.needs_person(prediction.confidence)
            )
            if label == current and not waiting:
                return CorrectionOutcome.SAME_LABEL
            correction = await corrections_repo.record_correction(
                conn,
                ticket.id,
                user=user,
                from_label=current,
                to_label=label,
                via=via,
                now=self._clock.now(),
            )
            await corrections_repo.sync_training_example(
                conn, ticket.id, self._training_text(ticket)
            )
            await self._requeue(conn, ticket)
        log.info(
            "Ticket %s corrected %s -> %s by %s via %s (correction %s)",
            ticket.id,
            current or "-",
            label,
            user,
            via,
            correction.id,
        )
        self._queue.submit(ticket.id)
        return CorrectionOutcome.RECORDED

    async def _undo(self, ticket: Ticket, user: str, label: str) -> CorrectionOutcome:
        async with self._db.transaction() as conn:
            undone = await corrections_repo.undo_correction(
                conn, ticket.id, user=user, to_label=label, via=corrections_repo.REACTION
            )
            if undone is None:
                return CorrectionOutcome.NOTHING_TO_UNDO
            await corrections_repo.sync_training_example(
                conn, ticket.id, self._training_text(ticket)
            )
            await self._requeue(conn, ticket)
        log.info("Ticket %s: %s undid their correction to %s", ticket.id, user, label)
        self._queue.submit(ticket.id)
        return CorrectionOutcome.UNDONE

    @staticmethod
    async def _requeue(conn: AsyncConnection, ticket: Ticket) -> None:
        # Marks the ticket unfinished, so the move is resumed after a restart too.
        current = await tickets_repo.get_ticket(conn, ticket.id)
        status = (
            tickets_repo.RECEIVED
            if current.status == tickets_repo.RECEIVED
            else tickets_repo.CLASSIFIED
        )
        await tickets_repo.set_status(conn, ticket.id, status)
        await tickets_repo.reset_attempts(conn, ticket.id)
