"""The desk in Slack: Take it / Resolve / Reopen on a card, the same by emoji, first responses.

- ``press``: a card's button (``bot.payloads.DeskPress``); ``react``: ``TRIAGE_TAKE_EMOJI`` or
  ``TRIAGE_RESOLVE_EMOJI`` on a ticket or its card; ``record_reply``: an agent replied in the
  ticket's thread: their first reply is the first response, and takes the ticket if nobody has.
- Only agents act (``data.people.may_label``, facts from ``bot.people``, the rule corrections
  use): anyone else gets an ephemeral refusal and a log line. Every change is one
  compare-and-set in the database (``data.db.desk``) with who, when and through what, so of two
  agents pressing Take it at once one wins and the other is told who has it (ephemeral).
- Idempotent: a press carries Slack's ``action_ts``, a reaction its ``event_ts``, a reply its
  ts; a request seen before (Slack delivered it again) changes nothing and posts nothing.

A press is stored before it is acknowledged (``record_press``; Slack never delivers an
acknowledged interaction again), in an urgent group commit (``bot.group_commit``: it does not
wait behind the Slack side's own reads and writes). Its Slack side, the ephemeral refusal or
``sync``, is drawn after, by ``WORKERS`` tasks of ``run``, off the request's path (Bolt answers
only once the listener returns, so nothing there may wait for Slack), each step giving way to
the requests in flight (``bot.requests_in_flight``: after a restart there is a backlog of Slack
sides to draw, and acknowledgements must not wait behind it): the card is redrawn
with status, owner and buttons (``TicketRouter.redraw``), the ticket carries the status emoji
(the take emoji while in progress, the resolve emoji once resolved), and the requester's thread
gets one short line per take and resolution, each recorded in ``routings`` (kind ``desk``)
right after it is posted. The ticket's row then records the version Slack shows
(``synced_version``). A change whose Slack side was cut short (a crash, Slack down) is found by
the background task (``run``, on the replica holding the ``desk-sync`` lease) and done again;
a thread line it may have posted is looked for in Slack (message metadata) first, as is the
missing line of any change this process did not store itself (the next change of a ticket
after a restart draws its lines at once, before any sweep), and a post whose answer was lost
is never re-sent blindly (``ticket_calls``).

A reply is recorded in the transaction that places it (``bot.inbox`` deletes its
``incoming_messages`` row there), so a crash loses neither half: the row stays until both are
stored, and the next start (or a replica's sweep) places it and records it then. Whether its
author is an agent is asked before that transaction (``is_agent``: it may call Slack, which a
transaction must not wait for). Before, the two were separate transactions and a SIGKILL
between them lost 3 of 5,000 first responses in ``bench/desk.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import PermanentSlackError, SlackCallError
from bot.group_commit import GroupCommit
from bot.payloads import REOPEN, RESOLVE, TAKE, DeskPress, ReactionChange
from bot.people import People
from bot.requests_in_flight import RequestsInFlight
from bot.routing import TicketRouter
from bot.slack_gateway import TICKET_MESSAGE_EVENT, SlackGateway, ticket_calls
from bot.views import desk_refusal, resolved_line, taken_line
from classifier.taxonomy import Taxonomy
from data.clock import Clock
from data.db import desk as desk_repo
from data.db import leases as leases_repo
from data.db import routings as routings_repo
from data.db import tickets as tickets_repo
from data.db.database import Database
from data.db.desk import DeskChange, DeskState, Transition
from data.db.routings import Routing
from data.db.tickets import Ticket
from data.people import may_label

log = logging.getLogger(__name__)

LEASE = "desk-sync"
#: Seconds between looks for changes whose Slack side is missing.
SYNC_SECONDS = 15.0
#: A change younger than this is left to the process that made it (it is syncing it now).
SETTLE = timedelta(seconds=10)
#: ``routings.kind`` of the desk's lines in the requester's thread.
LINE = "desk"
#: Times ``sync`` draws a ticket again when it changed while being drawn.
ROUNDS = 5
#: Tickets whose Slack side is drawn at once.
WORKERS = 8


class DeskOutcome(StrEnum):
    """What became of a press, a reaction or a reply (logged; also what the tests check)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate request"
    REFUSED = "refused"
    MISSING = "not in the desk"
    NOT_AN_AGENT = "not an agent"
    NOT_DESK_EMOJI = "not a desk emoji"
    NOT_A_TICKET = "not a ticket"
    IGNORED = "ignored"


