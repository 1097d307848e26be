"""Business hours: when a department's clocks run, and time arithmetic that skips the rest.

A department may say ``hours = "Mon-Fri 09:00-18:00 Europe/Berlin"``: its first-response and
resolution clocks run only inside those hours, in that time zone, so a ticket sent on Friday
evening is due on Monday morning, not on Saturday. Days are a comma-separated list of days or
ranges (``Mon-Fri``, ``Sun-Thu``, ``Mon,Wed,Fri``); the times are the same every open day, with
``24:00`` for "until midnight". Wall-clock local times are turned into instants with
``zoneinfo``: a day the clocks change keeps its local opening and closing times (so an open day
that spans the change is an hour shorter or longer in real time), a local time the change skips
is read as if the change had not happened yet, and a repeated one as its first occurrence.

Pure functions over aware datetimes; every result is UTC.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from classifier.errors import TaxonomyError

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(
    r"^\s*(?P<days>[A-Za-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})"
    r"\s+(?P<zone>\S+)\s*$"
)


@dataclass(frozen=True)
class BusinessHours:
    """Open days (0 = Monday), daily opening and closing local times, and the time zone."""

    days: frozenset[int]
    opens: time
    #: ``None`` means midnight at the end of the day ("24:00").
    closes: time | None
    zone: ZoneInfo
    #: The text it was read from, for messages and reports.
    text: str = ""

    def __post_init__(self) -> None:
        if not self.days:
            raise TaxonomyError("Business hours need at least one open day.")
        if self.closes is not None and self.closes <= self.opens:
            raise TaxonomyError(
                f"Business hours {self.text or ''!s}: closing time must be after opening time "
                "(hours that run past midnight are not supported)."
            )

    def _day_window(self, day: date) -> tuple[datetime, datetime]:
        opens = datetime.combine(day, self.opens, tzinfo=self.zone)
        if self.closes is None:
            closes = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        else:
            closes = datetime.combine(day, self.closes, tzinfo=self.zone)
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def windows(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open (from, to) intervals in UTC, in order, from the one containing or following
        ``start`` on; endless (the caller stops)."""
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        while True:
            if day.weekday() in self.days:
                opens, closes = self._day_window(day)
                if closes > start:
                    yield opens, closes
            day += timedelta(days=1)

    def is_open(self, moment: datetime) -> bool:
        """Whether the clocks run at ``moment``."""
        opens, _ = next(self.windows(moment))
        return opens <= moment

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of open time after ``start`` (UTC)."""
        if duration <= timedelta(0):
            return self.next_open(start)
        left = duration
        for opens, closes in self.windows(start):
            begin = max(opens, start)
            if begin + left <= closes:
                return (begin + left).astimezone(UTC)
            left -= closes - begin
        raise AssertionError("unreachable: windows() is endless")  # pragma: no cover

    def next_open(self, moment: datetime) -> datetime:
        """``moment`` if the clocks run then, else when they next start (UTC)."""
        opens, _ = next(self.windows(moment))
        return max(opens, moment).astimezone(UTC)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Open time from ``start`` to ``end`` (zero when ``end`` is not after ``start``)."""
        total = timedelta(0)
        if end <= start:
            return total
        for opens, closes in self.windows(start):
            if opens >= end:
                break
            total += min(closes, end) - max(opens, start)
        return total


def _parse_time(text: str, where: str) -> time | None:
    hours, minutes = (int(part) for part in text.split(":"))
    if (hours, minutes) == (24, 0):
        return None
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise TaxonomyError(f"{where}: {text!r} is not a time of day (00:00 to 24:00).")
    return time(hours, minutes)


