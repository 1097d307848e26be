"""The model registry: every trained model with its artefact, metrics and provenance.

Exactly one model is ``active`` at a time; activating another retires the previous one, so a
rollback is just activating an older model again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.database import utcnow
from data.db.schema import models

CANDIDATE = "candidate"
ACTIVE = "active"
RETIRED = "retired"
REJECTED = "rejected"


class ModelNotFoundError(LookupError):
    """No model with that id."""


@dataclass(frozen=True)
class StoredModel:
    """A registry entry, without its artefact bytes."""

    id: int
    model_id: str
    learner: str
    data_hash: str
    counts: dict[str, Any]
    metrics: dict[str, Any]
    status: str
    created_by: str | None
    job_id: int | None
    created_at: datetime
    activated_at: datetime | None


_COLUMNS = (
    models.c.id,
    models.c.model_id,
    models.c.learner,
    models.c.data_hash,
    models.c.counts,
    models.c.metrics,
    models.c.status,
    models.c.created_by,
    models.c.job_id,
    models.c.created_at,
    models.c.activated_at,
)


def _stored(row: Any) -> StoredModel:
    return StoredModel(
        id=row.id,
        model_id=row.model_id,
        learner=row.learner,
        data_hash=row.data_hash,
        counts=dict(row.counts),
        metrics=dict(row.metrics),
        status=row.status,
        created_by=row.created_by,
        job_id=row.job_id,
        created_at=row.created_at,
        activated_at=row.activated_at,
    )


async def save_model(
    conn: AsyncConnection,
    *,
    model_id: str,
    learner: str,
    artefact: bytes,
    data_hash: str,
    counts: dict[str, Any],
    metrics: dict[str, Any],
    created_by: str | None = None,
    job_id: int | None = None,
    status: str = CANDIDATE,
) -> int:
    """Store a model; returns its registry id. Use ``activate_model`` to make it active."""
    result = await conn.execute(
        models.insert()
        .values(
            model_id=model_id,
            learner=learner,
            artefact=artefact,
            data_hash=data_hash,
            counts=counts,
            metrics=metrics,
            status=CANDIDATE if status == ACTIVE else status,
            created_by=created_by,
            job_id=job_id,
            created_at=utcnow(),
        )
        .returning(models.c.id)
    )
    new_id = int(result.scalar_one())
    if status == ACTIVE:
        await activate_model(conn, new_id)
    return new_id


async def activate_model(conn: AsyncConnection, registry_id: int) -> StoredModel:
    """Make ``registry_id`` the one active model; the previous active one is retired."""
    target = await get_model(conn, registry_id)
    await conn.execute(
        update(models)
        .where(models.c.status == ACTIVE, models.c.id != registry_id)
        .values(status=RETIRED)
    )
    await conn.execute(
        update(models)
        .where(models.c.id == registry_id)
        .values(status=ACTIVE, activated_at=utcnow())
    )
    return target


async def set_status(conn: AsyncConnection, registry_id: int, status: str) -> None:
    """Mark a non-active model as rejected or retired."""
    await conn.execute(update(models).where(models.c.id == registry_id).values(status=status))


async def update_metrics(conn: AsyncConnection, registry_id: int, metrics: dict[str, Any]) -> None:
    """Replace a model's stored metrics (e.g. after evaluating it on a new holdout)."""
    await conn.execute(update(models).where(models.c.id == registry_id).values(metrics=metrics))


async def get_model(conn: AsyncConnection, registry_id: int) -> StoredModel:
    """The registry entry ``registry_id``; raises ModelNotFoundError."""
    row = (await conn.execute(select(*_COLUMNS).where(models.c.id == registry_id))).first()
    if row is None:
        raise ModelNotFoundError(f"No model with id {registry_id}.")
    return _stored(row)


async def get_artefact(conn: AsyncConnection, registry_id: int) -> bytes:
    """The artefact bytes of ``registry_id``; raises ModelNotFoundError."""
    data = (
        await conn.execute(select(models.c.artefact).where(models.c.id == registry_id))
    ).scalar_one_or_none()
    if data is None:
        raise ModelNotFoundError(f"No model with id {registry_id}.")
    return bytes(data)


async def get_active_model(conn: AsyncConnection) -> StoredModel | None:
    """The active model's entry, or None before the first model exists."""
    row = (await conn.execute(select(*_COLUMNS).where(models.c.status == ACTIVE))).first()
    return _stored(row) if row is not None else None


async def previous_model(conn: AsyncConnection) -> StoredModel | None:
    """The most recently retired model (what a rollback returns to), or None."""
    row = (
        await conn.execute(
            select(*_COLUMNS)
            .where(models.c.status == RETIRED, models.c.activated_at.is_not(None))
            .order_by(models.c.activated_at.desc(), models.c.id.desc())
            .limit(1)
        )
    ).first()
    return _stored(row) if row is not None else None


async def list_models(conn: AsyncConnection, limit: int = 20) -> list[StoredModel]:
    """The newest ``limit`` models, newest first."""
    rows = await conn.execute(select(*_COLUMNS).order_by(models.c.id.desc()).limit(limit))
    return [_stored(row) for row in rows]


async def count_models(conn: AsyncConnection) -> int:
    """How many models the registry holds."""
    return int((await conn.execute(select(func.count()).select_from(models))).scalar_one())


async def get_active_model_id(conn: AsyncConnection) -> int | None:
    """The active model's registry id: one indexed lookup, cheap enough to poll every second."""
    value = (
        await conn.execute(select(models.c.id).where(models.c.status == ACTIVE).limit(1))
    ).scalar_one_or_none()
    return int(value) if value is not None else None
