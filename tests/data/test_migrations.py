from __future__ import annotations

import asyncio
import sys

from sqlalchemy import inspect

from data.db.engine import create_engine, migrate
from data.db.schema import metadata


async def _check_migrations(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        await migrate(engine)  # a second start changes nothing
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            columns = await conn.run_sync(
                lambda c: {t: {col["name"] for col in inspect(c).get_columns(t)} for t in tables}
            )
    finally:
        await engine.dispose()
    assert tables == set(metadata.tables) | {"alembic_version"}
    for name, table in metadata.tables.items():
        assert columns[name] == {c.name for c in table.columns}, name


async def test_migrations(empty_database_url: str) -> None:
    await _check_migrations(empty_database_url)


#: A bot process's start-up migration, run when a line arrives on stdin (so all start at once).
_REPLICA = """
import asyncio, sys
from data.db.engine import create_engine, migrate

async def main() -> None:
    engine = create_engine(sys.argv[1])
    sys.stdin.readline()
    try:
        await migrate(engine)
    finally:
        await engine.dispose()

asyncio.run(main())
"""


async def _migrate_together(url: str, replicas: int) -> list[tuple[int, str]]:
    """``replicas`` processes, as separate bots would be, migrating at the same moment."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _REPLICA,
            url,
            stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(replicas)
    ]
    for process in processes:  # every one has imported and connected by the time it reads
        assert process.stdin is not None
        process.stdin.write(b"go\n")
    outcomes = []
    async with asyncio.timeout(120):
        for process in processes:
            _, stderr = await process.communicate()
            lines = [
                line
                for line in stderr.decode(errors="replace").strip().splitlines()
                if not line.startswith("(Background")
            ]
            outcomes.append((process.returncode or 0, lines[-1] if lines else ""))
    return outcomes


async def test_replicas_migrating_a_fresh_database_together_all_succeed(
    empty_database_url: str,
) -> None:
    """Defect #10.8: unserialised, some died with UniqueViolation on pg_type_typname_nsp_index."""
    assert await _migrate_together(empty_database_url, 6) == [(0, "")] * 6
    await _check_migrations(empty_database_url)
