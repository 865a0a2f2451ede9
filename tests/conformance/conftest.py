"""Fixtures of the gateway conformance suite: one test backend and one gateway per module."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.conformance import support


@dataclasses.dataclass
class Stack:
    """A gateway in front of the recording test backend, and an HTTP client for it."""

    gateway: support.RunningGateway
    recorder: support.Recorder
    http: httpx.AsyncClient


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    var_dir = tmp_path_factory.mktemp("var")
    async with support.running_backend(var_dir) as (backend, recorder):
        settings = support.gateway_settings(var_dir, rate_limit="100000/second")
        async with (
            support.running_gateway(settings, backend.address) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
        ):
            yield Stack(gateway, recorder, http)
