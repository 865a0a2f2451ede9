"""Storage helpers against SQLite and a real PostgreSQL: engines, transactions, migrations."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
import sqlalchemy as sa

from chassis import db

counter = sa.Table(
    "counter",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

MIGRATIONS = {
    "ledger": pathlib.Path("ledger_svc/migrations"),
    "vault": pathlib.Path("vault_svc/migrations"),
    "provider": pathlib.Path("provider_sim/migrations"),
    "payments": pathlib.Path("payments_svc/migrations"),
}


async def test_url_mapping_picks_async_drivers() -> None:
    assert db.async_url("sqlite:///var/x.db").drivername == "sqlite+aiosqlite"
    assert db.async_url("postgresql://u@h/d").drivername == "postgresql+asyncpg"
    assert db.sync_url("sqlite+aiosqlite:///var/x.db") == "sqlite:///var/x.db"


async def test_transactions_commit_roll_back_and_never_lose_updates(database_url: str) -> None:
    engine = db.create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(counter.metadata.create_all)
            await connection.execute(counter.insert().values(id=1, value=0))
        with pytest.raises(RuntimeError):
            async with db.transaction(engine) as connection:
                await connection.execute(counter.update().values(value=999))
                raise RuntimeError("roll back")

        async def increment() -> None:
            async with db.transaction(engine) as connection:
                if engine.dialect.name == "postgresql":
                    row = (
                        await connection.execute(
                            sa.select(counter.c.value).where(counter.c.id == 1).with_for_update()
                        )
                    ).one()
                else:
                    row = (
                        await connection.execute(sa.select(counter.c.value).where(counter.c.id == 1))
                    ).one()
                await asyncio.sleep(0)  # let the other writers run between read and write
                await connection.execute(counter.update().values(value=row.value + 1))

        await asyncio.gather(*(increment() for _ in range(40)))
        async with engine.connect() as connection:
            value = (await connection.execute(sa.select(counter.c.value))).scalar_one()
        assert value == 40
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", sorted(MIGRATIONS))
async def test_each_service_migrates_to_head(database_url: str, service: str) -> None:
    await db.migrate(MIGRATIONS[service], database_url)
    engine = db.create_engine(database_url)
    try:
        async with engine.connect() as connection:
            version = (
                await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).scalar_one()
        assert version
        # Running again is a no-op.
        await db.migrate(MIGRATIONS[service], database_url)
    finally:
        await engine.dispose()
