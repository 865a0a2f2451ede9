"""Async SQLAlchemy engines chosen by URL, transactions, and Alembic migrations per service.

SQLite (aiosqlite) is the embedded default: WAL journal, a busy timeout, and `BEGIN IMMEDIATE`
for every transaction so that writers queue for the lock instead of failing on upgrade.
PostgreSQL uses asyncpg. Plain `sqlite:///…` and `postgresql://…` URLs are accepted and mapped
to the async drivers.
"""

from __future__ import annotations

import asyncio
import collections
import pathlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
POOL_SIZE = 10


def async_url(url: str) -> URL:
    """Map a database URL to its async driver (aiosqlite / asyncpg)."""
    parsed = make_url(url)
    if parsed.drivername in {"sqlite", "sqlite+pysqlite"}:
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed


def sync_url(url: str) -> str:
    """The same database for synchronous tools (Alembic's offline mode, scripts)."""
    parsed = async_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    """True for the embedded SQLite default."""
    return engine.dialect.name == "sqlite"


def create_engine(url: str, *, echo: bool = False, instrument: bool = True) -> AsyncEngine:
    """An AsyncEngine for `url`, configured for its backend and traced."""
    parsed = async_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.drivername.startswith("sqlite"):
        database = parsed.database or ""
        if database and database != ":memory:":
            pathlib.Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        kwargs["pool_reset_on_return"] = None  # reset by _configure_sqlite's "reset" listener
    else:
        kwargs.update(pool_size=POOL_SIZE, max_overflow=POOL_SIZE, pool_pre_ping=True)
    engine = create_async_engine(parsed, **kwargs)
    if parsed.drivername.startswith("sqlite"):
        _configure_sqlite(engine)
    if instrument:
        SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN would be
        # DEFERRED, which fails with "database is locked" when a reader upgrades to a writer).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def _begin_immediate(pooled_connection: Any) -> None:
        # The dialect's BEGIN hook (pysqlite's own is a no-op): one trip to the connection's
        # thread, without a statement's machinery or span (the lock wait still shows as the
        # gap before the transaction's first statement). SQLAlchemy wraps its errors as for any
        # statement. Other adapters (not aiosqlite) issue it as a statement.
        adapter = pooled_connection.dbapi_connection
        connection: Any = getattr(adapter, "_connection", None)
        submit = getattr(connection, "_execute", None)
        if submit is None:
            cursor = pooled_connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            finally:
                cursor.close()
            return

        def run() -> None:
            connection._conn.execute("BEGIN IMMEDIATE").close()

        try:
            adapter.await_(submit(run))
        except Exception as error:
            adapter._handle_exception(error)

    engine.sync_engine.dialect.do_begin = _begin_immediate  # type: ignore[method-assign,assignment]

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, reset_state: Any) -> None:
        # The pool's reset on return, with `pool_reset_on_return=None` (SQLAlchemy's documented
        # custom reset scheme): roll back only when SQLite still has a transaction open. After a
        # commit (every `transaction()` block) there is none, and the unconditional ROLLBACK cost
        # one more thread hop per transaction for nothing.
        if reset_state.transaction_was_reset:
            return
        connection: Any = getattr(dbapi_connection, "_connection", None)
        raw = getattr(connection, "_conn", None)
        if raw is not None and not raw.in_transaction:
            return
        dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "do_execute")
    def _on_execute(cursor: Any, statement: str, parameters: Any, _context: Any) -> bool:
        return _execute_in_one_hop(cursor, statement, parameters)

    @event.listens_for(engine.sync_engine, "do_execute_no_params")
    def _on_execute_no_params(cursor: Any, statement: str, _context: Any) -> bool:
        return _execute_in_one_hop(cursor, statement, None)


# aiosqlite runs every call on the connection's own thread, and SQLAlchemy's adapter makes four
# round trips per statement (create cursor, execute, fetch all, close) — each a queue hand-off,
# a thread wake-up, a loop wake-up and two GIL hand-overs. Profiling the services under load
# showed those hops as the largest single cost. One function run on the connection's thread
# does the four steps in one trip; the adapter's cursor then serves the rows exactly as it
# would have. It relies on aiosqlite's `_execute`/`_conn` (pinned in requirements.lock); if they
# are missing, the adapter's own path runs.
def _execute_in_one_hop(cursor: Any, statement: str, parameters: Any) -> bool:
    adapter = getattr(cursor, "_adapt_connection", None)
    connection: Any = getattr(adapter, "_connection", None)
    submit = getattr(connection, "_execute", None)
    if adapter is None or submit is None or getattr(cursor, "server_side", False):
        return False  # not the aiosqlite adapter we know: let SQLAlchemy call cursor.execute

    def run() -> tuple[Any, list[Any] | None, int | None, int]:
        raw = connection._conn.cursor()
        try:
            if parameters is None:
                raw.execute(statement)
            else:
                raw.execute(statement, parameters)
            description = raw.description
            rows = raw.fetchall() if description else None
            return description, rows, raw.lastrowid, raw.rowcount
        finally:
            raw.close()

    try:
        description, rows, lastrowid, rowcount = adapter.await_(submit(run))
    except Exception as error:
        adapter._handle_exception(error)
    # The same cursor state as AsyncAdapt_aiosqlite_cursor.execute leaves behind.
    if description:
        cursor.description = description
        cursor.lastrowid = cursor.rowcount = -1
        cursor._rows = collections.deque(rows or ())
    else:
        cursor.description = None
        cursor.lastrowid = lastrowid
        cursor.rowcount = rowcount
    return True


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside one transaction, committed on success, rolled back on error."""
    async with engine.begin() as connection:
        yield connection


def alembic_config(script_location: pathlib.Path, url: str) -> Config:
    """Alembic configuration for one service's migration folder and database."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", async_url(url).render_as_string(hide_password=False))
    return config


def _upgrade(script_location: pathlib.Path, url: str, revision: str) -> None:
    command.upgrade(alembic_config(script_location, url), revision)


async def migrate(script_location: pathlib.Path, url: str, revision: str = "head") -> None:
    """Run the service's Alembic migrations up to `revision` (in a worker thread)."""
    await asyncio.to_thread(_upgrade, script_location, url, revision)


def run_migrations_in_env(target_metadata: Any) -> None:
    """Body of every service's `migrations/env.py`: run online migrations with the async engine.

    Called from inside Alembic (which runs in a worker thread when invoked through `migrate`),
    so it owns a fresh event loop.
    """
    from alembic import context  # noqa: PLC0415

    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"

    def do_run(connection: Any) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_engine(url, instrument=False)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(do_run)
                await connection.commit()
        finally:
            await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run())
