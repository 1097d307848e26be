"""Business-hours arithmetic: weekends, nights, daylight-saving changes, and its inverse."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from classifier.business_hours import (
    OpenTimeline,
    add_open_time,
    open_time_between,
    parse_business_hours,
)
from classifier.errors import TaxonomyError

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = parse_business_hours("Mon-Fri 09:00-18:00 Europe/Berlin")


def local(*parts: int, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


def test_parses_days_times_and_zone() -> None:
    assert OFFICE.days == frozenset({0, 1, 2, 3, 4})
    assert (OFFICE.opens.hour, OFFICE.closes and OFFICE.closes.hour) == (9, 18)
    assert OFFICE.zone.key == "Europe/Berlin"
    assert parse_business_hours("Sun-Thu 08:00-16:30 Asia/Jerusalem").days == frozenset(
        {6, 0, 1, 2, 3}
    )
    assert parse_business_hours("mon,Wed,FRI 10:00-12:00 UTC").days == frozenset({0, 2, 4})
    assert parse_business_hours("Sat 00:00-24:00 UTC").closes is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Mon-Fri 09:00-18:00 Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
        ("Mon-Fri 09:00-18:00 ../../etc/passwd", "unknown time zone '../../etc/passwd'"),
        ("Mon-Fri 9 to 5", "is not business hours"),
        ("Mon-Fry 09:00-18:00 UTC", "'Mon-Fry' is not a day"),
        ("Mon-Fri 18:00-09:00 UTC", "closing time must be after opening time"),
        ("Mon-Fri 09:00-25:00 UTC", "'25:00' is not a time of day"),
        ("Mon-Fri 24:00-24:00 UTC", "opening time 24:00"),
    ],
)
def test_bad_hours_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(TaxonomyError, match=message):
        parse_business_hours(text)


def test_friday_evening_is_due_on_monday_morning() -> None:
    due = OFFICE.add(local(2026, 11, 27, 17, 30), timedelta(minutes=60))  # a Friday
    assert due == local(2026, 11, 30, 9, 30).astimezone(UTC)
    assert due.tzinfo == UTC


def test_a_weekend_or_night_ticket_starts_its_clock_at_opening() -> None:
    assert OFFICE.add(local(2026, 11, 28, 12, 0), timedelta(minutes=30)) == local(
        2026, 11, 30, 9, 30
    )
    assert OFFICE.add(local(2026, 12, 1, 7, 0), timedelta(minutes=30)) == local(2026, 12, 1, 9, 30)
    assert OFFICE.add(local(2026, 12, 1, 22, 0), timedelta(hours=10)) == local(2026, 12, 3, 10, 0)


def test_open_time_between_counts_only_open_hours() -> None:
    friday_5pm, monday_10am = local(2026, 11, 27, 17, 0), local(2026, 11, 30, 10, 0)
    assert OFFICE.between(friday_5pm, monday_10am) == timedelta(hours=2)
    assert OFFICE.between(monday_10am, friday_5pm) == timedelta(0)
    assert OFFICE.is_open(monday_10am)
    assert not OFFICE.is_open(local(2026, 11, 28, 10, 0))
    assert not OFFICE.is_open(local(2026, 11, 30, 18, 0))  # closing time is closed


def test_monday_after_spring_forward_opens_at_local_nine() -> None:
    # Berlin moves from UTC+1 to UTC+2 on Sunday 29 March 2026.
    due = OFFICE.add(local(2026, 3, 27, 17, 0), timedelta(hours=2))
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # 10:00 CEST


def test_round_the_clock_hours_run_continuously_through_both_changes() -> None:
    always = parse_business_hours("Mon-Sun 00:00-24:00 Europe/Berlin")
    spring, autumn = datetime(2026, 3, 28, 22, tzinfo=UTC), datetime(2026, 10, 24, 22, tzinfo=UTC)
    for day in (spring, autumn):
        assert always.add(day, timedelta(hours=30)) == day + timedelta(hours=30)
        assert always.between(day, day + timedelta(hours=30)) == timedelta(hours=30)


def test_a_day_with_an_extra_hour_has_it_open() -> None:
    # Sunday 25 October 2026, 01:00 CEST to 04:00 CET is four real hours.
    night = parse_business_hours("Sun 01:00-04:00 Europe/Berlin")
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    assert night.between(start, start + timedelta(hours=6)) == timedelta(hours=4)
    assert night.add(start, timedelta(hours=4)) == datetime(2026, 10, 25, 3, 0, tzinfo=UTC)


def test_another_zone_uses_its_own_dates() -> None:
    new_york = parse_business_hours("Mon-Fri 09:00-17:00 America/New_York")
    # Monday 1 a.m. in Berlin is still Sunday evening in New York.
    start = local(2026, 11, 30, 1, 0)
    assert new_york.add(start, timedelta(minutes=15)) == datetime(
        2026, 11, 30, 9, 15, tzinfo=ZoneInfo("America/New_York")
    )


@pytest.mark.parametrize(
    "text", ["Mon-Fri 09:00-18:00 Europe/Berlin", "Sun-Thu 22:00-24:00 Australia/Lord_Howe"]
)
def test_between_undoes_add(text: str) -> None:
    hours = parse_business_hours(text)
    rng = random.Random(16)
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(500):
        start = origin + timedelta(minutes=rng.randrange(0, 366 * 24 * 60))
        duration = timedelta(minutes=rng.randrange(1, 5 * 24 * 60))
        due = hours.add(start, duration)
        assert due > start
        assert hours.between(start, due) == duration
        assert hours.is_open(due - timedelta(seconds=1))


def test_without_hours_the_clock_is_the_wall_clock() -> None:
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert add_open_time(None, start, timedelta(minutes=5)) == start + timedelta(minutes=5)
    assert open_time_between(None, start, start - timedelta(hours=1)) == timedelta(0)
    assert add_open_time(OFFICE, start, timedelta(minutes=5)) == local(2026, 11, 30, 9, 5)


@pytest.mark.parametrize(
    "text", [None, "Mon-Fri 09:00-18:00 Europe/Berlin", "Sat-Sun 10:00-14:00 UTC"]
)
def test_the_timeline_agrees_with_the_calendar_walk(text: str | None) -> None:
    hours = None if text is None else parse_business_hours(text)
    span_start = datetime(2026, 3, 1, tzinfo=UTC)
    span_end = span_start + timedelta(days=60)
    timeline = OpenTimeline(hours, span_start, span_end)
    rng = random.Random(3)
    for _ in range(300):
        a = span_start + timedelta(minutes=rng.randrange(-3 * 24 * 60, 63 * 24 * 60))
        b = a + timedelta(minutes=rng.randrange(-60, 9 * 24 * 60))
        expected = open_time_between(hours, a, b).total_seconds()
        assert timeline.between(a.timestamp(), b.timestamp()) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", [None, "Mon-Fri 09:00-18:00 Europe/Berlin", "Sat-Sun 10:00-14:00 UTC"]
)
def test_the_timeline_answers_many_pairs_as_it_answers_one(text: str | None) -> None:
    hours = None if text is None else parse_business_hours(text)
    span_start = datetime(2026, 3, 1, tzinfo=UTC)
    timeline = OpenTimeline(hours, span_start, span_start + timedelta(days=60))
    rng = random.Random(5)
    starts, ends = [], []
    for _ in range(500):  # inside the span, before it, after it, and end before start
        a = span_start.timestamp() + rng.uniform(-3 * 86400, 63 * 86400)
        starts.append(a)
        ends.append(a + rng.uniform(-3600, 9 * 86400))
    many = timeline.between_many(np.array(starts), np.array(ends))
    assert many.tolist() == pytest.approx(
        [timeline.between(a, b) for a, b in zip(starts, ends, strict=True)]
    )
    assert (many > 0).sum() > 100  # the draws did test open time, not only zeros
