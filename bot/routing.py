"""Classify a stored ticket and bring its Slack state in line: tag, thread reply, card.

``TicketRouter.process`` is what the queue runs for a ticket, after the first delivery, after a
correction, after an edit and on restart. It works out what Slack should show (from the latest
prediction and the standing human label) and compares it with what ``routings`` says was done;
only the difference is sent. Every Slack side effect is recorded right after it succeeds, so a
run cut short repeats nothing that finished and skips nothing that did not.

One gap is left by recording after the fact: a post that reached Slack but whose answer was
lost (a crash, a 5xx, a dropped connection) has no record. So every post carries message
metadata naming the ticket, and a ticket whose last run ended that way ("uncertain": resumed
after a restart, or after such an error) first looks for the post in Slack and records it
instead of posting again. Certain runs, the normal case, make no extra call.

A run that fails never strands its ticket: Slack's transient errors and any unexpected error
(the model's API down longer than its retries, the database away, a bug) count an attempt and
give up the lease, and the ticket runs again after a growing delay; after
``RoutingPolicy.max_attempts`` it ends ``failed``, with a notice and a Retry button for the
admins (``bot.failure_notice``). When even counting fails (the database is away), the queue
runs the ticket again after its own backoff.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from admin.near_duplicates import CorrectionMemory
from bot.active_model import ActiveModel
from bot.errors import PermanentSlackError, RateLimitedError, TransientSlackError
from bot.failure_notice import FailureNotices, TicketFailure
from bot.group_commit import GroupCommit
from bot.policy import RoutingPolicy
from bot.prediction_batch import PredictionBatch
from bot.slack_gateway import TICKET_MESSAGE_EVENT, SlackGateway, ticket_calls
from bot.views import (
    CARD_LEVELS,
    CARD_REFUSED,
    CardContent,
    correction_reply,
    first_reply,
    minimal_reply,
    reclassified_reply,
    resolved_triage_card,
    ticket_card,
    undo_reply,
)
from bot.work_queue import RetryLater
from classifier.examples import MAX_TEXT_CHARS
from classifier.label_precedence import final_label, standing_label
from classifier.near_duplicates import near_duplicate_of, routed_by_correction
from classifier.protocols import Prediction
from classifier.redaction import redact_pii
from classifier.taxonomy import Department, Taxonomy
from data.clock import Clock, SystemClock, as_utc
from data.db import corrections as corrections_repo
from data.db import desk as desk_repo
from data.db import request_feedback as request_feedback_repo
from data.db import routings as routings_repo
from data.db import tickets as tickets_repo
from data.db.corrections import Correction
from data.db.database import utcnow
from data.db.desk import DeskState
from data.db.routings import Routing
from data.db.tickets import StoredPrediction, Ticket

log = logging.getLogger(__name__)

#: An ``updated_at`` no ticket has: finishing with it never matches (someone else finishes).
_CHANGED = datetime(1970, 1, 1, tzinfo=UTC)
#: Seconds before asking again for a ticket another process is routing.
CLAIM_RETRY_SECONDS = 2.0
#: Seconds a channel's "shared with another organisation" answer is kept.
SHARED_CHANNEL_SECONDS = 600.0

#: The request filter's one question about a conversation's text: is it a request at all
#: (not a greeting, thanks, "+1", ...)? Asked once per run, before the department, for a
#: ticket that has no card yet; "no" stores it as ``not_request`` without routing it.
RequestCheck = Callable[[str], Awaitable[bool]]

#: Whether a user is a member of a channel (``bot.people``): a correction keeps a ticket's
#: owner only when they are in the new department's channel.
ChannelMember = Callable[[str, str], Awaitable[bool]]


@dataclass(frozen=True)
class DeskEntry:
    """What the card just posted (or redrawn) says about the desk, to record with it: the
    ticket enters the desk (or moves to ``department``) in the card's own transaction."""

    department: str
    permalink: str | None
    #: The owner a move keeps (in the new department's channel), else None.
    keep: str | None
    #: Who moved it (the correcting agent), or the bot.
    actor: str
    #: (status, assignee) the card shows.
    shown: tuple[str, str | None]


async def everything_is_a_request(_text: str) -> bool:
    """The request check until a filter is configured."""
    return True


