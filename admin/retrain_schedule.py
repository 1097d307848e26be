"""When an automatic retrain is due: after enough new corrections, sooner while the model is young.

The schedule counts corrections (standing human labels). Retrains are due when the count
reaches the next milestone after the count the last retrain saw: the young milestones (5, 10,
20 by default), then every ``every`` corrections (40, 60, 80, ...). A young model changes most
per correction, so it is rebuilt most often; later, a retrain every 20 corrections keeps the
cost at one training per 20 human answers. Once a day a retrain is also due when any correction
arrived since the last one, so a quiet team's last few corrections are not left waiting.

Counting from the last retrain *attempt* (not the last promotion) matters: a candidate the gate
refused is not retrained again on the very next correction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: The milestones of a young model, in corrections.
YOUNG_MILESTONES: tuple[int, ...] = (5, 10, 20)
#: Corrections between retrains after the young milestones.
EVERY = 20
#: A retrain is due at least this often when any correction arrived since the last one.
AT_LEAST_EVERY = timedelta(days=1)


@dataclass(frozen=True)
class RetrainSchedule:
    """The automatic-retrain policy (see the module docstring)."""

    young: tuple[int, ...] = YOUNG_MILESTONES
    every: int = EVERY
    at_least_every: timedelta | None = AT_LEAST_EVERY

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError("every must be at least 1")
        if any(b <= a for a, b in zip(self.young, self.young[1:], strict=False)):
            raise ValueError("young milestones must increase")
        if self.young and self.young[0] < 1:
            raise ValueError("young milestones must be at least 1")

    def next_milestone(self, seen: int) -> int:
        """The correction count at which the next retrain is due, after one that saw ``seen``."""
        for milestone in self.young:
            if milestone > seen:
                return milestone
        last = self.young[-1] if self.young else 0
        return last + ((seen - last) // self.every + 1) * self.every

    def due(
        self,
        corrections: int,
        *,
        seen: int,
        last_retrain_at: datetime | None = None,
        now: datetime | None = None,
    ) -> str | None:
        """Why a retrain is due now (a short phrase for the admin channel), or None.

        ``corrections``: standing corrections now; ``seen``: how many the last retrain saw
        (0 when there was none); ``last_retrain_at``/``now``: for the daily rule.
        """
        if corrections <= seen:
            return None
        milestone = self.next_milestone(seen)
        if corrections >= milestone:
            new = corrections - seen
            return f"{new} new correction{'s' if new != 1 else ''} (retrain at {milestone})"
        if (
            self.at_least_every is not None
            and last_retrain_at is not None
            and now is not None
            and now - last_retrain_at >= self.at_least_every
        ):
            new = corrections - seen
            return f"{new} correction{'s' if new != 1 else ''} waiting for a day"
        return None


#: Today's manual habit, kept for comparison in ``bench/loop.py``: every 50, no daily rule.
EVERY_50 = RetrainSchedule(young=(), every=50, at_least_every=None)
