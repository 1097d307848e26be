"""Messages in, tickets out: who wrote it, which conversation it belongs to, store first.

Only people's messages in the support channels (and direct messages to the bot) are read; an
agent's own top-level post is an announcement, not a ticket, unless ``TRIAGE_AGENT_POSTS`` is
``tickets`` (``bot.people`` answers who is an agent). A requester's top-level messages within
``TRIAGE_GROUP_SECONDS`` of each other are one ticket, and their replies in its thread are its
follow-ups (``data.db.conversations``). Slack's acknowledgement waits only for the message's
raw row (``bot.inbox``: one INSERT, idempotent, so a retried event is a no-op); it is placed in
its conversation right after, and the ticket is routed once its conversation closes
(``bot.conversations``), or at once when grouping is off.

Edits: an edit before anyone corrected the ticket changes its conversation's text and
classifies it again (the card is updated, or moved if the department changes); after a
correction the human label stands and the edit is only logged. Deletes are ignored (the card
stays for the record). The "Send to triage" shortcut (``send_to_triage``) makes any message a
ticket at once, and turns one the request filter skipped into a ticket after all.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.group_commit import GroupCommit
from bot.inbox import Inbox
from bot.payloads import (
    EditedMessage,
    MessagePayload,
    NewMessage,
    ShortcutRequest,
    SkippedMessage,
    ThreadReply,
)
from bot.people import People
from bot.policy import RoutingPolicy
from bot.request_feedback import RequestFilterService
from bot.routing import TicketRouter
from bot.slack_gateway import SlackGateway
from bot.work_queue import TicketQueue
from classifier.examples import MAX_TEXT_CHARS
from data.clock import Clock
from data.db import conversations as conversations_repo
from data.db import corrections as corrections_repo
from data.db import tickets as tickets_repo
from data.db.conversations import Joined, Placed
from data.db.database import Database
from data.db.inbox import Incoming
from data.people import Standing

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

    #: Stored; placed in its conversation after the acknowledgement (``bot.inbox``).
    STORED = "stored"
    DUPLICATE = "duplicate"
    NOT_SUPPORT_CHANNEL = "not a support channel"
    SKIPPED = "skipped"
    EMPTY = "empty"
    FILES_ONLY = "files only"
    EDIT_QUEUED = "edit queued"
    EDIT_IGNORED = "edit ignored"
    #: An agent's own top-level post (TRIAGE_AGENT_POSTS=skip).
    AGENT_POST = "agent post"


@dataclass(frozen=True)
class ShortcutAnswer:
    """What "Send to triage" did, and what to tell the person who used it (ephemeral)."""

    outcome: str
    reply: str
    ticket_id: int | None = None


@dataclass(frozen=True)
class Grouping:
    """How messages become tickets (from the settings; TRIAGE_GROUP_SECONDS is the inbox's)."""

    #: TRIAGE_AGENT_POSTS=tickets: agents' own top-level posts are tickets too.
    agent_posts_are_tickets: bool = False


class Intake:
    """Turns message events into stored tickets, routed once their conversation closes."""

    def __init__(
        self,
        db: Database,
        commits: GroupCommit,
        queue: TicketQueue,
        router: TicketRouter,
        policy: RoutingPolicy,
        *,
        people: People,
        slack: SlackGateway,
        inbox: Inbox,
        clock: Clock,
        grouping: Grouping | None = None,
        requests: RequestFilterService | None = None,
    ) -> None:
        """``inbox``: where the acknowledgement stores a message (placed after it).
        ``requests``: the request filter, taught by the shortcut (None: nothing learns)."""
        self._db = db
        self._commits = commits
        self._queue = queue
        self._router = router
        self._policy = policy
        self._people = people
        self._slack = slack
        self._inbox = inbox
        self._clock = clock
        self.grouping = grouping or Grouping()
        self._requests = requests

    async def receive(self, message: MessagePayload) -> IntakeOutcome:
        """Store a message as (part of) a ticket, apply an edit, or skip; see the module doc."""
        if isinstance(message, SkippedMessage):
            log.debug("Message %s/%s skipped: %s", message.channel, message.ts, message.reason)
            return IntakeOutcome.SKIPPED
        if isinstance(message, EditedMessage):
            # Any channel: a ticket sent with the shortcut may live outside the support ones.
            return await self._edit(message)
        if message.channel not in self._policy.support_channels and not message.direct:
            return IntakeOutcome.NOT_SUPPORT_CHANNEL
        if isinstance(message, ThreadReply):
            return await self._reply(message)
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
        person = await self._people.who(message.user, team=message.team, person=True)
        if person.standing is Standing.BOT:
            return IntakeOutcome.SKIPPED
        if person.is_agent and not message.direct and not self.grouping.agent_posts_are_tickets:
            log.info(
                "Message %s/%s is an agent's own post (%s): not a ticket",
                message.channel,
                message.ts,
                message.user,
            )
            return IntakeOutcome.AGENT_POST
        return await self._store(
            Incoming(
                workspace=message.workspace,
                channel=message.channel,
                ts=message.ts,
                user=message.user,
                text=text,
                received_at=self._clock.now(),
                owner=self._inbox.owner,
                source="dm" if message.direct else None,
            )
        )

    async def _store(self, message: Incoming) -> IntakeOutcome:
        """The acknowledgement's one write; the message is placed in its conversation after
        it (``bot.inbox``)."""
        if await self._inbox.receive(message):
            return IntakeOutcome.STORED
        log.info("Message delivered again (Slack retry); nothing to do")
        return IntakeOutcome.DUPLICATE

    async def _reply(self, reply: ThreadReply) -> IntakeOutcome:
        text = visible(reply.text)[:MAX_TEXT_CHARS]
        if not text:
            return IntakeOutcome.EMPTY
        return await self._store(
            Incoming(
                workspace=reply.workspace,
                channel=reply.channel,
                ts=reply.ts,
                user=reply.user,
                text=text,
                received_at=self._clock.now(),
                owner=self._inbox.owner,
                thread_ts=reply.thread_ts,
                team=reply.team,
            )
        )

    # -- the "Send to triage" shortcut ----------------------------------------------------

    async def send_to_triage(self, request: ShortcutRequest) -> ShortcutAnswer:
        """Make the message a ticket now (the shortcut's user recorded); see the module doc."""
        identity = self._slack.identity
        own = identity is not None and (
            request.author == identity.user_id
            or (request.bot_id is not None and request.bot_id == identity.bot_id)
        )
        if own:
            return ShortcutAnswer(
                "own message", "That is one of my own messages (a card or a reply), not a ticket."
            )
        text = visible(request.text)[:MAX_TEXT_CHARS]
        if not text:
            return ShortcutAnswer("empty", "That message has no text to route.")
        new = tickets_repo.NewTicket(
            workspace=request.workspace,
            channel=request.channel,
            ts=request.ts,
            user=request.author,
            text=text,
            source="shortcut",
            submitted_by=request.user,
        )
        part = conversations_repo.Message(
            request.workspace, request.channel, request.ts, request.author, text
        )
        owner, until, now = self._router.owner, self._router.lease_until(), self._clock.now()

        async def place(conn: AsyncConnection) -> tuple[Placed, bool]:
            placed = await conversations_repo.open_or_join(
                conn,
                part,
                now=now,
                window=0,
                cap=MAX_TEXT_CHARS,
                new=new,
                owner=owner,
                lease_until=until,
            )
            forced = False
            if placed.outcome is Joined.DUPLICATE and placed.ticket is not None:
                forced = await conversations_repo.declare_request(
                    conn, placed.ticket.id, request.user
                )
            return placed, forced

        placed, forced = await self._commits.run(place)
        ticket = placed.ticket
        if ticket is None:
            return ShortcutAnswer("kept", "That message is a reply I keep with its thread.")
        if placed.outcome is Joined.DUPLICATE and self._requests is not None:
            # Skipped by the filter, or withdrawn by an agent: routed, and the filter learns
            # that this is a request.
            await self._requests.send_to_triage(ticket, request.user)
            forced = forced or ticket.status in (tickets_repo.SKIPPED, tickets_repo.NOT_REQUEST)
        if placed.outcome is Joined.OPENED:
            self._queue.submit(ticket.id)
            log.info("Ticket %s sent to triage by %s", ticket.id, request.user)
            return ShortcutAnswer("created", "Sent to triage: it is a ticket now.", ticket.id)
        if forced:
            self._queue.submit(ticket.id)
            log.info("Ticket %s declared a request by %s", ticket.id, request.user)
            return ShortcutAnswer(
                "declared a request", "Sent to triage: it is routed as a ticket now.", ticket.id
            )
        return ShortcutAnswer(
            "already a ticket", f"That message is already ticket #{ticket.id}.", ticket.id
        )

    async def _edit(self, edit: EditedMessage) -> IntakeOutcome:
        text = visible(edit.text)[:MAX_TEXT_CHARS]
        if not text:
            log.info("Message %s/%s edited to nothing; ignored", edit.channel, edit.ts)
            return IntakeOutcome.EDIT_IGNORED
        async with self._db.transaction() as conn:
            found = await conversations_repo.edit_message(
                conn, edit.workspace, edit.channel, edit.ts, text, MAX_TEXT_CHARS
            )
            if found is None:
                return IntakeOutcome.EDIT_IGNORED
            ticket, whole = found
            if whole == ticket.text:
                log.info("Ticket %s edited to the same text; ignored", ticket.id)
                return IntakeOutcome.EDIT_IGNORED
            if await corrections_repo.current_correction(conn, ticket.id) is not None:
                log.info("Ticket %s edited after a correction; the human label stands", ticket.id)
                return IntakeOutcome.EDIT_IGNORED
            if ticket.regroup_at is not None:  # still open: classified when it closes
                await conversations_repo.set_text(conn, ticket.id, whole)
                return IntakeOutcome.EDIT_QUEUED
            await tickets_repo.edit_text(conn, ticket.id, whole)
        log.info("Ticket %s edited; classifying it again", ticket.id)
        self._queue.submit(ticket.id)
        return IntakeOutcome.EDIT_QUEUED
