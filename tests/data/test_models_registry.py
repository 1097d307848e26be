from __future__ import annotations

import pytest

from data.db import model_registry as registry
from data.db.database import Database


async def _exercise(url: str) -> None:
    db = Database(url)
    await db.start()
    try:
        async with db.transaction() as conn:
            assert await registry.get_active_model(conn) is None
            first = await registry.save_model(
                conn,
                model_id="tfidf-aaa",
                learner="tfidf",
                artefact=b"one",
                data_hash="h1",
                counts={"Billing": 3},
                metrics={"macro_f1": 0.8},
                status=registry.ACTIVE,
            )
            second = await registry.save_model(
                conn,
                model_id="tfidf-bbb",
                learner="tfidf",
                artefact=b"two",
                data_hash="h2",
                counts={},
                metrics={},
                created_by="U1",
            )
        async with db.transaction() as conn:
            active = await registry.get_active_model(conn)
            assert active is not None
            assert (active.id, active.status, active.counts) == (first, "active", {"Billing": 3})
            assert (await registry.get_model(conn, second)).status == "candidate"
            await registry.activate_model(conn, second)
        async with db.transaction() as conn:
            active = await registry.get_active_model(conn)
            assert active is not None
            assert active.id == second
            assert await registry.get_artefact(conn, second) == b"two"
            previous = await registry.previous_model(conn)
            assert previous is not None
            assert previous.id == first
            assert [m.id for m in await registry.list_models(conn)] == [second, first]
            with pytest.raises(registry.ModelNotFoundError):
                await registry.get_model(conn, 999)
        assert await db.ping()
    finally:
        await db.close()


async def test_registry(database_url: str) -> None:
    await _exercise(database_url)