def _parse_days(text: str, where: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        ends = part.split("-")
        try:
            indices = [_DAYS.index(end[:3].casefold()) for end in ends]
        except ValueError:
            indices = []
        if len(ends) not in (1, 2) or len(indices) != len(ends) or any(len(e) < 3 for e in ends):
            raise TaxonomyError(
                f"{where}: {part!r} is not a day or a range of days (like Mon-Fri or Sat)."
            )
        first, last = indices[0], indices[-1]
        # A range wraps past Sunday: Sun-Thu is Sunday, Monday, ... Thursday.
        span = (last - first) % 7
        days.update((first + i) % 7 for i in range(span + 1))
    return frozenset(days)


def parse_business_hours(text: str, where: str = "hours") -> BusinessHours:
    """``"Mon-Fri 09:00-18:00 Europe/Berlin"`` as BusinessHours; TaxonomyError saying what is
    wrong (an unknown time zone is named)."""
    match = _SPEC.match(text)
    if match is None:
        raise TaxonomyError(
            f"{where}: {text!r} is not business hours; write them like "
            '"Mon-Fri 09:00-18:00 Europe/Berlin" (days, opening-closing time, IANA time zone).'
        )
    zone_name = match["zone"]
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TaxonomyError(
            f"{where}: unknown time zone {zone_name!r}; use an IANA name like "
            "'Europe/Berlin' or 'America/New_York'."
        ) from None
    opens = _parse_time(match["start"], where)
    if opens is None:
        raise TaxonomyError(f"{where}: opening time 24:00 is not a time of day.")
    return BusinessHours(
        days=_parse_days(match["days"], where),
        opens=opens,
        closes=_parse_time(match["end"], where),
        zone=zone,
        text=" ".join(text.split()),
    )


class OpenTimeline:
    """Open time between any two moments of one span, for many lookups at O(log n) each.

    The figures ask "how long did the clock run for this ticket" for up to every ticket of a
    period; walking the calendar per ticket would be too slow for 100,000 tickets, so the open
    windows of the span are listed once with the open time before each. Times are epoch seconds.
    """

    def __init__(self, hours: BusinessHours | None, start: datetime, end: datetime) -> None:
        self._hours = hours
        self._opens: list[float] = []
        self._closes: list[float] = []
        self._before: list[float] = []  # open seconds from the first window to each window
        self._start, self._end = start.timestamp(), end.timestamp()
        if hours is None:
            return
        total = 0.0
        for opens, closes in hours.windows(start):
            if opens.timestamp() > self._end:
                break
            self._opens.append(opens.timestamp())
            self._closes.append(closes.timestamp())
            self._before.append(total)
            total += closes.timestamp() - opens.timestamp()

    def _cumulative(self, moment: float) -> float:
        i = bisect_right(self._opens, moment) - 1
        if i < 0:
            return 0.0
        return self._before[i] + min(moment, self._closes[i]) - self._opens[i]

    def between(self, start: float, end: float) -> float:
        """Open seconds from ``start`` to ``end`` (epoch seconds; 0 when ``end`` is earlier)."""
        if end <= start:
            return 0.0
        if self._hours is None:
            return end - start
        if start < self._start or end > self._end:  # outside the listed span: walk the calendar
            return self._hours.between(
                datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
            ).total_seconds()
        return self._cumulative(end) - self._cumulative(start)

    def between_many(
        self, starts: npt.NDArray[np.float64], ends: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """``between`` for every pair of two equal-length arrays of epoch seconds, at once.

        The same answers as ``between`` one pair at a time (a test checks it), in a few numpy
        passes: what lets ``/triage stats`` count breaches over 100,000 tickets cheaply."""
        starts = np.asarray(starts, dtype=np.float64)
        ends = np.asarray(ends, dtype=np.float64)
        if self._hours is None:
            return np.maximum(ends - starts, 0.0)
        result = np.maximum(self._cumulative_many(ends) - self._cumulative_many(starts), 0.0)
        result[ends <= starts] = 0.0
        outside = (starts < self._start) | (ends > self._end)
        for i in np.flatnonzero(outside & (ends > starts)):  # rare: walk the calendar
            result[i] = self.between(float(starts[i]), float(ends[i]))
        return result

    def _cumulative_many(self, moments: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        opens = np.asarray(self._opens, dtype=np.float64)
        if not len(opens):
            return np.zeros_like(moments)
        i = np.searchsorted(opens, moments, side="right") - 1
        safe = np.maximum(i, 0)
        closes = np.asarray(self._closes, dtype=np.float64)
        before = np.asarray(self._before, dtype=np.float64)
        value = before[safe] + np.minimum(moments, closes[safe]) - opens[safe]
        return np.where(i < 0, 0.0, value)


def add_open_time(hours: BusinessHours | None, start: datetime, duration: timedelta) -> datetime:
    """``start`` plus ``duration`` of running clock: wall time without business hours."""
    if hours is None:
        return start + duration
    return hours.add(start, duration)


def open_time_between(hours: BusinessHours | None, start: datetime, end: datetime) -> timedelta:
    """How long the clock ran from ``start`` to ``end`` (wall time without business hours)."""
    if hours is None:
        return max(end - start, timedelta(0))
    return hours.between(start, end)
