"""Real PostgreSQL and Redis for tests.

TEST_DATABASE_URL (default: the local server) and TEST_REDIS_URL (default: local Redis, db 15)
name the servers. When one does not answer, its tests are skipped locally and fail in CI
(CI=true), so a CI run never passes with storage tests silently skipped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from sqlalchemy import make_url

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str, error: BaseException) -> None:
    """Skip locally, fail in CI."""
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if IN_CI:
        pytest.fail(f"{message}; CI requires it", pytrace=False)
    pytest.skip(message)


def _asyncpg_dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards); yields its URL."""
    admin_dsn = _asyncpg_dsn(TEST_DATABASE_URL)
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        unavailable("PostgreSQL", error)
        raise
    name = f"ch_test_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def require_redis() -> str:
    """TEST_REDIS_URL if Redis answers (skip locally / fail in CI otherwise)."""
    client = redis_asyncio.Redis.from_url(TEST_REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis_asyncio.RedisError) as error:
        unavailable("Redis", error)
    finally:
        await client.aclose()
    return TEST_REDIS_URL
