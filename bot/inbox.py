"""Store first, place after the acknowledgement: the cheap half of a message event.

Slack's acknowledgement of a message event waits only for ``receive``: one INSERT of the raw
message into ``incoming_messages`` (``data.db.inbox``; a retried event that finds its row is a
no-op). Placing it in its conversation (opening a ticket, joining a requester's burst, adding a
follow-up: about eight statements in ``data.db.conversations``) runs right after, in this
process's background task (``run``), which deletes the row in the transaction that places the
message, so each message is placed exactly once. Then the ticket is scheduled for its
conversation's close (``bot.conversations``) or, with grouping off, queued to be routed.

An agent's reply in someone else's ticket is recorded on the desk (``TicketDesk.record_reply``:
the first response) in that same transaction, so a crash cannot place the reply and lose the
response; whether its author is an agent is asked before the transaction (it may need Slack).

Nothing acknowledged is lost: rows a stopped process left are placed by the next start
(``place_waiting``, before the bot serves) and by any live replica's sweep once they are
``STALE_SECONDS`` old; a placement that fails is tried again at the next sweep, up to
``data.db.inbox.MAX_ATTEMPTS`` times. A message is placed as of the time it was received, so a
late placement joins the conversation it would have joined on time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.conversations import ConversationCloser
from bot.desk import FirstResponse, TicketDesk
from bot.group_commit import GroupCommit
from bot.routing import TicketRouter
from bot.work_queue import TicketQueue
from classifier.examples import MAX_TEXT_CHARS
from data.clock import Clock, sleep_or_wake
from data.db import conversations as conversations_repo
from data.db import inbox as inbox_repo
from data.db import tickets as tickets_repo
from data.db.conversations import Joined, Placed
from data.db.database import Database
from data.db.inbox import Incoming

log = logging.getLogger(__name__)

#: Seconds between sweeps for messages whose placement failed or that a stopped replica left.
SWEEP_SECONDS = 10.0
#: A message another process acknowledged this long ago and did not place is placed here.
STALE_SECONDS = 30.0


@dataclass(frozen=True)
class Outcome:
    """Where a placed message went (``Placed``), the time its conversation counts from, and
    the first response recorded with it (an agent's reply in a ticket's thread)."""

    placed: Placed
    received_at: datetime
    message: Incoming
    first: FirstResponse | None = None


class Inbox:
    """See the module docstring; ``run`` is the supervised task, ``receive`` the ack path."""

    def __init__(
        self,
        db: Database,
        commits: GroupCommit,
        queue: TicketQueue,
        router: TicketRouter,
        closer: ConversationCloser,
        clock: Clock,
        *,
        window: float = 0.0,
        sweep_seconds: float = SWEEP_SECONDS,
        desk: TicketDesk | None = None,
    ) -> None:
        """``window``: TRIAGE_GROUP_SECONDS (0: each message is its own ticket, routed at
        once). ``desk``: told of other people's replies in a ticket's thread (an agent's
        first one is the first response)."""
        self._db = db
        self._commits = commits
        self._queue = queue
        self._router = router
        self._closer = closer
        self._clock = clock
        self.window = window
        self._sweep_seconds = sweep_seconds
        self._desk = desk
        self._pending: list[Incoming] = []  # received here, with their row ids
        self._placing = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def owner(self) -> str:
        """This process's name (its rows are placed here first)."""
        return self._router.owner

    # -- the acknowledgement's part -------------------------------------------------------

    async def receive(self, message: Incoming) -> bool:
        """Store ``message`` durably (one INSERT) and ring for its placement; False when it
        was waiting already (a retried event)."""

        async def store(conn: AsyncConnection) -> int | None:
            return await inbox_repo.receive(conn, message)

        stored = await self._commits.run(store, urgent=True)  # Slack waits for it
        if stored is None:
            return False
        self._pending.append(replace(message, id=stored))
        self._idle.clear()
        self._wake.set()
        return True

    # -- placing, after the acknowledgement -----------------------------------------------

    async def run(self) -> None:
        """Place what this process received as it arrives, and sweep every
        ``sweep_seconds`` for messages left behind (a task, until cancelled)."""
        next_sweep = self._clock.monotonic() + self._sweep_seconds
        while True:
            if not self._pending:
                wait = max(0.0, next_sweep - self._clock.monotonic())
                await sleep_or_wake(self._clock, wait, self._wake)
            try:
                await self._place_pending()
                if self._clock.monotonic() >= next_sweep:
                    next_sweep = self._clock.monotonic() + self._sweep_seconds
                    await self.sweep()
            except Exception:  # the rows stay; the next sweep places them
                log.warning("Could not place received messages; trying again", exc_info=True)

    async def _place_pending(self) -> None:
        while self._pending:
            messages, self._pending = self._pending, []
            self._placing += 1
            try:
                await self._place([m.id for m in messages if m.id is not None], messages)
            finally:
                self._placing -= 1
        if not self._placing:
            self._idle.set()

    async def sweep(self) -> int:
        """Place this process's messages whose placement failed, and other processes' left
        for ``STALE_SECONDS``; how many were placed."""
        stale = self._clock.now() - timedelta(seconds=STALE_SECONDS)
        async with self._db.transaction() as conn:
            ids = await inbox_repo.waiting(conn, owner=self.owner, stale_before=stale)
        return await self.place(ids)

    async def place_waiting(self) -> int:
        """Place every waiting message, whoever received it (start-up, before serving: what
        a stopped process acknowledged but did not place); how many were placed."""
        placed = 0
        while True:
            async with self._db.transaction() as conn:
                ids = await inbox_repo.waiting(conn)
            if not ids:
                break
            count = await self.place(ids)
            placed += count
            if count == 0:  # every one failed: the sweeps try again later
                break
        if placed:
            log.info("Placed %d message(s) received before the last stop", placed)
        return placed

    async def place(self, ids: list[int]) -> int:
        """Place these waiting messages (one shared transaction when they can); how many."""
        replies: list[Incoming] = []
        if self._desk is not None:  # who wrote the thread replies is asked before placing

            async def read(conn: AsyncConnection) -> list[Incoming]:
                return await inbox_repo.thread_replies(conn, ids)

            replies = await self._commits.run(read)
        return await self._place(ids, replies)

    async def _place(self, ids: list[int], received: Iterable[Incoming]) -> int:
        """``received``: these messages as they were stored (at least the thread replies)."""
        replies = {m.id: m for m in received if m.thread_ts is not None and m.id is not None}
        outcomes = await asyncio.gather(*(self._place_one(i, replies.get(i)) for i in ids))
        return sum(outcome is not None for outcome in outcomes)

    async def _place_one(self, message_id: int, reply: Incoming | None = None) -> Outcome | None:
        """``reply``: the message, when it is a thread reply. Whether its author is an agent
        is asked before the transaction that places it (the answer may need Slack, and only
        this message waits for it), which then records an agent's reply in another's ticket
        as a response (``TicketDesk.record_reply``): a crash between placing a reply and
        recording it cannot lose the first response."""
        owner, until, window = self._router.owner, self._router.lease_until(), self.window
        desk = self._desk
        agent = False
        if desk is not None and reply is not None:
            agent = await desk.is_agent(reply.user, reply.team)

        async def place(conn: AsyncConnection) -> Outcome | None:
            message = await inbox_repo.take(conn, message_id)
            if message is None:  # placed already (a sweep, another replica)
                return None
            part = conversations_repo.Message(
                message.workspace, message.channel, message.ts, message.user, message.text
            )
            now = message.received_at
            if message.thread_ts is not None:
                placed = await conversations_repo.add_follow_up(
                    conn, part, message.thread_ts, now=now, window=window, cap=MAX_TEXT_CHARS
                )
                ticket = placed.ticket
                if agent and desk and placed.outcome is Joined.NOT_REQUESTER and ticket:
                    # An agent's reply: its first one is the ticket's first response.
                    first = await desk.record_reply(conn, ticket, message.user, message.ts, at=now)
                    return Outcome(placed, now, message, first)
            else:
                new = tickets_repo.NewTicket(
                    workspace=message.workspace,
                    channel=message.channel,
                    ts=message.ts,
                    user=message.user,
                    text=message.text,
                    source=message.source,
                )
                placed = await conversations_repo.open_or_join(
                    conn,
                    part,
                    now=now,
                    window=window,
                    cap=MAX_TEXT_CHARS,
                    new=new,
                    owner=owner,
                    lease_until=until,
                )
            return Outcome(placed, now, message)

        try:
            outcome = await self._commits.run(place)
        except Exception:
            await self._failed(message_id)
            return None
        if outcome is None:
            return None
        self._placed(outcome.placed, outcome.received_at)
        if desk is not None and outcome.first is not None:
            desk.replied(outcome.first)
        return outcome

    async def _failed(self, message_id: int) -> None:
        try:
            async with self._db.transaction() as conn:
                attempts = await inbox_repo.count_failed(conn, message_id)
        except Exception:
            log.warning("Message %s: could not count its failed placement", message_id)
            return
        if attempts >= inbox_repo.MAX_ATTEMPTS:
            log.error(
                "Message %s not placed after %d attempts; it stays in incoming_messages",
                message_id,
                attempts,
                exc_info=True,
            )
        else:
            log.warning("Message %s: placing it failed; tried again later", message_id)

    def _placed(self, placed: Placed, received_at: datetime) -> None:
        """Queue or schedule the ticket a message went to."""
        ticket = placed.ticket
        match placed.outcome:
            case Joined.DUPLICATE:
                log.info("Message delivered again (Slack retry); nothing to do")
                return
            case Joined.KEPT:
                log.info("A thread reply whose thread is no ticket (yet): kept in case it is")
                return
            case Joined.NOT_REQUESTER:
                return
        assert ticket is not None
        if self.window > 0:
            self._closer.scheduled(received_at + timedelta(seconds=self.window))
        elif placed.outcome is Joined.OPENED and ticket.follow_ups == 0:
            self._router.expect(ticket)
            self._queue.submit(ticket.id)
        else:
            self._queue.submit(ticket.id)

    @property
    def pending(self) -> int:
        """Messages received here and not yet placed (or being placed)."""
        return len(self._pending) + self._placing

    async def drain(self) -> None:
        """Wait until every message received here has been placed or given up (tests,
        shutdown). Callers bound the wait with ``asyncio.timeout``."""
        while self.pending:
            self._idle.clear()
            await self._idle.wait()
