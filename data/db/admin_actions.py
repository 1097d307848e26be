"""The audit log of admin actions: who did what, when, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.database import utcnow
from data.db.schema import admin_actions


@dataclass(frozen=True)
class AdminAction:
    """One recorded admin action."""

    id: int
    user: str
    action: str
    detail: dict[str, Any]
    outcome: str
    created_at: datetime


async def record_action(
    conn: AsyncConnection, *, user: str, action: str, outcome: str, detail: dict[str, Any]
) -> int:
    """Append an entry (``outcome`` e.g. started, refused, conflict, done, failed)."""
    result = await conn.execute(
        admin_actions.insert()
        .values(user=user, action=action, detail=detail, outcome=outcome, created_at=utcnow())
        .returning(admin_actions.c.id)
    )
    return int(result.scalar_one())


async def list_actions(conn: AsyncConnection, limit: int = 20) -> list[AdminAction]:
    """The newest ``limit`` entries, newest first."""
    rows = await conn.execute(
        select(admin_actions).order_by(admin_actions.c.id.desc()).limit(limit)
    )
    return [
        AdminAction(
            id=row.id,
            user=row.user,
            action=row.action,
            detail=dict(row.detail),
            outcome=row.outcome,
            created_at=row.created_at,
        )
        for row in rows
    ]
