"""Work that can wait gives way to the requests Slack is waiting on, and is never starved."""

from __future__ import annotations

import asyncio

from bot.requests_in_flight import MAX_WAIT, RequestsInFlight
from tests.fakes.clock import FakeClock


async def test_a_turn_is_at_once_when_no_request_is_in_flight() -> None:
    in_flight = RequestsInFlight(FakeClock())
    async with asyncio.timeout(5):  # the clock never moves: only an immediate turn returns
        await in_flight.turn()
    assert in_flight.count == 0


async def test_a_turn_waits_until_the_requests_in_flight_are_answered() -> None:
    in_flight = RequestsInFlight(FakeClock())
    with in_flight.serving(), in_flight.serving():
        waiting = asyncio.create_task(in_flight.turn())
        for _ in range(20):  # let it run until it waits (yields only; no time passes)
            await asyncio.sleep(0)
        assert in_flight.count == 2
        assert not waiting.done()
    async with asyncio.timeout(5):
        await waiting  # the last one answered: its turn
    assert in_flight.count == 0


async def test_a_turn_comes_after_max_wait_while_requests_keep_coming() -> None:
    clock = FakeClock()
    in_flight = RequestsInFlight(clock)
    with in_flight.serving():
        waiting = asyncio.create_task(in_flight.turn())
        await clock.advance(MAX_WAIT / 2)
        assert not waiting.done()
        await clock.advance(MAX_WAIT / 2)
        async with asyncio.timeout(5):
            await waiting  # not starved by a request that is still in flight
        assert in_flight.count == 1


async def test_an_answer_that_fails_still_counts_as_answered() -> None:
    in_flight = RequestsInFlight(FakeClock())
    try:
        with in_flight.serving():
            raise RuntimeError("the listener failed")
    except RuntimeError:
        pass
    assert in_flight.count == 0
    async with asyncio.timeout(5):
        await in_flight.turn()
