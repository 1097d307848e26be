"""The desk repository (status, owner, first response, transitions), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from data.db import desk
from data.db import tickets as tickets_repo
from data.db.database import Database
from data.db.schema import tickets

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database of each kind (``database_url``)."""
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


async def _routed(db: Database, ts: str = "100.000001", department: str = "Billing") -> int:
    new = tickets_repo.NewTicket(workspace="T1", channel="C1", ts=ts, user="UREQ", text="help")
    async with db.transaction() as conn:
        ticket, _ = await tickets_repo.store_ticket(conn, new)
        change = await desk.open_ticket(conn, ticket.id, department, opened_at=T0, at=T0)
    assert change.applied
    return ticket.id


async def test_a_ticket_goes_open_taken_resolved_reopened_with_every_transition(
    db: Database,
) -> None:
    ticket_id = await _routed(db)
    async with db.transaction() as conn:
        taken = await desk.take(conn, ticket_id, "UBOB", at=T0 + MINUTE, source=desk.BUTTON)
        resolved = await desk.resolve(
            conn, ticket_id, "UBOB", at=T0 + 5 * MINUTE, source=desk.REACTION
        )
        reopened = await desk.reopen(conn, ticket_id, "UANN", at=T0 + 9 * MINUTE, source="button")
        history = await desk.transitions_for(conn, ticket_id)
    assert taken.applied
    assert taken.state is not None
    assert (taken.state.status, taken.state.assignee) == (desk.IN_PROGRESS, "UBOB")
    assert taken.state.taken_at == T0 + MINUTE
    assert resolved.state is not None
    assert resolved.state.resolved_at == T0 + 5 * MINUTE
    assert reopened.state is not None
    assert (reopened.state.status, reopened.state.assignee) == (desk.IN_PROGRESS, "UBOB")
    assert reopened.state.resolved_at is None
    assert [(t.from_status, t.to_status, t.actor, t.source, t.at) for t in history] == [
        (None, "open", "bot", "route", T0),
        ("open", "in_progress", "UBOB", "button", T0 + MINUTE),
        ("in_progress", "resolved", "UBOB", "reaction", T0 + 5 * MINUTE),
        ("resolved", "in_progress", "UANN", "button", T0 + 9 * MINUTE),
    ]


async def test_entering_the_desk_twice_keeps_the_owner(db: Database) -> None:
    ticket_id = await _routed(db)
    async with db.transaction() as conn:
        await desk.take(conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON)
        again = await desk.open_ticket(conn, ticket_id, "Billing", opened_at=T0, at=T0 + MINUTE)
        await desk.set_permalink(conn, ticket_id, "https://x.slack.com/archives/C1/p1")
        linked = await desk.get_state(conn, ticket_id)
    assert linked is not None
    assert linked.permalink == "https://x.slack.com/archives/C1/p1"
    assert again.outcome == desk.DUPLICATE
    assert again.state is not None
    assert again.state.assignee == "UBOB"


async def test_the_second_taker_is_refused_and_told_who_has_it(db: Database) -> None:
    ticket_id = await _routed(db)
    async with db.transaction() as conn:
        first = await desk.take(conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON)
        second = await desk.take(conn, ticket_id, "UANN", at=T0, source=desk.BUTTON)
        mine = await desk.take(conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON)
    assert first.applied
    assert (second.outcome, second.reason) == (desk.REFUSED, desk.TAKEN)
    assert second.state is not None
    assert second.state.assignee == "UBOB"
    assert (mine.outcome, mine.reason) == (desk.REFUSED, desk.ALREADY_YOURS)


async def test_concurrent_takes_on_separate_connections_have_one_winner(db: Database) -> None:
    ticket_ids = [await _routed(db, ts=f"100.{n:06d}") for n in range(10)]

    async def take(ticket_id: int, agent: str) -> desk.DeskChange:
        async with db.transaction() as conn:
            return await desk.take(conn, ticket_id, agent, at=T0, source=desk.BUTTON)

    for ticket_id in ticket_ids:
        changes = await asyncio.gather(take(ticket_id, "UBOB"), take(ticket_id, "UANN"))
        winners = [c for c in changes if c.applied]
        losers = [c for c in changes if not c.applied]
        assert len(winners) == 1
        assert len(losers) == 1
        assert winners[0].state is not None
        assert losers[0].state is not None
        assert losers[0].reason == desk.TAKEN
        assert losers[0].state.assignee == winners[0].state.assignee
        async with db.transaction() as conn:
            assert len(await desk.transitions_for(conn, ticket_id)) == 2


