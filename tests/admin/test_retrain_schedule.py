"""The automatic-retrain schedule: young milestones, then every N, and the daily rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from admin.retrain_schedule import EVERY_50, RetrainSchedule

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_a_young_model_is_retrained_after_5_10_20_then_every_20() -> None:
    schedule = RetrainSchedule()
    seen, retrained_at = 0, []
    for corrections in range(1, 101):
        if schedule.due(corrections, seen=seen):
            retrained_at.append(corrections)
            seen = corrections
    assert retrained_at == [5, 10, 20, 40, 60, 80, 100]


def test_the_count_is_from_the_last_retrain_not_the_last_promotion() -> None:
    schedule = RetrainSchedule()
    # A retrain at 40 that the gate refused still moves the next one to 60.
    assert schedule.due(41, seen=40) is None
    assert schedule.due(59, seen=40) is None
    assert schedule.due(60, seen=40) == "20 new corrections (retrain at 60)"
    # A retrain that ran late (at 47) is followed by the next milestone, not 47 + 20.
    assert schedule.next_milestone(47) == 60


def test_waiting_corrections_are_retrained_after_a_day() -> None:
    schedule = RetrainSchedule()
    assert schedule.due(3, seen=0, last_retrain_at=T0, now=T0 + timedelta(hours=23)) is None
    assert (
        schedule.due(3, seen=0, last_retrain_at=T0, now=T0 + timedelta(days=1))
        == "3 corrections waiting for a day"
    )
    # Nothing new since the last retrain: never due, however long ago it was.
    assert schedule.due(7, seen=7, last_retrain_at=T0, now=T0 + timedelta(days=30)) is None


def test_todays_habit_is_every_50_and_never_daily() -> None:
    due = [c for c in range(1, 151) if EVERY_50.due(c, seen=(c - 1) // 50 * 50)]
    assert due == [50, 100, 150]
    assert EVERY_50.due(3, seen=0, last_retrain_at=T0, now=T0 + timedelta(days=9)) is None


def test_a_schedule_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="every"):
        RetrainSchedule(every=0)
    with pytest.raises(ValueError, match="increase"):
        RetrainSchedule(young=(10, 5))
