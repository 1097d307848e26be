"""New tickets and edits: filter, store first, then hand the ticket to the queue.

Only people's top-level messages in the support channels become tickets. Storing is one
INSERT .. ON CONFLICT DO NOTHING, so a retried event finds its ticket and queues nothing.
A message the request filter (``bot.request_feedback``) calls no request ("thanks!", "+1") is
stored with status ``skipped`` and not queued: no card, tag or reply. An edit that makes a
skipped message a request routes it; an edit of a skipped message that is still none is kept.
Edit handling: an edit before anyone corrected the ticket replaces its text and classifies it
again (the card is updated, or moved if the department changes); after a correction the human
label stands and the edit is only logged. Deletes are ignored (the card stays for the record).
"""

from __future__ import annotations

import logging
import unicodedata
from enum import StrEnum

from bot.group_commit import GroupCommit
from bot.payloads import EditedMessage, MessagePayload, NewMessage, SkippedMessage
from bot.policy import RoutingPolicy
from bot.request_feedback import RequestFilterService
from bot.routing import TicketRouter
from bot.work_queue import TicketQueue
from classifier.examples import MAX_TEXT_CHARS
from data.db import corrections as corrections_repo
from data.db import tickets as tickets_repo
from data.db.database import Database

log = logging.getLogger(__name__)


#: Unicode categories that show nothing: controls, format characters (U+200B..U+200F,
#: U+2060, U+FEFF, ...), lone surrogates, unassigned code points and separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Cn", "Zs", "Zl", "Zp"})


def visible(text: str) -> str:
    """``text`` stripped, or "" when nothing in it shows: only whitespace, control or format
    characters (zero-width spaces and joiners, ``U+FEFF``, direction marks) is no ticket."""
    text = text.strip()
    if any(unicodedata.category(char) not in _INVISIBLE for char in text):
        return text
    return ""


class IntakeOutcome(StrEnum):
    """What became of a message event (logged; also what the tests check)."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    NOT_SUPPORT_CHANNEL = "not a support channel"
    SKIPPED = "skipped"
    EMPTY = "empty"
    FILES_ONLY = "files only"
    EDIT_QUEUED = "edit queued"
    EDIT_IGNORED = "edit ignored"
    NOT_A_REQUEST = "not a request (stored, not routed)"


class Intake:
    """Turns message events into stored, queued tickets."""

    def __init__(
        self,
        db: Database,
        commits: GroupCommit,
        queue: TicketQueue,
        router: TicketRouter,
        policy: RoutingPolicy,
        requests: RequestFilterService | None = None,
    ) -> None:
        """``requests``: the request filter (None: every message is routed)."""
        self._db = db
        self._commits = commits
        self._queue = queue
        self._router = router
        self._policy = policy
        self._requests = requests

    def _not_a_request(self, message: NewMessage | EditedMessage, text: str) -> bool:
        decision = self._requests.decide(text) if self._requests is not None else None
        if decision is None or decision.is_request:
            return False
        log.info(
            "Message %s/%s is no request (score %.2f >= %.2f); stored, not routed",
            message.channel,
            message.ts,
            decision.score,
            decision.threshold,
        )
        return True

    async def receive(self, message: MessagePayload) -> IntakeOutcome:
        """Store and queue a new ticket, apply an edit, or skip; see the module docstring."""
        if isinstance(message, SkippedMessage):
            log.debug("Message %s/%s skipped: %s", message.channel, message.ts, message.reason)
            return IntakeOutcome.SKIPPED
        if message.channel not in self._policy.support_channels:
            return IntakeOutcome.NOT_SUPPORT_CHANNEL
        if isinstance(message, EditedMessage):
            return await self._edit(message)
        return await self._new(message)

    async def _new(self, message: NewMessage) -> IntakeOutcome:
        text = visible(message.text)
        if not text:
            outcome = IntakeOutcome.FILES_ONLY if message.has_files else IntakeOutcome.EMPTY
            log.info(
                "Message %s/%s from %s not stored: %s, nothing to classify",
                message.channel,
                message.ts,
                message.user,
                outcome.value,
            )
            return outcome
        if len(text) > MAX_TEXT_CHARS:
            log.info("Message %s/%s cut to %d characters", message.channel, message.ts, len(text))
            text = text[:MAX_TEXT_CHARS]
        new = tickets_repo.NewTicket(
            workspace=message.workspace,
            channel=message.channel,
            ts=message.ts,
            user=message.user,
            text=text,
        )
        if self._not_a_request(message, text):
            _stored, created = await self._commits.run(
                lambda conn: tickets_repo.store_ticket(conn, new, status=tickets_repo.SKIPPED)
            )
            return IntakeOutcome.NOT_A_REQUEST if created else IntakeOutcome.DUPLICATE
        owner, until = self._router.owner, self._router.lease_until()
        ticket, created = await self._commits.run(
            lambda conn: tickets_repo.store_ticket(conn, new, owner=owner, lease_until=until)
        )
        if not created:
            log.info("Ticket %s delivered again (Slack retry); nothing to do", ticket.id)
            return IntakeOutcome.DUPLICATE
        self._router.expect(ticket)
        self._queue.submit(ticket.id)
        return IntakeOutcome.QUEUED

    async def _edit(self, edit: EditedMessage) -> IntakeOutcome:
        text = visible(edit.text)[:MAX_TEXT_CHARS]
        async with self._db.transaction() as conn:
            ticket = await tickets_repo.find_ticket(conn, edit.workspace, edit.channel, edit.ts)
            if ticket is None:
                return IntakeOutcome.EDIT_IGNORED
            if not text or text == ticket.text:
                log.info("Ticket %s edited to the same or empty text; ignored", ticket.id)
                return IntakeOutcome.EDIT_IGNORED
            if await corrections_repo.current_correction(conn, ticket.id) is not None:
                log.info("Ticket %s edited after a correction; the human label stands", ticket.id)
                return IntakeOutcome.EDIT_IGNORED
            await tickets_repo.edit_text(conn, ticket.id, text)
            if ticket.status == tickets_repo.SKIPPED and self._not_a_request(edit, text):
                await tickets_repo.set_status(conn, ticket.id, tickets_repo.SKIPPED)
                return IntakeOutcome.NOT_A_REQUEST
        log.info("Ticket %s edited; classifying it again", ticket.id)
        self._queue.submit(ticket.id)
        return IntakeOutcome.EDIT_QUEUED
