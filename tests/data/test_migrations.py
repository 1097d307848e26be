from __future__ import annotations

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


async def test_migrations_on_sqlite(sqlite_url: str) -> None:
    await _check_migrations(sqlite_url)


async def test_migrations_on_postgres(postgres_url: str) -> None:
    await _check_migrations(postgres_url)
