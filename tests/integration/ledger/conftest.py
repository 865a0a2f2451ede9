"""A real ledger service on port 0 (mTLS, caller identity `tools`), on each database backend."""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time
from collections.abc import AsyncIterator

import pytest
from clearhouse.ledger.v1 import ledger_pb2_grpc

from chassis.channels import open_channel
from chassis.service import RunningService, start
from ledger_svc.bootstrap import build
from ledger_svc.settings import LedgerSettings


class FakeClock:
    """Microseconds since the epoch that tests move by hand (for pending-transfer timeouts)."""

    def __init__(self) -> None:
        self.now_us = time.time_ns() // 1_000

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


@dataclasses.dataclass
class Ledger:
    """A running ledger, its stub, and the clock it reads."""

    running: RunningService
    stub: ledger_pb2_grpc.LedgerStub
    clock: FakeClock
    settings: LedgerSettings


def ledger_settings(
    var_dir: pathlib.Path, database_url: str, *, expiry_interval_seconds: float = 0
) -> LedgerSettings:
    return LedgerSettings(
        CLEARHOUSE_VAR_DIR=var_dir,
        database_url=database_url,
        grpc_port=0,
        expiry_interval_seconds=expiry_interval_seconds,
    )


@pytest.fixture
async def ledger(var_dir: pathlib.Path, database_url: str) -> AsyncIterator[Ledger]:
    clock = FakeClock()
    settings = ledger_settings(var_dir, database_url)
    running = await start(settings, functools.partial(build, clock=clock), port=0)
    channel = open_channel(running.address, settings, "tools")
    try:
        yield Ledger(running, ledger_pb2_grpc.LedgerStub(channel), clock, settings)
    finally:
        await channel.close()
        await running.stop(0)
