"""Fixtures shared by every suite: storage backends, Redis, an isolated var/ folder."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from tests.support.infra import fresh_postgres_database, require_redis


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, then a real PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def redis_url() -> str:
    """URL of the real test Redis."""
    return await require_redis()


@pytest.fixture
def var_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """An isolated var/ folder (certificates, keys, databases, traces) for one test."""
    path = tmp_path / "var"
    path.mkdir()
    return path