def default_owner() -> str:
    """This process's name in ticket leases: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


def _retrieve_error(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        task.exception()  # a failure the ticket did not wait for is not "never retrieved"


class TicketRouter:
    """Runs the ticket flow for one ticket at a time (see the module docstring)."""

    def __init__(
        self,
        db: GroupCommit,
        slack: SlackGateway,
        model: ActiveModel,
        taxonomy: Taxonomy,
        policy: RoutingPolicy,
        owner: str = "",
        clock: Clock | None = None,
        notices: FailureNotices | None = None,
        near_duplicates: CorrectionMemory | None = None,
        is_request: RequestCheck | None = None,
        is_member: ChannelMember | None = None,
        desk_changed: Callable[[int], None] | None = None,
        status_emoji: tuple[str, ...] = (),
    ) -> None:
        """``notices``: where a ticket that ends ``failed`` is announced (None: the log only).
        ``is_request``: the request filter (None: every ticket is a request).
        ``is_member``: channel membership, for the owner a correction keeps (None: none kept).
        ``desk_changed``: told when a card it posted does not show the ticket's desk state
        (the desk, ``bot.desk``, brings the card up to date). ``status_emoji``: the desk's
        status reactions on a ticket, removed when it is withdrawn."""
        #: This process's name in ticket leases (see data/db/tickets.py).
        self.owner = owner or default_owner()
        #: Leases are stamped and checked on this clock.
        self.clock: Clock = clock or SystemClock()
        self.lease_seconds = policy.lease_seconds
        self._db = db
        self._slack = slack
        self._model = model
        self._taxonomy = taxonomy
        self._policy = policy
        self._notices = notices
        #: Recent corrections: a near-duplicate of a corrected ticket takes its label at once.
        self._near_duplicates = near_duplicates
        self._predictions = PredictionBatch()
        self._is_request: RequestCheck = is_request or everything_is_a_request
        self._shared: dict[str, tuple[float, bool]] = {}  # channel -> (when, minimal replies)
        self._fresh: dict[int, Ticket] = {}
        self._uncertain: set[int] = set()
        self._is_member = is_member
        self._desk_changed = desk_changed
        self._status_emoji = status_emoji

    def lease_until(self) -> datetime:
        """When a lease taken now runs out."""
        return self.clock.now() + timedelta(seconds=self.lease_seconds)

    def _holds(self, ticket: Ticket) -> bool:
        """Whether this process leased ``ticket`` with at least half the lease left."""
        return (
            ticket.owner == self.owner
            and ticket.lease_until is not None
            and ticket.lease_until - self.clock.now() > timedelta(seconds=self.lease_seconds / 2)
        )

    def mark_uncertain(self, ticket_ids: list[int]) -> None:
        """Tickets whose last run may have posted without recording it (see the module doc)."""
        self._uncertain.update(ticket_ids)

    def expect(self, ticket: Ticket) -> None:
        """Remember a ticket just stored, so its first run need not read it back.

        Safe because anything that changes the ticket afterwards (a correction, an edit) also
        submits it again: that run reads the database.
        """
        self._fresh[ticket.id] = ticket

    async def process(self, ticket_id: int) -> None:
        """Classify the ticket if needed and reconcile its Slack state; see the module doc.

        A 429 is waited out in place only when Slack says to retry at once; otherwise the
        ticket goes back to the queue until ``Retry-After`` has passed, and its worker takes
        other tickets meanwhile. Being rate limited does not count as a failed attempt.
        """
        with ticket_calls():
            try:
                await self._claim_and_process(ticket_id)
            except RetryLater:
                raise
            except Exception as exc:
                self._uncertain.add(ticket_id)  # it may have stopped between a post and its record
                await self._failed_run(ticket_id, exc)

    async def _failed_run(self, ticket_id: int, exc: Exception) -> None:
        """Count a run that raised, give up its lease; run again later, or end ``failed``."""

        async def count(conn: AsyncConnection) -> tickets_repo.FailedRun | None:
            return await tickets_repo.count_failed_run(
                conn, ticket_id, self.owner, self._policy.max_attempts
            )

        try:
            outcome = await self._db.run(count)
        except Exception:
            log.warning("Ticket %s: could not count its failed run", ticket_id, exc_info=True)
            raise exc from None  # the queue runs it again after its own backoff
        if outcome is None:  # finished meanwhile (another run, an admin)
            log.warning("Ticket %s: a run failed after it was finished", ticket_id, exc_info=exc)
            return
        if outcome.failed:
            log.error(
                "Ticket %s not routed after %d attempts; the last error:",
                ticket_id,
                outcome.attempts,
                exc_info=exc,
            )
            reason = (
                f"an unexpected error ({type(exc).__name__}) in {outcome.attempts} attempts "
                "in a row; the bot's log has the details."
            )
            await self._notify(TicketFailure(ticket_id, outcome.channel, reason))
            return
        delay = self._policy.retry_delay(outcome.attempts)
        log.warning(
            "Ticket %s: unexpected error on attempt %d; trying again in %.0fs",
            ticket_id,
            outcome.attempts,
            delay,
            exc_info=exc,
        )
        raise RetryLater(delay)

    async def _notify(self, failure: TicketFailure) -> None:
        if self._notices is not None:
            await self._notices.post(failure)

    async def _claim_and_process(self, ticket_id: int) -> None:
        fresh = self._fresh.pop(ticket_id, None)
        if fresh is None or not self._holds(fresh):
            # Stored just now, the ticket is leased to this process; any other run takes the
            # lease first, so two replicas never work on one ticket at once.
            fresh = None
            until = self.lease_until()
            if not await self._db.run(
                lambda conn: tickets_repo.claim_ticket(
                    conn, ticket_id, self.owner, until, now=self.clock.now()
                )
            ):
                log.debug("Ticket %s is being routed by another process; later", ticket_id)
                raise RetryLater(CLAIM_RETRY_SECONDS)
        if fresh is not None and not await self._wanted(fresh, [], []):
            await self._skip(fresh, fresh.updated_at)  # before any Slack call is started
            return
        permalink: asyncio.Task[str] | None = None
        if fresh is not None and not self._policy.shadow_mode:
            # A new ticket will get a card, whose permalink does not depend on the label:
            # ask Slack for it while the model classifies (a read; nothing to record).
            permalink = asyncio.create_task(self._slack.permalink(fresh.channel, fresh.ts))
            permalink.add_done_callback(_retrieve_error)  # when no step needed it
        try:
            await self._process(ticket_id, fresh, permalink)
        finally:
            if permalink is not None:
                permalink.cancel()  # no-op once done

    async def _process(
        self, ticket_id: int, fresh: Ticket | None, permalink: asyncio.Task[str] | None
    ) -> None:
        vouched = False
        if fresh is not None:
            history: list[Correction] = []
            records: list[Routing] = []
            ticket, prediction, state = fresh, None, None
        else:

            async def read(
                conn: AsyncConnection,
            ) -> tuple[
                Ticket,
                StoredPrediction | None,
                list[Correction],
                list[Routing],
                bool | None,
                DeskState | None,
            ]:
                word = await request_feedback_repo.feedback_for(conn, ticket_id)
                return (
                    await tickets_repo.get_ticket(conn, ticket_id),
                    await tickets_repo.latest_prediction(conn, ticket_id),
                    await corrections_repo.corrections_for(conn, ticket_id),
                    await routings_repo.routings_for(conn, ticket_id),
                    None if word is None else word.is_request,
                    await desk_repo.get_state(conn, ticket_id),
                )

            ticket, prediction, history, records, said, state = await self._db.run(read)
            vouched = said is True  # an agent said it is a request ("Send to triage")
            if said is False:  # an agent said it is no request: take back what was posted
                await self._withdraw(ticket, records)
                return
            if prediction is None:  # never classified, so nothing was ever posted
                self._uncertain.discard(ticket_id)
        check = ticket_id in self._uncertain
        human = standing_label(history)
        if history and self._near_duplicates is not None:
            self._near_duplicates.changed()  # this ticket's correction counts from now on
        seen: datetime | None = ticket.updated_at
        if fresh is None and not vouched and not await self._wanted(ticket, history, records):
            await self._skip(ticket, seen)
            return
        if self._stale(ticket, prediction):
            prediction, seen = await self._classify(ticket, seen)
            seen = seen or _CHANGED
        assert prediction is not None
        if self._policy.shadow_mode:
            await self._finish(ticket, tickets_repo.SHADOWED, seen)
            log.info("Ticket %s: %s (shadow mode, not posted)", ticket.id, prediction.label)
            return
        try:
            finished = await self._reconcile(
                ticket, prediction, human, bool(history), records, seen, permalink, check, state
            )
        except RateLimitedError as exc:
            delay = exc.retry_after + random.uniform(0, 0.25)  # not all at the same instant
            log.info(
                "Ticket %s: Slack %s rate limited; again in %.1fs", ticket.id, exc.method, delay
            )
            raise RetryLater(delay) from None
        except TransientSlackError as exc:
            self._uncertain.add(ticket.id)  # a post may have reached Slack unanswered
            await self._transient_failure(ticket, exc)
            return
        except PermanentSlackError as exc:
            self._uncertain.discard(ticket.id)
            # The fix was logged once by the gateway; this line only counts the ticket.
            log.warning("Ticket %s not routed: Slack %s said %s", ticket.id, exc.method, exc.error)
            await self._finish(ticket, tickets_repo.FAILED, None)
            await self._notify(TicketFailure(ticket.id, ticket.channel, str(exc)))
            return
        if not finished:
            await self._finish(ticket, tickets_repo.ROUTED, seen)
        self._uncertain.discard(ticket.id)

    def _stale(self, ticket: Ticket, prediction: StoredPrediction | None) -> bool:
        """Whether to classify the ticket (again): never classified; edited since; or grown
        by the requester's messages since, when the answer it was routed on was unsure (below
        the triage threshold: a greeting-only first line, say). A sure answer stands when a
        follow-up comes ("any update?"): the card is updated in place, never moved by it."""
        if prediction is None:
            return True
        if ticket.edited_at is None or prediction.created_at >= ticket.edited_at:
            return False  # nothing changed since it was classified
        if ticket.text_edited_at is not None and prediction.created_at < ticket.text_edited_at:
            return True
        return self._policy.needs_person(prediction.confidence)

    async def _withdraw(self, ticket: Ticket, records: list[Routing]) -> None:
        """Delete the ticket's cards and thread replies, remove its tag, and mark it
        ``not_request``; each removal is recorded as it succeeds, so a run cut short resumes.

        Slack's errors are handled as in a normal run: a 429 comes back later, a transient
        error counts an attempt, a message already gone (``message_not_found``) is done."""
        try:
            for record in records:
                if not record.active or record.ts is None:
                    continue
                if record.kind == routings_repo.TAG:
                    dept = self._taxonomy.get(record.label)
                    if dept is not None:
                        await self._slack.remove_reaction(ticket.channel, ticket.ts, dept.emoji)
                else:  # a card, a reply, a confirmation, a desk line: the bot's own message
                    await self._slack.delete_message(record.channel, record.ts)
                await self._removed(record)
            for emoji in self._status_emoji:  # the desk's status (already gone counts as done)
                await self._slack.remove_reaction(ticket.channel, ticket.ts, emoji)
        except RateLimitedError as exc:
            raise RetryLater(exc.retry_after + random.uniform(0, 0.25)) from None
        except TransientSlackError as exc:
            await self._transient_failure(ticket, exc)
            return

        async def finish(conn: AsyncConnection) -> None:
            # Out of the desk (backlog, figures, timers) in the transaction that finishes it.
            await desk_repo.withdraw(conn, ticket.id, actor=desk_repo.BOT, at=self.clock.now())
            await self._mark(conn, ticket, tickets_repo.NOT_REQUEST, ticket.updated_at)

        await self._db.run(finish)
        log.info("Ticket %s withdrawn: not a request", ticket.id)

    async def _skip(self, ticket: Ticket, seen: datetime | None) -> None:
        await self._finish(ticket, tickets_repo.SKIPPED, seen)
        log.info("Ticket %s is no request (the request filter): stored, not routed", ticket.id)

    async def _wanted(
        self, ticket: Ticket, history: list[Correction], records: list[Routing]
    ) -> bool:
        """Whether to route the ticket: the request filter's answer, asked only while nothing
        was posted for it and nobody vouched for it (a correction, the shortcut)."""
        if history or ticket.submitted_by or any(r.kind == routings_repo.CARD for r in records):
            return True
        text = ticket.text[:MAX_TEXT_CHARS]
        return await self._is_request(redact_pii(text) if self._policy.redact_pii else text)

    def note_shared(self, channel: str, shared: bool) -> None:
        """What conversations.info said about ``channel`` (the start-up check asks anyway)."""
        self._shared[channel] = (self.clock.monotonic(), shared)

    async def _minimal(self, ticket: Ticket) -> bool:
        """Whether the requester is told little (TRIAGE_PUBLIC_REPLY, or by default: in a
        direct message and in a channel shared with another organisation)."""
        if self._policy.public_reply is not None:
            return self._policy.public_reply == "minimal"
        if ticket.source == "dm" or ticket.channel.startswith("D"):
            return True
        cached = self._shared.get(ticket.channel)
        now = self.clock.monotonic()
        if cached is not None and now - cached[0] < SHARED_CHANNEL_SECONDS:
            return cached[1]
        try:
            shared = await self._slack.shared_externally(ticket.channel)
        except Exception:  # unsure: say less rather than too much
            log.warning("Cannot tell whether %s is shared; replying minimally", ticket.channel)
            return True
        self._shared[ticket.channel] = (now, shared)
        return shared

    async def _finish(self, ticket: Ticket, status: str, seen: datetime | None) -> None:
        async def mark(conn: AsyncConnection) -> None:
            await self._mark(conn, ticket, status, seen)

        await self._db.run(mark)

    async def _mark(
        self, conn: AsyncConnection, ticket: Ticket, status: str, seen: datetime | None
    ) -> None:
        # Only if nothing changed since this run read the ticket; otherwise the run that the
        # change queued finishes it (and after a crash, the ticket is still unfinished). Either
        # way this run is over: the lease is given up for whichever process runs it next.
        changed = await tickets_repo.set_status(
            conn, ticket.id, status, unless_changed_since=seen, release=True
        )
        if changed is None:
            await tickets_repo.release_ticket(conn, ticket.id, self.owner)
            log.debug("Ticket %s changed while routed; it runs again", ticket.id)

    async def _transient_failure(self, ticket: Ticket, exc: TransientSlackError) -> None:
        async def count(conn: AsyncConnection) -> int:
            await tickets_repo.set_status(
                conn, ticket.id, tickets_repo.CLASSIFIED, count_attempt=True
            )
            attempts = (await tickets_repo.get_ticket(conn, ticket.id)).attempts
            if attempts >= self._policy.max_attempts:
                await tickets_repo.set_status(conn, ticket.id, tickets_repo.FAILED, release=True)
            return attempts

        attempts = await self._db.run(count)
        if attempts >= self._policy.max_attempts:
            log.error("Ticket %s not routed after %d attempts: %s", ticket.id, attempts, exc)
            reason = f"Slack kept failing in {attempts} attempts (the last: {exc})"
            await self._notify(TicketFailure(ticket.id, ticket.channel, reason))
            return
        delay = self._policy.retry_delay(attempts)
        log.warning("Ticket %s: %s; trying again in %.0fs", ticket.id, exc, delay)
        raise RetryLater(delay)

    # -- classification -------------------------------------------------------------------

    async def _classify(
        self, ticket: Ticket, previous: datetime | None
    ) -> tuple[StoredPrediction, datetime | None]:
        classifier = self._model.current()
        text = ticket.text[:MAX_TEXT_CHARS]
        if self._policy.redact_pii:
            text = redact_pii(text)
        started = time.perf_counter()
        raw = await self._predictions.predict(classifier, text)
        latency = raw.latency_ms or (time.perf_counter() - started) * 1000
        prediction = await self._like_a_correction(
            ticket, text, self._known_label(raw, classifier.model_id, latency)
        )

        async def save(conn: AsyncConnection) -> tuple[StoredPrediction, datetime | None]:
            stored = await tickets_repo.save_prediction(conn, ticket.id, prediction)
            seen = await tickets_repo.set_status(
                conn, ticket.id, tickets_repo.CLASSIFIED, unless_changed_since=previous
            )
            return stored, seen

        stored, seen = await self._db.run(save)
        log.info(
            "Ticket %s classified %s (%.2f) by %s in %.1f ms",
            ticket.id,
            stored.label,
            stored.confidence,
            stored.model_id,
            stored.latency_ms,
            extra={
                "ticket_id": ticket.id,
                "channel": ticket.channel,
                "label": stored.label,
                "confidence": round(stored.confidence, 4),
                "model": stored.model_id,
                "latency_ms": round(stored.latency_ms, 2),
            },
        )
        return stored, seen

    async def _like_a_correction(
        self, ticket: Ticket, text: str, prediction: Prediction
    ) -> Prediction:
        """The prediction blended with the vote of the team's labelled tickets most like it, or
        the label of a recent correction this ticket nearly repeats."""
        if self._near_duplicates is None:
            return prediction
        try:
            voted = await self._near_duplicates.voted(text, prediction, exclude=ticket.id)
            if self._taxonomy.get(voted.label) is not None:  # not a department since removed
                prediction = voted
            match = await self._near_duplicates.nearest(text, exclude=ticket.id)
        except Exception:  # the model's answer still routes the ticket
            log.warning("Ticket %s: near-duplicate lookup failed", ticket.id, exc_info=True)
            return prediction
        if match is None or self._taxonomy.get(match.label) is None:
            return prediction
        if match.label == prediction.label:  # the model agrees: its own answer stands
            return prediction
        log.info(
            "Ticket %s routed like ticket %s (similarity %.2f): %s",
            ticket.id,
            match.ticket_id,
            match.similarity,
            match.label,
        )
        return routed_by_correction(prediction, match)

    def _known_label(self, raw: Prediction, model_id: str, latency: float) -> Prediction:
        """The prediction with only departments of the taxonomy in it.

        A label the model invents cannot be routed: the ticket goes to a person (confidence 0).
        """
        ranking = tuple(
            (dept.name, score)
            for label, score in raw.ranking
            if (dept := self._taxonomy.get(label)) is not None
        )
        dept = self._taxonomy.get(raw.label)
        if dept is None:
            log.warning("Model %s returned unknown label %r; asking a person", model_id, raw.label)
            fallback = ranking[0][0] if ranking else self._taxonomy.labels[-1]
            return Prediction(fallback, 0.0, ranking, model_id or raw.model_id, latency)
        return Prediction(
            dept.name, float(raw.confidence), ranking, raw.model_id or model_id, latency
        )

    # -- Slack state ------------------------------------------------------------------------

    async def _reconcile(
        self,
        ticket: Ticket,
        prediction: StoredPrediction,
        human: Correction | None,
        ever_corrected: bool,
        records: list[Routing],
        seen: datetime | None,
        permalink: asyncio.Task[str] | None = None,
        check: bool = False,
        state: DeskState | None = None,
    ) -> bool:
        """Bring Slack in line; True when the ticket was also marked routed on the way.

        ``check``: look for each post in Slack before making it (see the module doc).
        ``state``: the ticket's desk state (None: not in the desk yet; its card enters it).
        """
        card, destination, key = await self._card_content(ticket, prediction, human, records)
        dept = card.department
        status, assignee, keep = desk_repo.OPEN, None, None
        if state is not None:
            status, assignee = state.status, state.assignee
            if state.department != dept.name and status == desk_repo.IN_PROGRESS:
                # A correction keeps the owner only if the new department's channel has them.
                if assignee and self._is_member and await self._is_member(dept.channel, assignee):
                    keep = assignee
                else:
                    status, assignee = desk_repo.OPEN, None
        card = CardContent(**{**card.__dict__, "status": status, "assignee": assignee})
        entry = DeskEntry(
            department=dept.name,
            permalink=None,
            keep=keep,
            actor=human.user if human is not None else desk_repo.BOT,
            shown=(status, assignee),
        )
        await self._reconcile_card(ticket, card, destination, key, records, permalink, check, entry)
        await self._reconcile_tag(ticket, dept, records)
        return await self._reconcile_thread(
            ticket,
            dept,
            prediction,
            human,
            bool(ever_corrected),
            destination,
            key,
            records,
            seen,
            check,
            minimal=card.legend,
        )

    async def redraw(self, ticket_id: int, state: DeskState) -> int:
        """Draw the ticket's card(s) again showing ``state`` (the desk changed); returns how
        many cards were updated. A card Slack no longer has is logged and skipped."""

        async def read(
            conn: AsyncConnection,
        ) -> tuple[Ticket, StoredPrediction | None, list[Correction], list[Routing]]:
            return (
                await tickets_repo.get_ticket(conn, ticket_id),
                await tickets_repo.latest_prediction(conn, ticket_id),
                await corrections_repo.corrections_for(conn, ticket_id),
                await routings_repo.routings_for(conn, ticket_id),
            )

        ticket, prediction, history, records = await self._db.run(read)
        cards = [r for r in records if r.kind == routings_repo.CARD and r.active and r.ts]
        if prediction is None or not cards:
            return 0
        card, _, _ = await self._card_content(ticket, prediction, standing_label(history), records)
        permalink = state.permalink or await self._slack.permalink(ticket.channel, ticket.ts)
        card = replace(card, permalink=permalink, status=state.status, assignee=state.assignee)
        updated = 0
        for record in cards:
            channel, ts = record.channel, record.ts
            assert ts is not None

            async def update(
                text: str, blocks: list[dict[str, object]], channel: str = channel, ts: str = ts
            ) -> str:
                await self._slack.update_message(channel, ts, text, blocks)
                return ts

            try:
                await self._send_card(ticket, card, update)
            except PermanentSlackError as exc:
                log.warning(
                    "Ticket %s: its card %s/%s not redrawn: %s", ticket_id, channel, ts, exc
                )
                continue
            updated += 1
        return updated

    async def _card_content(
        self,
        ticket: Ticket,
        prediction: StoredPrediction,
        human: Correction | None,
        records: list[Routing],
    ) -> tuple[CardContent, str, str]:
        """What the ticket's card shows (without the desk state), where it goes and its key."""
        label = final_label(prediction.label, human)
        dept = self._taxonomy.get(label)
        if dept is None:  # a department removed from the taxonomy since
            dept = self._taxonomy.departments[-1]
        confidence = 1.0 if human else prediction.confidence
        destination = self._policy.destination(
            dept, decided_by_person=human is not None, confidence=prediction.confidence
        )
        key = dept.name if human is None else f"{dept.name}#c{human.id}"
        kept = self._kept_card(ticket, prediction, human, records)
        if kept is not None:
            dept, destination, key = kept
            confidence = dict(prediction.ranking).get(dept.name, confidence)
        card = CardContent(
            ticket_id=ticket.id,
            text=ticket.text,
            author=ticket.user,
            permalink="",
            department=dept,
            confidence=confidence,
            runner_ups=prediction.runner_ups,
            decided_by=human.user if human else None,
            ask_for_department=human is None and self._policy.needs_person(confidence),
            like=None if human else near_duplicate_of(prediction.model_id),
            follow_ups=ticket.follow_ups,
            last_follow_up=ticket.last_follow_up,
            legend=await self._minimal(ticket),
            parts=ticket.parts,
        )
        return card, destination, key

    def _kept_card(
        self,
        ticket: Ticket,
        prediction: StoredPrediction,
        human: Correction | None,
        records: list[Routing],
    ) -> tuple[Department, str, str] | None:
        """Where a grown conversation's card stays: (department, channel, key) of the model's
        card already out when the new answer is an unsure other department, or None.

        A vague follow-up ("any update?") makes the whole text less clear; that is no reason
        to pull a card out of the department working on it (an agent's emoji still moves it).
        """
        if human is not None or (ticket.parts <= 1 and ticket.follow_ups == 0):
            return None
        card = next((r for r in records if r.kind == routings_repo.CARD and r.active), None)
        if card is None or "#" in card.label or card.label == prediction.label:
            return None
        dept = self._taxonomy.get(card.label)
        if dept is None or not self._policy.needs_person(prediction.confidence):
            return None
        return dept, card.channel, card.label

    async def _post(
        self,
        ticket: Ticket,
        kind: str,
        key: str,
        nth: int,
        channel: str,
        text: str,
        *,
        check: bool,
        blocks: list[dict[str, object]] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Post the ticket's ``nth`` message of ``kind``, unless ``check`` finds it posted."""
        payload = {"ticket_id": ticket.id, "kind": kind, "label": key, "n": nth}
        if check:
            found = await self._slack.find_ticket_message(
                channel, payload, after_ts=ticket.ts, thread_ts=thread_ts
            )
            if found is not None:
                log.info(
                    "Ticket %s: its %s was already posted; recorded, not posted again",
                    ticket.id,
                    kind,
                )
                return found
        metadata = {"event_type": TICKET_MESSAGE_EVENT, "event_payload": payload}
        return await self._slack.post_message(
            channel, text, blocks=blocks, thread_ts=thread_ts, metadata=metadata
        )

    async def _record(
        self,
        ticket: Ticket,
        kind: str,
        label: str,
        channel: str,
        ts: str,
        *,
        finish: tuple[str, datetime | None] | None = None,
        desk: DeskEntry | None = None,
    ) -> bool:
        """Record a Slack side effect; False when the card it records does not show the
        ticket's desk state (``desk``): the caller has the desk redraw it once done."""

        async def record(conn: AsyncConnection) -> bool:
            await routings_repo.record_routing(
                conn, ticket.id, kind=kind, label=label, channel=channel, ts=ts
            )
            if finish is not None:  # the last step: one transaction instead of two
                await self._mark(conn, ticket, *finish)
            return desk is None or await self._enter_desk(conn, ticket, desk)

        return bool(await self._db.run(record))

    async def _enter_desk(self, conn: AsyncConnection, ticket: Ticket, entry: DeskEntry) -> bool:
        """The ticket enters the desk (or moves to the card's department) with its card;
        whether the card shows the state the desk now has."""
        now = self.clock.now()
        # When the requester asked: the ticket's age (stored on the database's clock) counted
        # back from this clock's now, so a test's clock and the timers agree.
        waited = max(timedelta(0), utcnow() - as_utc(ticket.created_at))
        change = await desk_repo.open_ticket(
            conn,
            ticket.id,
            entry.department,
            opened_at=now - waited,
            at=now,
            permalink=entry.permalink,
        )
        state, moved = change.state, False
        if state is not None and state.department != entry.department:
            # The move's status emoji (an owner dropped) are the desk's to reconcile.
            moved = True
            state = (
                await desk_repo.change_department(
                    conn,
                    ticket.id,
                    entry.department,
                    keep=entry.keep,
                    actor=entry.actor,
                    at=now,
                )
            ).state
        if state is None:
            return True
        if entry.permalink and state.permalink != entry.permalink:
            await desk_repo.set_permalink(conn, ticket.id, entry.permalink)
        if moved or (state.status, state.assignee) != entry.shown:
            return False
        return await desk_repo.mark_synced(conn, ticket.id, state.version)

    async def _removed(self, routing: Routing) -> None:
        async def removed(conn: AsyncConnection) -> None:
            await routings_repo.mark_removed(conn, routing.id)

        await self._db.run(removed)

    async def _reconcile_card(
        self,
        ticket: Ticket,
        card: CardContent,
        destination: str,
        key: str,
        records: list[Routing],
        early_permalink: asyncio.Task[str] | None,
        check: bool,
        entry: DeskEntry | None = None,
    ) -> None:
        async def permalink() -> str:
            if early_permalink is not None:
                return await early_permalink
            return await self._slack.permalink(ticket.channel, ticket.ts)

        cards = [r for r in records if r.kind == routings_repo.CARD and r.active]
        redraw = False
        keep = next((r for r in cards if r.channel == destination and r.label == key), None)
        edited = ticket.edited_at is not None and (
            keep is None or keep.created_at < ticket.edited_at
        )
        if keep is None or edited:
            card = CardContent(**{**card.__dict__, "permalink": await permalink()})
            if keep is None:
                nth = sum(r.kind == routings_repo.CARD for r in records)

                async def post(text: str, blocks: list[dict[str, object]]) -> str:
                    return await self._post(
                        ticket,
                        routings_repo.CARD,
                        key,
                        nth,
                        destination,
                        text,
                        check=check,
                        blocks=blocks,
                    )

                ts = await self._send_card(ticket, card, post)
                desk = replace(entry, permalink=card.permalink) if entry else None
                redraw = not await self._record(
                    ticket, routings_repo.CARD, key, destination, ts, desk=desk
                )
            else:
                kept_ts = keep.ts
                assert kept_ts is not None

                async def update(text: str, blocks: list[dict[str, object]]) -> str:
                    await self._slack.update_message(destination, kept_ts, text, blocks)
                    return kept_ts

                await self._send_card(ticket, card, update)
                await self._removed(keep)
                desk = replace(entry, permalink=card.permalink) if entry else None
                redraw = not await self._record(
                    ticket, routings_repo.CARD, key, destination, kept_ts, desk=desk
                )
        for old in cards:
            if old is keep or old.ts is None:
                continue
            if old.channel == self._policy.triage_channel and old.channel != destination:
                resolved = CardContent(**{**card.__dict__, "permalink": await permalink()})
                text, blocks = resolved_triage_card(resolved, card.department, card.decided_by)
                await self._slack.update_message(old.channel, old.ts, text, blocks)
            else:
                await self._slack.delete_message(old.channel, old.ts)
            await self._removed(old)
        if redraw and self._desk_changed is not None:
            # The new card shows another state than the desk has now: the desk redraws it,
            # after the old cards are gone (it draws every active card).
            self._desk_changed(ticket.id)

    async def _send_card(
        self,
        ticket: Ticket,
        card: CardContent,
        send: Callable[[str, list[dict[str, object]]], Awaitable[str]],
    ) -> str:
        """Send the card with ``send``; when Slack refuses its content (``CARD_REFUSED``), send
        a simpler one (shorter text, then only a link to the ticket) instead of failing."""
        for level in range(CARD_LEVELS):
            text, blocks = ticket_card(card, self._taxonomy, level)
            try:
                return await send(text, blocks)
            except PermanentSlackError as exc:
                if exc.error not in CARD_REFUSED or level == CARD_LEVELS - 1:
                    raise
                log.warning(
                    "Ticket %s: Slack refused its card (%s); sending a simpler one",
                    ticket.id,
                    exc.error,
                )
        raise AssertionError("unreachable")  # the last level returns or raises

    async def _reconcile_tag(
        self, ticket: Ticket, dept: Department, records: list[Routing]
    ) -> None:
        tags = [r for r in records if r.kind == routings_repo.TAG and r.active]
        if not any(t.label == dept.name for t in tags):
            await self._slack.add_reaction(ticket.channel, ticket.ts, dept.emoji)
            await self._record(ticket, routings_repo.TAG, dept.name, ticket.channel, ticket.ts)
        for tag in tags:
            if tag.label == dept.name:
                continue
            old = self._taxonomy.get(tag.label)
            if old is not None:
                await self._slack.remove_reaction(ticket.channel, ticket.ts, old.emoji)
            await self._removed(tag)

    async def _reconcile_thread(
        self,
        ticket: Ticket,
        dept: Department,
        prediction: StoredPrediction,
        human: Correction | None,
        ever_corrected: bool,
        destination: str,
        key: str,
        records: list[Routing],
        seen: datetime | None,
        check: bool,
        *,
        minimal: bool = False,
    ) -> bool:
        said = [r for r in records if r.kind in (routings_repo.REPLY, routings_repo.CONFIRM)]
        if said and said[-1].label == key:
            return False
        in_triage = destination != dept.channel
        grouped = ticket.parts > 1 or ticket.follow_ups > 0
        live = [r for r in said if r.active and r.ts is not None]
        first = live[-1] if live else None
        if (
            human is None
            and not ever_corrected
            and grouped
            and first is not None
            and first.ts is not None
            and all(r.kind == routings_repo.REPLY for r in said)
        ):
            # A conversation that grew and now reads differently: its one reply says so in
            # place (a second reply per message of a burst would be noise).
            if minimal:
                text = minimal_reply(None if in_triage else dept)
            else:
                text = first_reply(
                    dept, prediction.confidence, destination, in_triage, self._taxonomy
                )
            await self._slack.update_message(ticket.channel, first.ts, text)
            await self._removed(first)
            await self._record(
                ticket,
                routings_repo.REPLY,
                key,
                ticket.channel,
                first.ts,
                finish=(tickets_repo.ROUTED, seen),
            )
            return True
        if minimal:
            text = minimal_reply(None if in_triage and human is None else dept)
        elif human is not None:
            text = correction_reply(dept, human.user, destination)
        elif not said:
            text = first_reply(dept, prediction.confidence, destination, in_triage, self._taxonomy)
        elif ever_corrected:
            text = undo_reply(dept, destination)
        else:
            text = reclassified_reply(dept, prediction.confidence, destination)
        kind = routings_repo.CONFIRM if said else routings_repo.REPLY
        ts = await self._post(
            ticket, kind, key, len(said), ticket.channel, text, check=check, thread_ts=ticket.ts
        )
        await self._record(
            ticket, kind, key, ticket.channel, ts, finish=(tickets_repo.ROUTED, seen)
        )
        return True
