"""The request filter in the bot: its decisions, agents' feedback, and its refits.

- ``decide(text)``: whether a new top-level message is a request (``bot.intake`` stores one
  that is not with status ``skipped``: no card, no tag, no reply).
- ``react(change)``: an agent's ``TRIAGE_NOT_A_TICKET_EMOJI`` on a ticket or its card marks it
  no request: the word is stored as a filter example and the ticket is queued, and the router
  withdraws its card(s), tag and reply (``bot.routing``), also after a restart. Removing the
  emoji takes the word back and routes the ticket again. Only agents (``data.people.may_label``).
- ``send_to_triage(ticket, user)``: the other way (the "Send to triage" shortcut): a skipped
  message becomes a ticket in the normal flow and a "request" example.
- ``run()``: the supervisor's task: fits the filter (shipped examples + every stored word,
  later words winning) as soon as the bot runs, then refits it when the stored words changed,
  looked at every ``refit_seconds``, so words given to any replica reach all of them.

Start-up does not wait for the filter. Fitting is CPU work of seconds (4 s of CPU here, 23 s
on a loaded machine): it runs in a thread after the bot is up, and every fitted filter is
saved in ``cache_dir`` under a hash of what it was fitted on (``fit_key``), so the next start
with the same examples and feedback loads it in milliseconds instead. Until the first fit or
load is done, judging a message waits for it (``judge``): routing everything meanwhile would
post cards for the "thanks!" of the first seconds after every cold start, and with grouping on
no conversation is judged before it has been quiet for ``TRIAGE_GROUP_SECONDS`` anyway. If that
first fit fails, every message is routed (skipping nothing is the safe side) until a refit
works. Fits of the same examples in one process are shared.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from bot.payloads import ReactionChange
from bot.people import People
from bot.policy import RoutingPolicy
from bot.work_queue import TicketQueue
from classifier.redaction import redact_pii
from classifier.request_filter import (
    FilterExample,
    RequestDecision,
    RequestFilter,
    filter_from_bytes,
    filter_to_bytes,
    fit_key,
    fit_request_filter,
    merge_examples,
)
from data.clock import Clock
from data.db import request_feedback as feedback_repo
from data.db import routings as routings_repo
from data.db import tickets as tickets_repo
from data.db.database import Database
from data.db.tickets import Ticket
from data.people import Refusal, may_label

log = logging.getLogger(__name__)

#: Seconds between looks for new feedback (a refit follows when there is some).
REFIT_SECONDS = 60.0
#: Saved filters kept in the cache folder (the newest; older ones are removed).
KEEP_SAVED = 4


class FeedbackOutcome(StrEnum):
    """What became of a "not a ticket" emoji or a send-to-triage (logged; tests check it)."""

    WITHDRAWN = "marked not a request; card withdrawn"
    RESTORED = "not-a-request taken back; routed again"
    ALREADY = "already marked so"
    NOTHING_TO_UNDO = "nothing to undo"
    NOT_A_TICKET = "not a ticket"
    SENT_TO_TRIAGE = "sent to triage"
    REFUSED = "refused: not an agent"


@lru_cache(maxsize=4)
def _fit(examples: tuple[FilterExample, ...], seed: int) -> RequestFilter:
    return fit_request_filter(examples, seed=seed)


def _save(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all, and keep only the newest saved filters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(path)
    saved = sorted(path.parent.glob("request-filter-*.npz"), key=lambda p: p.stat().st_mtime)
    for old in saved[:-KEEP_SAVED]:
        old.unlink(missing_ok=True)


class RequestFilterService:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        queue: TicketQueue,
        people: People,
        policy: RoutingPolicy,
        clock: Clock,
        shipped: Callable[[], Sequence[FilterExample]],
        *,
        emoji: str,
        enabled: bool = True,
        refit_seconds: float = REFIT_SECONDS,
        seed: int = 0,
        cache_dir: Path | None = None,
    ) -> None:
        """``cache_dir``: where fitted filters are saved to be loaded by the next start (None:
        not saved)."""
        self._db = db
        self._queue = queue
        self._people = people
        self._policy = policy
        self._clock = clock
        self._shipped = shipped
        #: The "not a ticket" emoji's name (without colons).
        self.emoji = emoji
        self.enabled = enabled
        self._refit_seconds = refit_seconds
        self._seed = seed
        self._filter: RequestFilter | None = None
        self._version: tuple[int, int] | None = None
        self._cache_dir = cache_dir
        #: The latest look of ``run`` (whether it refitted), for whoever waits on it.
        self.last_look: asyncio.Future[bool] | None = None
        #: Where the filter in use came from: "fitted", "saved" (the cache folder), or None.
        self.origin: str | None = None
        self._ready = asyncio.Event()

    # -- the decision -------------------------------------------------------------------

    @property
    def current(self) -> RequestFilter | None:
        """The filter in use (None before the first fit, or when the filter is off)."""
        return self._filter

    def decide(self, text: str) -> RequestDecision | None:
        """The filter's answer for a new message; None when every message is to be routed
        (the filter is off, or not fitted yet: skipping nothing is the safe side)."""
        if not self.enabled or self._filter is None:
            return None
        return self._filter.decide(text)

    async def judge(self, text: str) -> RequestDecision | None:
        """``decide``, once the first fit (or load) after start-up has finished."""
        await self.wait_ready()
        return self.decide(text)

    async def wait_ready(self) -> None:
        """Return once the first fit after start-up finished (at once when the filter is off)."""
        if self.enabled:
            await self._ready.wait()

    # -- refits ---------------------------------------------------------------------------

    async def refit(self) -> bool:
        """Fit on the shipped examples and every stored word unless they did not change since
        the last fit; whether it fitted."""
        if not self.enabled:
            return False
        try:
            async with self._db.transaction() as conn:
                version = await feedback_repo.version(conn)
                if version == self._version and self._filter is not None:
                    return False
                stored = await feedback_repo.all_feedback(conn)
            learned = [FilterExample(f.text, f.is_request) for f in stored]
            examples = tuple(merge_examples(self._shipped(), learned))
            fitted, self.origin = await asyncio.to_thread(self._fit_or_load, examples)
            self._filter, self._version = fitted, version
        finally:
            self._ready.set()  # the first look is over: judging waits no longer
        log.info(
            "Request filter %s: %d examples (%d from people); threshold %.3f",
            "loaded from the cache folder" if self.origin == "saved" else "fitted",
            len(examples),
            len(learned),
            fitted.threshold,
        )
        return True

    def _fit_or_load(self, examples: tuple[FilterExample, ...]) -> tuple[RequestFilter, str]:
        """The filter of ``examples``: the one saved for them, or fitted (and saved). In a
        thread: fitting is seconds of CPU."""
        path = None
        if self._cache_dir is not None:
            path = self._cache_dir / f"request-filter-{fit_key(examples, seed=self._seed)}.npz"
            try:
                return filter_from_bytes(path.read_bytes()), "saved"
            except FileNotFoundError:
                pass
            except (OSError, ValueError):
                log.warning("A saved request filter could not be read; fitting it again")
        fitted = _fit(examples, self._seed)
        if path is not None:
            try:
                _save(path, filter_to_bytes(fitted))
            except OSError as exc:
                log.warning("Could not save the request filter in %s: %s", path.parent, exc)
        return fitted, "fitted"

    async def run(self) -> None:
        """Fit (or load) the filter now, then refit when the stored words changed, looking
        every ``refit_seconds`` (a task)."""
        first = True
        while True:
            if not first:
                await self._clock.sleep(self._refit_seconds)
            first = False
            self.last_look = asyncio.ensure_future(self.refit())
            try:
                await self.last_look
            except Exception:  # the filter in use stays; the next look tries again
                log.warning("Refitting the request filter failed", exc_info=True)

    # -- feedback -------------------------------------------------------------------------

    def _example_text(self, text: str) -> str:
        return redact_pii(text) if self._policy.redact_pii else text

    async def record_request_feedback(
        self, *, ticket_id: int | None, text: str, is_request: bool, user: str, via: str
    ) -> None:
        """Store a person's word on a message as a filter example (the next refit uses it).

        The caller checked who may give it. ``via``: ``data.db.request_feedback`` REACTION or
        SHORTCUT."""
        async with self._db.transaction() as conn:
            await feedback_repo.record_feedback(
                conn,
                ticket_id=ticket_id,
                text=self._example_text(text),
                is_request=is_request,
                user=user,
                via=via,
                now=self._clock.now(),
            )

    async def send_to_triage(self, ticket: Ticket, user: str) -> FeedbackOutcome:
        """Make a stored message a ticket in the normal flow (the shortcut) and teach the
        filter it is a request. A skipped or not-a-request ticket is queued to be routed; one
        already routed only gains the example. The caller checked who may do it."""
        async with self._db.transaction() as conn:
            await feedback_repo.record_feedback(
                conn,
                ticket_id=ticket.id,
                text=self._example_text(ticket.text),
                is_request=True,
                user=user,
                via=feedback_repo.SHORTCUT,
                now=self._clock.now(),
            )
            current = await tickets_repo.get_ticket(conn, ticket.id)
            queue = current.status in (tickets_repo.SKIPPED, tickets_repo.NOT_REQUEST)
            if queue:
                await tickets_repo.set_status(conn, ticket.id, tickets_repo.RECEIVED)
                await tickets_repo.reset_attempts(conn, ticket.id)
        if queue:
            self._queue.submit(ticket.id)
        log.info("Ticket %s sent to triage by %s: a request, the filter learns", ticket.id, user)
        return FeedbackOutcome.SENT_TO_TRIAGE

    async def react(self, change: ReactionChange) -> FeedbackOutcome:
        """The "not a ticket" emoji added to or removed from a ticket or its card."""
        ticket = await self._ticket_at(change.channel, change.ts)
        if ticket is None:
            return FeedbackOutcome.NOT_A_TICKET
        if change.action == "removed":
            return await self._take_back(ticket, change.user)
        person = await self._people.who(change.user, team=change.team)
        refusal: Refusal | None = may_label(person, ticket.user)
        if refusal is not None:
            log.info(
                "Not-a-ticket on ticket %s by %s refused: %s (%s)",
                ticket.id,
                change.user,
                refusal,
                person.reason,
            )
            return FeedbackOutcome.REFUSED
        async with self._db.transaction() as conn:
            standing = await feedback_repo.feedback_for(conn, ticket.id)
            if standing is not None and not standing.is_request:
                return FeedbackOutcome.ALREADY
            await feedback_repo.record_feedback(
                conn,
                ticket_id=ticket.id,
                text=self._example_text(ticket.text),
                is_request=False,
                user=change.user,
                via=feedback_repo.REACTION,
                now=self._clock.now(),
            )
            current = await tickets_repo.get_ticket(conn, ticket.id)
            withdraw = current.status not in (tickets_repo.SKIPPED, tickets_repo.NOT_REQUEST)
            if withdraw:
                # Unfinished until the router has withdrawn it: resumed after a restart too.
                await tickets_repo.set_status(conn, ticket.id, tickets_repo.CLASSIFIED)
                await tickets_repo.reset_attempts(conn, ticket.id)
        log.info("Ticket %s marked not a request by %s", ticket.id, change.user)
        if withdraw:
            self._queue.submit(ticket.id)
        return FeedbackOutcome.WITHDRAWN

    async def _take_back(self, ticket: Ticket, user: str) -> FeedbackOutcome:
        async with self._db.transaction() as conn:
            removed = await feedback_repo.remove_feedback(
                conn, ticket.id, user=user, is_request=False
            )
            if not removed:
                return FeedbackOutcome.NOTHING_TO_UNDO
            current = await tickets_repo.get_ticket(conn, ticket.id)
            route = current.status in (tickets_repo.NOT_REQUEST, tickets_repo.CLASSIFIED)
            if route:
                await tickets_repo.set_status(conn, ticket.id, tickets_repo.CLASSIFIED)
                await tickets_repo.reset_attempts(conn, ticket.id)
        log.info("Ticket %s: %s took back not-a-request", ticket.id, user)
        if route:
            self._queue.submit(ticket.id)
        return FeedbackOutcome.RESTORED

    async def _ticket_at(self, channel: str, ts: str) -> Ticket | None:
        async with self._db.transaction() as conn:
            return await routings_repo.ticket_at(conn, channel, ts)
