"""Keeping a process's active model current without a restart.

``ActiveModelPoller`` asks the registry for the active model's id (one indexed lookup) every
few seconds and loads the artefact only when the id changed; a promotion in this process is
swapped in at once through ``swap``. Readers take ``current`` without any lock: the swap is a
single attribute assignment, so a ticket is routed by either the old or the new model, whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from classifier.model import TrainedModel
from data.db import models as registry
from data.db.database import Database

log = logging.getLogger(__name__)


class ActiveModelPoller:
    """Holds the active model and follows the registry."""

    def __init__(
        self,
        db: Database,
        load_model: Callable[[bytes], TrainedModel],
        *,
        interval_seconds: float = 3.0,
        on_change: Callable[[int, TrainedModel], None] | None = None,
    ) -> None:
        self._db = db
        self._load = load_model
        self._interval = interval_seconds
        self._on_change = on_change
        self.registry_id: int | None = None
        self.current: TrainedModel | None = None
        self._task: asyncio.Task[None] | None = None

    def swap(self, registry_id: int, model: TrainedModel) -> None:
        """Use ``model`` from now on (called after a promotion in this process)."""
        self.registry_id, self.current = registry_id, model
        if self._on_change is not None:
            self._on_change(registry_id, model)

    async def refresh(self) -> bool:
        """Load the active model if it changed; True when it did."""
        async with self._db.transaction() as conn:
            active_id = await registry.get_active_model_id(conn)
            if active_id is None or active_id == self.registry_id:
                return False
            artefact = await registry.get_artefact(conn, active_id)
        model = await asyncio.to_thread(self._load, artefact)
        self.swap(active_id, model)
        log.info("active model is now #%s (%s)", active_id, model.model_id)
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("could not refresh the active model", exc_info=True)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        """Poll in the background until ``stop``."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
