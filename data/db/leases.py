"""Named leases: which process runs a piece of background work that must run on one replica.

A lease is a row (``name``, ``owner``, ``until``). ``claim_lease`` takes it when it is free,
expired or already the caller's, in one conditional UPDATE (or the INSERT of a first claim,
where the primary key lets only one process win), so two replicas never both hold it. The
holder renews it by claiming again before ``until``; a process that dies simply stops renewing
and another takes over when the lease runs out. ``release_lease`` hands it on at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from data.db.schema import leases


async def claim_lease(
    conn: AsyncConnection, name: str, owner: str, *, now: datetime, until: datetime
) -> bool:
    """Take or renew lease ``name`` for ``owner`` until ``until``; False if another holds it."""
    taken = await conn.execute(
        update(leases)
        .where(
            leases.c.name == name,
            or_(leases.c.owner == owner, leases.c.until < now),
        )
        .values(owner=owner, until=until)
    )
    if taken.rowcount:
        return True
    # The first claim ever: of processes inserting at once the primary key lets one win.
    created = await conn.execute(
        _insert_new(conn.dialect.name).values(name=name, owner=owner, until=until)
    )
    return bool(created.rowcount)


def _insert_new(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(leases).on_conflict_do_nothing(index_elements=["name"])
    if dialect == "sqlite":
        return sqlite.insert(leases).on_conflict_do_nothing(index_elements=["name"])
    return insert(leases)  # pragma: no cover - only SQLite and PostgreSQL run


async def release_lease(conn: AsyncConnection, name: str, owner: str) -> None:
    """Give up ``owner``'s lease ``name`` (another process may take it at once)."""
    await conn.execute(
        update(leases)
        .where(leases.c.name == name, leases.c.owner == owner)
        .values(until=datetime(1970, 1, 1, tzinfo=UTC))
    )