async def test_a_request_seen_again_changes_nothing(db: Database) -> None:
    ticket_id = await _routed(db)
    async with db.transaction() as conn:
        first = await desk.resolve(
            conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON, request_key="press-1"
        )
        await desk.reopen(conn, ticket_id, "UBOB", at=T0 + MINUTE, source=desk.BUTTON)
        again = await desk.resolve(
            conn, ticket_id, "UBOB", at=T0 + 2 * MINUTE, source=desk.BUTTON, request_key="press-1"
        )
        state = await desk.get_state(conn, ticket_id)
    assert first.applied
    assert again.outcome == desk.DUPLICATE
    assert state is not None
    assert state.status == desk.IN_PROGRESS


async def test_one_key_racing_itself_is_refused_by_the_database(db: Database) -> None:
    first_id = await _routed(db, ts="1.1")
    second_id = await _routed(db, ts="1.2")
    async with db.transaction() as conn:
        await desk.take(conn, first_id, "UBOB", at=T0, source=desk.BUTTON, request_key="k")
    async with db.transaction() as conn:
        state = await desk.get_state(conn, second_id)
    assert state is not None
    # What a concurrent twin that passed the key check would do next.
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await desk._record(conn, None, state, actor="UBOB", source="button", key="k", at=T0)


async def test_resolving_from_a_card_of_another_department_is_refused_as_moved(
    db: Database,
) -> None:
    ticket_id = await _routed(db, department="Billing")
    async with db.transaction() as conn:
        await desk.change_department(conn, ticket_id, "Technical", keep=None, actor="UANN", at=T0)
        stale = await desk.resolve(
            conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON, department="Billing"
        )
        fresh = await desk.resolve(
            conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON, department="Technical"
        )
    assert (stale.outcome, stale.reason) == (desk.REFUSED, desk.MOVED)
    assert fresh.applied
    assert fresh.state is not None
    assert (fresh.state.status, fresh.state.assignee) == (desk.RESOLVED, "UBOB")


async def test_a_correction_keeps_or_drops_the_owner_as_told(db: Database) -> None:
    kept_id = await _routed(db, ts="1.1")
    dropped_id = await _routed(db, ts="1.2")
    async with db.transaction() as conn:
        for ticket_id in (kept_id, dropped_id):
            await desk.take(conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON)
        kept = await desk.change_department(
            conn, kept_id, "Account", keep="UBOB", actor="UANN", at=T0 + MINUTE
        )
        dropped = await desk.change_department(
            conn, dropped_id, "Account", keep=None, actor="UANN", at=T0 + MINUTE
        )
        last = (await desk.transitions_for(conn, dropped_id))[-1]
    assert kept.state is not None
    assert dropped.state is not None
    assert (kept.state.status, kept.state.assignee) == (desk.IN_PROGRESS, "UBOB")
    assert (dropped.state.status, dropped.state.assignee) == (desk.OPEN, None)
    assert dropped.state.department == "Account"
    assert (last.from_status, last.to_status, last.source, last.department) == (
        "in_progress",
        "open",
        "correction",
        "Account",
    )


async def test_the_first_reply_is_the_first_response_and_takes_an_open_ticket(
    db: Database,
) -> None:
    open_id = await _routed(db, ts="1.1")
    owned_id = await _routed(db, ts="1.2")
    async with db.transaction() as conn:
        await desk.take(conn, owned_id, "UANN", at=T0, source=desk.BUTTON)
        replied = await desk.record_first_response(conn, open_id, "UBOB", at=T0 + 3 * MINUTE)
        second = await desk.record_first_response(conn, open_id, "UANN", at=T0 + 4 * MINUTE)
        other = await desk.record_first_response(conn, owned_id, "UBOB", at=T0 + 5 * MINUTE)
    assert replied.state is not None
    assert replied.transition is not None
    assert (replied.state.status, replied.state.assignee) == (desk.IN_PROGRESS, "UBOB")
    assert replied.state.first_response_at == T0 + 3 * MINUTE
    assert replied.transition.source == desk.REPLY
    assert (second.outcome, second.reason) == (desk.REFUSED, desk.ALREADY_ANSWERED)
    assert other.applied
    assert other.transition is None
    assert other.state is not None
    assert (other.state.assignee, other.state.first_responder) == ("UANN", "UBOB")


