"""A real vault server on port 0 with mTLS stubs for the payments, tools and ledger identities."""

from __future__ import annotations

import dataclasses
import pathlib
import random
from collections.abc import AsyncIterator

import grpc
import pytest
from clearhouse.vault.v1 import vault_pb2, vault_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import __version__, errors, telemetry
from chassis.channels import open_channel
from chassis.service import RunningService, start
from vault_svc.bootstrap import build
from vault_svc.settings import VaultSettings

CALL_TIMEOUT_SECONDS = 10.0
# Spans of every vault test in this process (cleared per test), exported synchronously.
SPANS = InMemorySpanExporter()
_tracing: list[bool] = []


def ensure_tracing(var_dir: pathlib.Path) -> None:
    """Install tracing once per process with the in-memory exporter (as `main()` would with OTLP)."""
    if not _tracing:
        telemetry.setup_tracing(
            "vault",
            version=__version__,
            environment="test",
            var_dir=var_dir,
            exporter=SPANS,
            synchronous=True,
        )
        _tracing.append(True)


def luhn_complete(body: str) -> str:
    """`body` plus its Luhn check digit."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return body + str((10 - total % 10) % 10)


def random_visa() -> str:
    """A random, valid 16-digit Visa number (random references keep tests independent)."""
    return luhn_complete("4" + "".join(random.choice("0123456789") for _ in range(14)))


def random_merchant() -> str:
    return "mch_test" + "".join(random.choice("ABCDEFGHJK") for _ in range(10))


@dataclasses.dataclass
class Vault:
    running: RunningService
    settings: VaultSettings
    payments: vault_pb2_grpc.VaultStub
    tools: vault_pb2_grpc.VaultStub
    ledger: vault_pb2_grpc.VaultStub
    channels: list[grpc.aio.Channel]

    @property
    def engine(self) -> AsyncEngine:
        engine = self.running.definition.extras["engine"]
        assert isinstance(engine, AsyncEngine)
        return engine

    async def tokenize(self, number: str, merchant_id: str, **card: object) -> vault_pb2.TokenMetadata:
        card.setdefault("exp_month", 12)
        card.setdefault("exp_year", 2040)
        reply = await self.payments.Tokenize(
            vault_pb2.TokenizeRequest(
                card=vault_pb2.Card(number=number, **card), merchant_id=merchant_id, principal="owner"
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        return reply.token

    async def reveal(self, token: str, merchant_id: str = "") -> vault_pb2.RevealCardResponse:
        return await self.payments.RevealCard(
            vault_pb2.RevealCardRequest(
                token=token,
                merchant_id=merchant_id,
                purpose=vault_pb2.RevealCardRequest.AUTHORIZATION,
                reference="pi_test",
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )


def vault_settings(var_dir: pathlib.Path, database_url: str, **overrides: object) -> VaultSettings:
    return VaultSettings(CLEARHOUSE_VAR_DIR=var_dir, database_url=database_url, grpc_port=0, **overrides)


@dataclasses.dataclass
class VaultFactory:
    var_dir: pathlib.Path
    database_url: str
    started: list[Vault] = dataclasses.field(default_factory=list)

    async def __call__(self, **overrides: object) -> Vault:
        settings = vault_settings(self.var_dir, self.database_url, **overrides)
        running = await start(settings, build, port=0)
        channels = [open_channel(running.address, settings, name) for name in ("payments", "tools", "ledger")]
        vault = Vault(running, settings, *(vault_pb2_grpc.VaultStub(c) for c in channels), channels)
        self.started.append(vault)
        return vault

    async def close(self) -> None:
        for vault in self.started:
            for channel in vault.channels:
                await channel.close()
            await vault.running.stop(0)


@pytest.fixture
async def vault_factory(var_dir: pathlib.Path, database_url: str) -> AsyncIterator[VaultFactory]:
    ensure_tracing(var_dir)
    SPANS.clear()
    factory = VaultFactory(var_dir, database_url)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
async def vault(vault_factory: VaultFactory) -> Vault:
    return await vault_factory()


def remote(error: grpc.aio.AioRpcError) -> errors.RemoteError:
    return errors.from_rpc_error(error)
