"""The triage threshold the bot routes by: fitted on how its answers turned out (all replicas').

``TriageThreshold.value`` is what the routing policy asks per ticket; ``run`` refreshes it
every ``interval`` seconds of the runtime's clock from the recent outcomes in the database
(``classifier.calibration``). Until there are enough outcomes it is TRIAGE_CONFIDENCE_THRESHOLD.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from classifier.calibration import MIN_OUTCOMES, adaptive_threshold
from data.clock import Clock
from data.db.database import Database
from data.db.outcomes import recent_outcomes

log = logging.getLogger(__name__)

#: A ticket counts once people have had this long to correct it.
SETTLE = timedelta(hours=1)
#: Seconds between refreshes.
INTERVAL = 600.0


async def fitted_threshold(
    db: Database, clock: Clock, *, fallback: float, target: float
) -> tuple[float, int]:
    """(the threshold fitted on the recent outcomes, how many outcomes it saw)."""
    async with db.transaction() as conn:
        outcomes = await recent_outcomes(conn, settled_before=clock.now() - SETTLE)
    value = await asyncio.to_thread(adaptive_threshold, outcomes, fallback=fallback, target=target)
    return value, len(outcomes)


class TriageThreshold:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        fallback: float,
        target: float,
        interval: float = INTERVAL,
    ) -> None:
        self._db = db
        self._clock = clock
        self._fallback = fallback
        self._target = target
        self.interval = interval
        self.current = fallback

    def value(self) -> float:
        """The threshold to route by now."""
        return self.current

    async def refresh(self) -> float:
        """Fit the threshold again now; returns it."""
        value, seen = await fitted_threshold(
            self._db, self._clock, fallback=self._fallback, target=self._target
        )
        if value != self.current:
            log.info(
                "Triage threshold now %.2f (fitted on %d outcomes%s)",
                value,
                seen,
                "" if seen >= MIN_OUTCOMES else ", too few: the configured one",
            )
        self.current = value
        return value

    async def run(self) -> None:
        """Refresh every ``interval`` until cancelled (the runtime's supervisor runs this)."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("Could not fit the triage threshold", exc_info=True)
            await self._clock.sleep(self.interval)