async def test_a_deleted_ticket_is_missing_from_the_desk(db: Database) -> None:
    ticket_id = await _routed(db)
    async with db.transaction() as conn:
        await conn.execute(delete(tickets).where(tickets.c.id == ticket_id))
    async with db.transaction() as conn:
        change = await desk.take(conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON)
        assert await desk.transitions_for(conn, ticket_id) == []
    assert (change.outcome, change.state) == (desk.MISSING, None)


async def test_my_tickets_are_the_ones_i_own_oldest_first(db: Database) -> None:
    ids = [await _routed(db, ts=f"2.{n}") for n in range(3)]
    async with db.transaction() as conn:
        for ticket_id in reversed(ids):
            await desk.take(conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON)
        await desk.resolve(conn, ids[1], "UBOB", at=T0, source=desk.BUTTON)
        mine = await desk.tickets_of(conn, "UBOB")
        states = await desk.states_for(conn, [*ids, 999])
    assert [s.ticket_id for s in mine] == [ids[0], ids[2]]
    assert set(states) == set(ids)


async def test_a_withdrawn_ticket_leaves_the_desk_with_a_transition_and_can_enter_again(
    db: Database,
) -> None:
    ticket_id = await _routed(db)
    async with db.transaction() as conn:
        await desk.take(conn, ticket_id, "UBOB", at=T0, source=desk.BUTTON)
        gone = await desk.withdraw(conn, ticket_id, actor=desk.BOT, at=T0 + MINUTE)
        twice = await desk.withdraw(conn, ticket_id, actor=desk.BOT, at=T0 + MINUTE)
        mine = await desk.tickets_of(conn, "UBOB")
        assert await desk.get_state(conn, ticket_id) is None
        back = await desk.open_ticket(conn, ticket_id, "Billing", opened_at=T0, at=T0 + 2 * MINUTE)
        history = await desk.transitions_for(conn, ticket_id)
    assert gone.applied
    assert twice.outcome == desk.MISSING
    assert mine == []
    assert back.applied
    assert back.state is not None
    assert (back.state.status, back.state.assignee) == (desk.OPEN, None)
    assert [(t.from_status, t.to_status, t.source) for t in history] == [
        (None, "open", "route"),
        ("open", "in_progress", "button"),
        ("in_progress", "withdrawn", "withdraw"),
        (None, "open", "route"),
    ]


async def test_unsynced_names_changes_slack_does_not_show_yet(db: Database) -> None:
    ticket_id = await _routed(db)
    later = T0 + 10 * MINUTE
    async with db.transaction() as conn:
        assert await desk.unsynced(conn, before=later) == [ticket_id]  # never drawn
        state = await desk.get_state(conn, ticket_id)
        assert state is not None
        assert await desk.mark_synced(conn, ticket_id, state.version)
        assert await desk.unsynced(conn, before=later) == []
        taken = await desk.take(conn, ticket_id, "UBOB", at=T0 + MINUTE, source=desk.BUTTON)
        assert taken.state is not None
        assert not await desk.mark_synced(conn, ticket_id, state.version)  # it moved on
        assert await desk.unsynced(conn, before=T0) == []  # too recent: its maker syncs it
        assert await desk.unsynced(conn, before=later) == [ticket_id]
        assert await desk.mark_synced(conn, ticket_id, taken.state.version)
        assert await desk.unsynced(conn, before=later) == []
        # A change nothing in Slack shows stays in line only if the version before was shown.
        answered = await desk.record_first_response(conn, ticket_id, "UBOB", at=T0 + MINUTE)
        assert answered.state is not None
        version = answered.state.version
        assert not await desk.mark_synced(conn, ticket_id, version, was=version - 2)
        assert await desk.mark_synced(conn, ticket_id, version, was=version - 1)
        assert await desk.unsynced(conn, before=later) == []
