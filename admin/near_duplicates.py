"""The bot's memory of recent corrections, kept in step with the database (all replicas').

``CorrectionMemory.nearest`` answers "is this ticket a near-duplicate of a recently corrected
one?" for the router. Before answering it brings its index up to date when it is older than
``refresh_seconds`` or was told a correction changed (``changed``): it reads only the rows
changed since its last look, and forgets tickets whose correction was undone. The index's
features follow the active model: sentence embeddings next to the embedding learner, hashed
character n-grams otherwise (``classifier.near_duplicates``).

Next to sentence embeddings it also keeps the team's confirmed tickets (routed to a
department, not in ``exclude_channels``, nobody corrected them within ``confirm_after``), read
as they come of age, and ``voted`` blends a prediction with the vote of the most similar
labelled team tickets (``classifier.near_duplicates.blended``). A confirmed ticket corrected
later becomes a correction in the index; one whose card was removed later still votes until
the bot restarts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from classifier.near_duplicates import (
    CAPACITY,
    EMBEDDING_THRESHOLD,
    EMBEDDING_YOUNG_THRESHOLD,
    NGRAM_THRESHOLD,
    NGRAM_YOUNG_THRESHOLD,
    VOTE_FULL_AT,
    CorrectedTicket,
    NearDuplicate,
    NearDuplicateIndex,
    blended,
    embedding_vectors,
    ngram_vectors,
    vote_weight_for,
)
from classifier.protocols import Prediction
from data.db.database import Database, utcnow
from data.db.recent_corrections import changed_since, standing_ticket_ids
from data.db.training_set import confirmed_examples

log = logging.getLogger(__name__)

#: A replica sees another replica's corrections within this many seconds.
REFRESH_SECONDS = 5.0
#: Each look re-reads the rows changed this long before the newest one seen, so a row whose
#: transaction committed late is not missed (rows already indexed unchanged cost nothing).
OVERLAP = timedelta(seconds=30)


def features_for(
    learner: str,
) -> tuple[Callable[[Sequence[str]], Any], float, float]:
    """The near-duplicate features and thresholds (grown-up, young) that go with the active
    model's learner."""
    if learner == "embedding":
        return embedding_vectors, EMBEDDING_THRESHOLD, EMBEDDING_YOUNG_THRESHOLD
    return ngram_vectors, NGRAM_THRESHOLD, NGRAM_YOUNG_THRESHOLD


class CorrectionMemory:
    """Recent corrections as a near-duplicate index (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        learner: Callable[[], str],
        *,
        capacity: int = CAPACITY,
        refresh_seconds: float = REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        threshold: float | None = None,
        confirm_after: timedelta | None = None,
        exclude_channels: Sequence[str] = (),
        now: Callable[[], datetime] = utcnow,
        vote_weight: float | None = None,
        vote_full_at: int | None = None,
    ) -> None:
        """``confirm_after``: when an uncorrected routed ticket counts as confirmed (None: never,
        and only corrections vote); ``vote_weight``: the vote's share (None: the learner's,
        ``vote_weight_for``), in full once ``vote_full_at`` (None: ``VOTE_FULL_AT``) labelled
        tickets are indexed."""
        self._db = db
        self._learner = learner
        self._capacity = capacity
        self._refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._threshold = threshold
        self._features = ""
        self._index: NearDuplicateIndex | None = None
        self._since: datetime | None = None
        self._checked_at: float | None = None
        self._confirm_after = confirm_after
        self._exclude_channels = tuple(exclude_channels)
        self._now = now
        self._vote_weight = vote_weight
        self._vote_full_at = vote_full_at
        self._confirmed_until: datetime | None = None
        self._lock = asyncio.Lock()

    @property
    def vote_weight(self) -> float:
        """The team's vote's share of a blended prediction with the current features."""
        if self._vote_weight is not None:
            return self._vote_weight
        return vote_weight_for(self._features or self._learner())

    def changed(self) -> None:
        """A correction was made or undone here: look again before the next ticket."""
        self._checked_at = None

    async def refresh(self) -> None:
        """Bring the index up to date with the database now."""
        features = self._learner()
        if self._index is None or features != self._features:
            vectorise, threshold, young = features_for(features)
            self._index = NearDuplicateIndex(
                vectorise,
                threshold=self._threshold or threshold,
                young_threshold=None if self._threshold else young,
                capacity=self._capacity,
            )
            self._features, self._since, self._confirmed_until = features, None, None
        index = self._index
        confirmed = []
        async with self._db.transaction() as conn:
            since = self._since - OVERLAP if self._since is not None else None
            changed = await changed_since(conn, since, self._capacity)
            known = index.ticket_ids()
            standing = await standing_ticket_ids(conn, known)
            if self._confirm_after is not None and self.vote_weight > 0.0:
                before = self._now() - self._confirm_after
                after = self._confirmed_until - OVERLAP if self._confirmed_until else None
                confirmed = await confirmed_examples(
                    conn,
                    before=before,
                    after=after,
                    exclude_channels=self._exclude_channels,
                    limit=self._capacity,
                )
                self._confirmed_until = before
        for ticket_id in set(known) - standing:
            index.remove(ticket_id)
        corrected = set(index.ticket_ids())
        fresh = [
            CorrectedTicket(e.ticket_id, e.text, e.label, "", confirmed=True)
            for e in confirmed
            if e.ticket_id is not None and e.ticket_id not in corrected
        ]
        if fresh:
            await asyncio.to_thread(index.add, fresh)
        if changed:
            await asyncio.to_thread(
                index.add,
                [CorrectedTicket(c.ticket_id, c.text, c.label, c.corrected_by) for c in changed],
            )
            self._since = changed[-1].updated_at
        self._checked_at = self._monotonic()

    async def _fresh(self) -> None:
        async with self._lock:
            now = self._monotonic()
            fresh = self._checked_at is not None and now - self._checked_at < self._refresh_seconds
            if not fresh or self._learner() != self._features:
                await self.refresh()

    async def voted(
        self, text: str, prediction: Prediction, *, exclude: int | None = None
    ) -> Prediction:
        """``prediction`` blended with the vote of the team's labelled tickets most like
        ``text`` (unchanged when the vote is off or nothing is indexed)."""
        await self._fresh()
        index, weight = self._index, self.vote_weight
        if index is None or weight <= 0.0:
            return prediction
        (vote,) = await asyncio.to_thread(index.vote, [text], exclude=[exclude])
        full_at = self._vote_full_at or VOTE_FULL_AT
        return blended(prediction, vote, index.vote_weight(weight, full_at))

    async def nearest(self, text: str, *, exclude: int | None = None) -> NearDuplicate | None:
        """The recent correction ``text`` is a near-duplicate of, or None."""
        await self._fresh()
        index = self._index
        if index is None or not len(index):
            return None
        (found,) = await asyncio.to_thread(index.nearest, [text], exclude=[exclude])
        return found