@dataclass(frozen=True)
class DeskAnswer:
    """The outcome, the change (when the database was asked), and what is left to do in
    Slack (``follow_up``): the ephemeral ``notice`` for ``user`` in ``channel``, and the
    ticket to sync (``sync``) after an applied change."""

    outcome: DeskOutcome
    change: DeskChange | None = None
    notice: str | None = None
    user: str = ""
    channel: str = ""
    sync: int | None = None


@dataclass(frozen=True)
class _Notice:
    """An ephemeral message for ``user`` in ``channel``, told by a worker of ``run``."""

    channel: str
    user: str
    text: str


@dataclass(frozen=True)
class FirstResponse:
    """What ``TicketDesk.record_reply`` stored: the change, and whether Slack shows it already
    (only the time changed, on a ticket whose card was in line)."""

    ticket_id: int
    user: str
    change: DeskChange
    shown: bool


_ACTIONS = {TAKE: desk_repo.take, RESOLVE: desk_repo.resolve, REOPEN: desk_repo.reopen}


class TicketDesk:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        commits: GroupCommit,
        slack: SlackGateway,
        router: TicketRouter,
        people: People,
        taxonomy: Taxonomy,
        clock: Clock,
        *,
        take_emoji: str,
        resolve_emoji: str,
        owner: str,
        interval: float = SYNC_SECONDS,
        in_flight: RequestsInFlight | None = None,
    ) -> None:
        """``in_flight``: the requests Slack waits on; the Slack side gives way to them
        between its steps (``bot.requests_in_flight``)."""
        self._db = db
        # The requests' transactions are small and many: they share commits with the tickets'.
        self._commits = commits
        self._slack = slack
        self._router = router
        self._people = people
        self._taxonomy = taxonomy
        self._clock = clock
        self.take_emoji = take_emoji
        self.resolve_emoji = resolve_emoji
        self._owner = owner
        self._interval = interval
        self._in_flight = in_flight or RequestsInFlight(clock)
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}
        # Tickets whose Slack side is to be drawn, worked by ``WORKERS`` tasks (``run``).
        # Also the ephemeral notices (``_Notice``), told by the same workers.
        self._queue: asyncio.Queue[int | _Notice] = asyncio.Queue()
        self._queued: set[int] = set()
        # Tickets whose last sync failed mid-way: a thread line may be posted, unrecorded.
        self._uncertain: set[int] = set()
        # Transitions this process stored whose thread line is not yet recorded. A line of any
        # other one (stored before a restart, or by another replica) may have been posted by
        # a sync that was cut short: it is looked for in Slack before it is posted.
        self._mine: set[int] = set()
        self._busy = 0  # tickets a worker is drawing now, notices it is telling
        self._idle = asyncio.Event()  # set while nothing is queued or being worked on
        self._idle.set()

    @property
    def emoji(self) -> tuple[str, str]:
        """The take and resolve emoji (also the status the ticket carries)."""
        return self.take_emoji, self.resolve_emoji

    # -- requests -------------------------------------------------------------------------

    async def press(self, press: DeskPress) -> DeskAnswer:
        """Take it, Resolve or Reopen pressed on a card: ``record_press``, then ``follow_up``."""
        answer = await self.record_press(press)
        self.follow_up(answer)
        return answer

    async def record_press(self, press: DeskPress) -> DeskAnswer:
        """Decide and store a press; its Slack side is left to ``follow_up``. The listener
        acknowledges in between: an acknowledged press is stored (Slack never delivers an
        acknowledged interaction again, so a crash right after the acknowledgement must not
        lose it), and the acknowledgement waits for one short transaction, not for Slack."""
        key = f"b:{press.ticket_id}:{press.action}:{press.user}:{press.action_ts}"
        return await self._decide(
            press.ticket_id,
            None,
            press.action,
            press.user,
            press.team,
            channel=press.channel,
            source=desk_repo.BUTTON,
            key=key if press.action_ts else None,
            department=press.department or None,
        )

    async def react(self, change: ReactionChange) -> DeskAnswer:
        """The take or resolve emoji on a ticket or its card (removing one changes nothing:
        Reopen is the card's button)."""
        actions = {self.take_emoji: TAKE, self.resolve_emoji: RESOLVE}
        action = actions.get(change.emoji)
        if action is None:
            return DeskAnswer(DeskOutcome.NOT_DESK_EMOJI)
        identity = self._slack.identity
        if change.action == "removed" or (identity and change.user == identity.user_id):
            return DeskAnswer(DeskOutcome.IGNORED)  # the bot's own status emoji, or a removal
        ticket = await self._ticket_at(change.channel, change.ts)
        if ticket is None:
            return DeskAnswer(DeskOutcome.NOT_A_TICKET)
        key = f"r:{change.channel}:{change.ts}:{change.emoji}:{change.user}:{change.event_ts}"
        answer = await self._decide(
            ticket.id,
            ticket,
            action,
            change.user,
            change.team,
            channel=change.channel,
            source=desk_repo.REACTION,
            key=key if change.event_ts else None,
            department=None,
        )
        self.follow_up(answer)
        return answer

    async def is_agent(self, user: str, team: str | None) -> bool:
        """Whether ``user``, who wrote in a ticket's thread, is an agent. Asked before their
        reply is placed (it may call Slack), so that the transaction that places the reply
        also records it (``record_reply``)."""
        return (await self._people.who(user, team=team, person=True)).is_agent

    @staticmethod
    async def record_reply(
        conn: AsyncConnection, ticket: Ticket, user: str, ts: str, *, at: datetime
    ) -> FirstResponse:
        """An agent's reply in the ticket's thread, in the caller's transaction (the one that
        places the reply, ``bot.inbox``): the first one is the first response (cancels the
        timers) and takes an open ticket. Awaits only ``conn.execute`` (a group commit's
        operation). Tell ``replied`` once it has committed."""
        change = await desk_repo.record_first_response(
            conn, ticket.id, user, at=at, request_key=f"reply:{ticket.channel}:{ts}"
        )
        shown = False
        if change.applied and change.transition is None and change.state is not None:
            # Only the time changed, nothing a card shows: in line already if it was.
            shown = await desk_repo.mark_synced(
                conn, ticket.id, change.state.version, was=change.state.version - 1
            )
        return FirstResponse(ticket.id, user, change, shown)

    def replied(self, first: FirstResponse) -> DeskOutcome:
        """A reply recorded by ``record_reply`` has committed: its Slack side is drawn."""
        if first.change.outcome == desk_repo.APPLIED:
            log.info("Ticket %s: first response by %s", first.ticket_id, first.user)
            if not first.shown:
                self.changed(first.ticket_id)
        return _OUTCOMES[first.change.outcome]

    async def _decide(
        self,
        ticket_id: int,
        ticket: Ticket | None,
        action: str,
        user: str,
        team: str | None,
        *,
        channel: str,
        source: str,
        key: str | None,
        department: str | None,
    ) -> DeskAnswer:
        """Who may act, then the change: for an agent one (shared) transaction in all, which
        also finds a ticket that is gone (MISSING)."""
        # A press or a reaction is a person's (no bot presses buttons); with the event's team
        # that is all users.info would add, so a known agent's press makes no Slack call.
        person = await self._people.who(user, team=team, person=True)
        if not person.is_agent:
            ticket = ticket or await self._ticket(ticket_id)
            if ticket is None:
                notice = desk_refusal(desk_repo.MISSING, None, None)
                return DeskAnswer(DeskOutcome.MISSING, notice=notice, user=user, channel=channel)
            refusal = may_label(person, ticket.user)  # the one rule; it names why
            log.info(
                "Desk %s of ticket %s by %s refused: %s (%s)",
                action,
                ticket_id,
                user,
                refusal,
                person.reason,
            )
            notice = desk_refusal("not_an_agent", None, None)
            return DeskAnswer(DeskOutcome.NOT_AN_AGENT, notice=notice, user=user, channel=channel)
        now = self._clock.now()
        apply = _ACTIONS[action]

        async def change(conn: AsyncConnection) -> DeskChange:
            return await apply(
                conn,
                ticket_id,
                user,
                at=now,
                source=source,
                request_key=key,
                department=department,
            )

        done = await self._change(change)
        outcome = _OUTCOMES[done.outcome]
        log.info("Desk %s of ticket %s by %s via %s: %s", action, ticket_id, user, source, outcome)
        if done.outcome == desk_repo.APPLIED:
            if done.transition is not None and self._line(done.transition) is not None:
                self._mine.add(done.transition.id)
            return DeskAnswer(outcome, done, sync=ticket_id)
        if done.outcome == desk_repo.DUPLICATE:
            return DeskAnswer(outcome, done)  # told the first time
        state = done.state
        reason = done.reason if done.outcome == desk_repo.REFUSED else desk_repo.MISSING
        dept = self._taxonomy.get(state.department) if state is not None else None
        notice = desk_refusal(reason, state.assignee if state else None, dept)
        return DeskAnswer(outcome, done, notice, user=user, channel=channel)

    def follow_up(self, answer: DeskAnswer) -> None:
        """The Slack side of a decided request, queued for the workers of ``run``: the
        ephemeral notice, or the ticket's sync. Neither is waited for: Bolt answers Slack once
        the listener returns (``process_before_response``), so a notice told here would hold
        the acknowledgement for a Slack round trip."""
        if answer.notice is not None:
            self._queue.put_nowait(_Notice(answer.channel, answer.user, answer.notice))
            self._idle.clear()
        if answer.sync is not None:
            self.changed(answer.sync)

    async def _change(
        self, change: Callable[[AsyncConnection], Awaitable[DeskChange]]
    ) -> DeskChange:
        """Run a desk change in a (shared) transaction; a request racing its own redelivery
        (the unique request key) is run again, and then answers DUPLICATE. Urgent: Slack's
        acknowledgement waits for it, not for the Slack side queued before it."""
        try:
            return await self._commits.run(change, urgent=True)
        except IntegrityError:
            return await self._commits.run(change, urgent=True)

    async def _tell(self, channel: str, user: str, text: str) -> None:
        try:
            await self._slack.post_ephemeral(channel, user, text)
        except SlackCallError:
            log.warning("Could not tell %s in %s: %s", user, channel, text)
        except Exception:  # a worker tells the next one all the same
            log.warning("Could not tell %s in %s: %s", user, channel, text, exc_info=True)

    async def _ticket(self, ticket_id: int) -> Ticket | None:
        async def read(conn: AsyncConnection) -> Ticket | None:
            try:
                return await tickets_repo.get_ticket(conn, ticket_id)
            except tickets_repo.TicketNotFoundError:
                return None

        return await self._commits.run(read, urgent=True)

    async def _ticket_at(self, channel: str, ts: str) -> Ticket | None:
        async def read(conn: AsyncConnection) -> Ticket | None:
            return await routings_repo.ticket_at(conn, channel, ts)

        return await self._commits.run(read, urgent=True)

    # -- the Slack side -------------------------------------------------------------------

    def changed(self, ticket_id: int) -> None:
        """The ticket changed (a press, a reply, the router's card): its Slack side is drawn
        by the workers of ``run``, off the request's path, so acknowledgements stay quick
        when Slack or the bot is busy (a change made twice meanwhile is drawn once)."""
        if ticket_id not in self._queued:
            self._queued.add(ticket_id)
            self._queue.put_nowait(ticket_id)
            self._idle.clear()

    async def drain(self) -> None:
        """Wait until every changed ticket has had its Slack side tried (tests and shutdown;
        bound it with ``asyncio.timeout``). A failed one is left to the stale sweep."""
        await self._idle.wait()

    def _settled(self) -> None:
        if self._queue.empty() and not self._busy:
            self._idle.set()

    async def sync(self, ticket_id: int, *, check: bool = False) -> bool:
        """Bring the ticket's Slack side in line with its desk state (card, status emoji,
        thread lines); whether it is in line now. ``check``: look for a thread line in Slack
        before posting it (the last sync may have posted it unrecorded)."""
        check = check or ticket_id in self._uncertain
        # One sync per ticket at a time in this process; the lock lives while anyone waits.
        lock, users = self._locks.get(ticket_id, (asyncio.Lock(), 0))
        self._locks[ticket_id] = (lock, users + 1)
        try:
            async with lock:
                # A post whose answer is lost is looked for, never sent again blindly.
                with ticket_calls():
                    for _round in range(ROUNDS):
                        if await self._sync_once(ticket_id, check):
                            self._uncertain.discard(ticket_id)
                            return True
                return False
        except BaseException:
            self._uncertain.add(ticket_id)
            raise
        finally:
            lock, users = self._locks[ticket_id]
            if users == 1:
                del self._locks[ticket_id]
            else:
                self._locks[ticket_id] = (lock, users - 1)

    async def _sync_once(self, ticket_id: int, check: bool) -> bool:
        async def read(
            conn: AsyncConnection,
        ) -> tuple[DeskState | None, list[Transition], list[Routing], Ticket | None]:
            state = await desk_repo.get_state(conn, ticket_id)
            if state is None:
                return None, [], [], None
            return (
                state,
                await desk_repo.transitions_for(conn, ticket_id),
                await routings_repo.routings_for(conn, ticket_id),
                await tickets_repo.get_ticket(conn, ticket_id),
            )

        turn = self._in_flight.turn  # each step gives way to the requests Slack waits on
        await turn()
        state, transitions, records, ticket = await self._commits.run(read)
        if state is None or ticket is None:
            return True  # withdrawn or deleted: nothing to show
        await turn()
        await self._router.redraw(ticket_id, state)
        await turn()
        await self._status_emoji(ticket, state, transitions)
        said = {r.label for r in records if r.kind == LINE}
        for transition in transitions:
            text = self._line(transition)
            if text is not None and f"t{transition.id}" not in said:
                await turn()
                foreign = transition.id not in self._mine
                await self._post_line(ticket, transition, text, check or foreign)
                self._mine.discard(transition.id)

        async def synced(conn: AsyncConnection) -> bool:
            return await desk_repo.mark_synced(conn, ticket_id, state.version)

        return await self._commits.run(synced)

    def _line(self, transition: Transition) -> str | None:
        """The requester's line for a transition: a take by an agent (not by their reply,
        which the requester sees already) and a resolution."""
        if transition.to_status == desk_repo.RESOLVED:
            return resolved_line(transition.actor)
        taken = (
            transition.to_status == desk_repo.IN_PROGRESS
            and transition.from_status == desk_repo.OPEN
            and transition.source in (desk_repo.BUTTON, desk_repo.REACTION, desk_repo.COMMAND)
            and transition.assignee
        )
        if taken and transition.assignee:
            dept = self._taxonomy.get(transition.department)
            return taken_line(transition.assignee, dept) if dept is not None else None
        return None

    async def _post_line(
        self, ticket: Ticket, transition: Transition, text: str, check: bool
    ) -> None:
        label = f"t{transition.id}"
        payload = {"ticket_id": ticket.id, "kind": LINE, "label": label, "n": 0}
        ts: str | None = None
        if check:
            ts = await self._slack.find_ticket_message(
                ticket.channel, payload, after_ts=ticket.ts, thread_ts=ticket.ts
            )
        if ts is None:
            metadata = {"event_type": TICKET_MESSAGE_EVENT, "event_payload": payload}
            try:
                ts = await self._slack.post_message(
                    ticket.channel, text, thread_ts=ticket.ts, metadata=metadata
                )
            except PermanentSlackError as exc:  # e.g. the ticket was deleted: nowhere to say it
                log.warning("Ticket %s: its desk line not posted: %s", ticket.id, exc)

        async def record(conn: AsyncConnection) -> None:
            await routings_repo.record_routing(
                conn, ticket.id, kind=LINE, label=label, channel=ticket.channel, ts=ts
            )

        await self._commits.run(record)

    async def _status_emoji(
        self, ticket: Ticket, state: DeskState, transitions: list[Transition]
    ) -> None:
        shows = {desk_repo.IN_PROGRESS: self.take_emoji, desk_repo.RESOLVED: self.resolve_emoji}
        # Only emoji a status the ticket ever had could have put there.
        ever = {t.to_status for t in transitions}
        try:
            for status, emoji in shows.items():
                if status != state.status and status in ever:
                    await self._slack.remove_reaction(ticket.channel, ticket.ts, emoji)
            if state.status in shows:
                await self._slack.add_reaction(ticket.channel, ticket.ts, shows[state.status])
        except PermanentSlackError as exc:  # the ticket's message is gone
            log.warning("Ticket %s: its status emoji not set: %s", ticket.id, exc)

    # -- the background task --------------------------------------------------------------

    async def run(self) -> None:
        """Draw the changed tickets (``WORKERS`` at a time), and every ``interval`` seconds
        look for changes whose Slack side is missing (on the replica holding the lease)."""
        workers = [asyncio.create_task(self._work()) for _ in range(WORKERS)]
        try:
            while True:
                try:
                    await self._stale()
                except Exception:
                    log.warning("The desk's sync sweep failed; again later", exc_info=True)
                await self._clock.sleep(self._interval)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            self._busy += 1
            try:
                if isinstance(item, _Notice):
                    await self._in_flight.turn()
                    await self._tell(item.channel, item.user, item.text)
                    continue
                self._queued.discard(item)
                await self._sync_quietly(item)
            finally:
                self._busy -= 1
                self._settled()

    async def sweep(self, *, settle: timedelta = SETTLE) -> int:
        """The queued tickets, then the stale ones, here and now (tests; ``run`` does the
        same in the background); returns how many were synced."""
        synced = 0
        while not self._queue.empty():
            ticket_id = self._queue.get_nowait()
            if isinstance(ticket_id, _Notice):
                await self._tell(ticket_id.channel, ticket_id.user, ticket_id.text)
                continue
            self._queued.discard(ticket_id)
            synced += await self._sync_quietly(ticket_id)
        self._settled()
        return synced + await self._stale(settle)

    async def _stale(self, settle: timedelta = SETTLE) -> int:
        synced = 0
        now = self._clock.now()
        async with self._db.transaction() as conn:
            held = await leases_repo.claim_lease(
                conn,
                LEASE,
                self._owner,
                now=now,
                until=now + timedelta(seconds=max(3 * self._interval, 30.0)),
            )
            stale = await desk_repo.unsynced(conn, before=now - settle) if held else []
        for ticket_id in stale:
            synced += await self._sync_quietly(ticket_id, check=True)
        return synced

    async def _sync_quietly(self, ticket_id: int, *, check: bool = False) -> bool:
        try:
            return await self.sync(ticket_id, check=check)
        except SlackCallError:
            log.warning("Ticket %s: the desk's Slack side failed; again later", ticket_id)
        except Exception:  # the database away, a bug: the stale sweep finds it again
            log.warning("Ticket %s: the desk's Slack side failed", ticket_id, exc_info=True)
        return False

    async def release(self) -> None:
        """Hand the lease on (this process is stopping)."""
        async with self._db.transaction() as conn:
            await leases_repo.release_lease(conn, LEASE, self._owner)


_OUTCOMES = {
    desk_repo.APPLIED: DeskOutcome.APPLIED,
    desk_repo.DUPLICATE: DeskOutcome.DUPLICATE,
    desk_repo.REFUSED: DeskOutcome.REFUSED,
    desk_repo.MISSING: DeskOutcome.MISSING,
}
