"""The database handle: one async engine per process, migrated on start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from data.db.engine import create_engine, migrate


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every timestamp column stores)."""
    return datetime.now(UTC)


class Database:
    """Owns the engine; hands out connections in a transaction.

    Repositories are plain async functions that take an ``AsyncConnection``, so a caller can
    group several of them in one transaction.
    """

    def __init__(self, url: str, engine: AsyncEngine | None = None) -> None:
        self.url = url
        self.engine = engine or create_engine(url)

    async def start(self) -> None:
        """Apply migrations (idempotent)."""
        await migrate(self.engine)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction that commits on success, rolls back on error."""
        async with self.engine.begin() as conn:
            yield conn

    async def ping(self) -> bool:
        """Whether the database answers (for health checks)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True
