"""The classifier the bot uses right now, swappable while the bot runs.

``ActiveModel`` holds the current classifier; ``reload()`` loads whatever the model registry
marks active, ``use()`` sets one directly (the admin jobs do after promoting in this process),
and ``follow()`` (a background task of the runtime) picks up what other processes promote.
Readers call ``current()`` per ticket, so a swap takes effect on the next ticket and a ticket
being classified keeps the model it started with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.errors import ModelNotReadyError
from classifier.artifacts import load_model
from classifier.protocols import Classifier
from data.clock import Clock
from data.db import model_registry as registry
from data.db.database import Database

log = logging.getLogger(__name__)

ModelLoader = Callable[[bytes], Classifier]


class ActiveModel:
    """Holds the active classifier; see the module docstring."""

    def __init__(self, db: Database, loader: ModelLoader = load_model) -> None:
        self._db = db
        self._loader = loader
        self._classifier: Classifier | None = None
        self._registry_id: int | None = None
        self._lock = asyncio.Lock()

    def current(self) -> Classifier:
        """The classifier to use now; ModelNotReadyError before one is loaded."""
        if self._classifier is None:
            raise ModelNotReadyError("No active model is loaded yet.")
        return self._classifier

    @property
    def ready(self) -> bool:
        """Whether a classifier is loaded."""
        return self._classifier is not None

    def use(self, classifier: Classifier, registry_id: int | None = None) -> None:
        """Make ``classifier`` the active one (takes effect on the next ticket)."""
        self._classifier = classifier
        self._registry_id = registry_id
        log.info("Active model is now %s", classifier.model_id)

    async def reload(self) -> Classifier | None:
        """Load the registry's active model if it changed; returns the classifier in use."""
        async with self._lock:
            async with self._db.transaction() as conn:
                stored = await registry.get_active_model(conn)
                if stored is None:
                    return self._classifier
                if stored.id == self._registry_id and self._classifier is not None:
                    return self._classifier
                artefact = await registry.get_artefact(conn, stored.id)
            classifier = await asyncio.to_thread(self._loader, artefact)
            self.use(classifier, stored.id)
            return classifier

    async def refresh(self) -> bool:
        """Load the registry's active model if another process changed it (one indexed id
        lookup when it did not); True when it did."""
        async with self._db.transaction() as conn:
            active_id = await registry.get_active_model_id(conn)
        if active_id is None or active_id == self._registry_id:
            return False
        await self.reload()
        return True

    async def follow(self, clock: Clock, interval: float) -> None:
        """Refresh every ``interval`` seconds on ``clock`` until cancelled (the runtime's
        supervisor runs this, so a promotion or rollback anywhere reaches this process)."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("Could not follow the registry's active model", exc_info=True)
            await clock.sleep(interval)

    def status(self) -> dict[str, Any]:
        """For the health check: whether a model is loaded and which."""
        if self._classifier is None:
            return {"ready": False}
        return {
            "ready": True,
            "model_id": self._classifier.model_id,
            "registry_id": self._registry_id,
        }
