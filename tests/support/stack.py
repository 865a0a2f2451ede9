"""The whole back end in one test process: ledger, vault, provider simulator and payments.

`running_stack()` starts the four gRPC services IN-PROCESS with `chassis.service.start(...,
port=0)` on one shared var/ folder (so they share the local CA and dev secrets), wires the
payments settings to the bound addresses, and yields a `Stack` with:

- the running services (`stack.payments.definition.extras` reaches the engine, jobs, board),
- stubs over a `tools`-identity mTLS channel (`stack.merchants`, `stack.intents`, `stack.ledger`,
  `stack.provider`, …),
- helpers: `await stack.new_merchant()` (creates a merchant with the platform admin key and
  returns its id and ADMIN secret), `stack.md(secret, idempotency_key=…)` (call metadata),
  `await stack.run_job(name)`, `await stack.check_ledger()`.

Backends: `backend="sqlite"` (files in the var dir) or `"postgres"` (one fresh PostgreSQL
database per service, dropped afterwards); `redis_url=None` uses the in-process cache, a URL a
real Redis (with a random key prefix, so concurrent stacks never share breakers or counters).
Payments' background workers are off by default: tests drive them with `Admin.RunJob`.

The gateway engineer and part 2 reuse this: keep it generic (no payments-test specifics here).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
from clearhouse.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from clearhouse.payments.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    balance_pb2_grpc,
    events_pb2_grpc,
    merchants_pb2,
    merchants_pb2_grpc,
    payment_intents_pb2_grpc,
    risk_pb2_grpc,
    tokens_pb2_grpc,
)
from clearhouse.provider.v1 import provider_pb2_grpc
from clearhouse.vault.v1 import vault_pb2_grpc

from chassis import service, tls
from chassis.channels import open_channel
from ledger_svc.bootstrap import build as build_ledger
from ledger_svc.settings import LedgerSettings
from payments_svc.bootstrap import build as build_payments
from payments_svc.settings import PaymentsSettings
from provider_sim.bootstrap import build as build_provider
from provider_sim.settings import ProviderSettings
from tests.support.infra import fresh_postgres_database
from vault_svc.bootstrap import build as build_vault
from vault_svc.settings import VaultSettings

ROOT = pathlib.Path(__file__).resolve().parents[2]
ADMIN_KEY_BYTES = 32
CALL_TIMEOUT_SECONDS = 15.0
SUBPROCESS_START_SECONDS_MAX = 60.0


@dataclasses.dataclass
class Merchant:
    """A merchant created for a test, with its first (ADMIN) key."""

    id: str
    secret: str
    response: merchants_pb2.CreateMerchantResponse


@dataclasses.dataclass
class Stack:
    """Running services, stubs and helpers (see the module docstring)."""

    var_dir: pathlib.Path
    admin_key: str
    ledger: service.RunningService
    vault: service.RunningService
    provider: service.RunningService
    payments: service.RunningService | None
    payments_channel: grpc.aio.Channel
    ledger_channel: grpc.aio.Channel
    provider_channel: grpc.aio.Channel
    vault_channel: grpc.aio.Channel
    database_urls: dict[str, str]
    redis_url: str | None
    cache_prefix: str

    # Stubs ---------------------------------------------------------------------------------
    @property
    def merchants(self) -> merchants_pb2_grpc.MerchantsStub:
        """Payments: merchants and keys."""
        return merchants_pb2_grpc.MerchantsStub(self.payments_channel)

    @property
    def intents(self) -> payment_intents_pb2_grpc.PaymentIntentsStub:
        """Payments: payment intents."""
        return payment_intents_pb2_grpc.PaymentIntentsStub(self.payments_channel)

    @property
    def tokens(self) -> tokens_pb2_grpc.TokensStub:
        """Payments: tokens."""
        return tokens_pb2_grpc.TokensStub(self.payments_channel)

    @property
    def events(self) -> events_pb2_grpc.EventsStub:
        """Payments: events."""
        return events_pb2_grpc.EventsStub(self.payments_channel)

    @property
    def balances(self) -> balance_pb2_grpc.BalancesStub:
        """Payments: balances."""
        return balance_pb2_grpc.BalancesStub(self.payments_channel)

    @property
    def risk(self) -> risk_pb2_grpc.RiskStub:
        """Payments: risk."""
        return risk_pb2_grpc.RiskStub(self.payments_channel)

    @property
    def admin(self) -> admin_pb2_grpc.AdminStub:
        """Payments: admin (platform admin key)."""
        return admin_pb2_grpc.AdminStub(self.payments_channel)

    @property
    def ledger_stub(self) -> ledger_pb2_grpc.LedgerStub:
        """The ledger, directly."""
        return ledger_pb2_grpc.LedgerStub(self.ledger_channel)

    @property
    def provider_stub(self) -> provider_pb2_grpc.ProviderStub:
        """The provider simulator, directly."""
        return provider_pb2_grpc.ProviderStub(self.provider_channel)

    @property
    def vault_stub(self) -> vault_pb2_grpc.VaultStub:
        """The vault, directly (as `tools`: RevealCard is refused)."""
        return vault_pb2_grpc.VaultStub(self.vault_channel)

    @property
    def payments_address(self) -> str:
        """host:port of the in-process payments service."""
        assert self.payments is not None
        return self.payments.address

    # Helpers -------------------------------------------------------------------------------
    @staticmethod
    def md(
        secret: str | None, idempotency_key: str | None = None, **extra: str
    ) -> tuple[tuple[str, str], ...]:
        """Call metadata: `authorization: Bearer <secret>`, optional idempotency key and extras."""
        pairs: list[tuple[str, str]] = []
        if secret is not None:
            pairs.append(("authorization", f"Bearer {secret}"))
        if idempotency_key is not None:
            pairs.append(("idempotency-key", idempotency_key))
        pairs.extend((k.replace("_", "-"), v) for k, v in extra.items())
        return tuple(pairs)

    def admin_md(self, idempotency_key: str | None = None) -> tuple[tuple[str, str], ...]:
        """Metadata with the platform admin key."""
        return self.md(self.admin_key, idempotency_key)

    async def new_merchant(self, **fields: Any) -> Merchant:
        """A new merchant (defaults: a random name, US, USD) and its first ADMIN key."""
        request = merchants_pb2.CreateMerchantRequest(
            name=fields.pop("name", f"Test {secrets.token_hex(4)}"),
            country=fields.pop("country", "US"),
            default_currency=fields.pop("default_currency", "USD"),
            **fields,
        )
        response = await self.merchants.CreateMerchant(
            request, metadata=self.admin_md(), timeout=CALL_TIMEOUT_SECONDS
        )
        return Merchant(response.merchant.id, response.api_key.secret, response)

    async def run_job(self, job: str) -> int:
        """Run one pass of a payments background job; returns the items processed."""
        response = await self.admin.RunJob(
            admin_pb2.RunJobRequest(job=job), metadata=self.admin_md(), timeout=CALL_TIMEOUT_SECONDS
        )
        return int(response.processed)

    async def check_ledger(self) -> ledger_pb2.CheckInvariantsResponse:
        """The ledger's invariant check."""
        response: ledger_pb2.CheckInvariantsResponse = await self.ledger_stub.CheckInvariants(
            ledger_pb2.CheckInvariantsRequest(), timeout=CALL_TIMEOUT_SECONDS
        )
        return response

    def payments_settings(self, **overrides: Any) -> PaymentsSettings:
        """Payments settings wired to this stack's services (for an extra in-process replica)."""
        return _payments_settings(self, **overrides)

    def payments_env(self, **overrides: str) -> dict[str, str]:
        """Environment for `python -m payments_svc` wired to this stack (port 0, port file)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PAYMENTS_", "CLEARHOUSE_"))}
        env.update(
            CLEARHOUSE_VAR_DIR=str(self.var_dir),
            CLEARHOUSE_ENV="test",
            CLEARHOUSE_ADMIN_KEY=self.admin_key,
            PYTHONPATH=f"{ROOT}:{ROOT / 'protos'}",
            PAYMENTS_GRPC_PORT="0",
            PAYMENTS_DATABASE_URL=self.database_urls["payments"],
            PAYMENTS_VAULT_ADDRESS=self.vault.address,
            PAYMENTS_LEDGER_ADDRESS=self.ledger.address,
            PAYMENTS_PROVIDER_ADDRESS=self.provider.address,
            PAYMENTS_CACHE_PREFIX=self.cache_prefix,
            PAYMENTS_WORKERS_ENABLED="false",
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        else:
            env.pop("REDIS_URL", None)
        env.update(overrides)
        return env


def _payments_settings(stack: Stack, **overrides: Any) -> PaymentsSettings:
    values: dict[str, Any] = {
        "CLEARHOUSE_VAR_DIR": stack.var_dir,
        "CLEARHOUSE_ENV": "test",
        "CLEARHOUSE_ADMIN_KEY": stack.admin_key,
        "REDIS_URL": stack.redis_url,
        "grpc_port": 0,
        "database_url": stack.database_urls["payments"],
        "vault_address": stack.vault.address,
        "ledger_address": stack.ledger.address,
        "provider_address": stack.provider.address,
        "cache_prefix": stack.cache_prefix,
        "workers_enabled": False,
    }
    values.update(overrides)
    return PaymentsSettings(**values)


@contextlib.asynccontextmanager
async def _databases(backend: str, var_dir: pathlib.Path) -> AsyncIterator[dict[str, str]]:
    names = ("ledger", "vault", "provider", "payments")
    if backend == "sqlite":
        yield {name: f"sqlite:///{var_dir / (name + '.db')}" for name in names}
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}")
    async with contextlib.AsyncExitStack() as exits:
        urls = {name: await exits.enter_async_context(fresh_postgres_database()) for name in names}
        yield urls


@contextlib.asynccontextmanager
async def running_stack(
    var_dir: pathlib.Path,
    *,
    backend: str = "sqlite",
    redis_url: str | None = None,
    start_payments: bool = True,
    payments_overrides: dict[str, Any] | None = None,
    provider_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    """Start ledger, vault, provider (latency 0) and payments in this process; stop them after.

    `start_payments=False` leaves payments to the test (e.g. as a subprocess via `payments_env`).
    """
    var_dir.mkdir(parents=True, exist_ok=True)
    admin_key = "sk_admin_" + secrets.token_urlsafe(ADMIN_KEY_BYTES)
    common: dict[str, Any] = {"CLEARHOUSE_VAR_DIR": var_dir, "CLEARHOUSE_ENV": "test", "grpc_port": 0}
    async with contextlib.AsyncExitStack() as exits:
        urls = await exits.enter_async_context(_databases(backend, var_dir))
        ledger = await service.start(
            LedgerSettings(database_url=urls["ledger"], **common), build_ledger, port=0
        )
        exits.push_async_callback(ledger.stop, 0)
        vault = await service.start(VaultSettings(database_url=urls["vault"], **common), build_vault, port=0)
        exits.push_async_callback(vault.stop, 0)
        provider_values: dict[str, Any] = {"latency_scale": 0.0, **(provider_overrides or {})}
        provider = await service.start(
            ProviderSettings(database_url=urls["provider"], **common, **provider_values),
            build_provider,
            port=0,
        )
        exits.push_async_callback(provider.stop, 0)
        tools_settings = LedgerSettings(**common)
        channels = {
            name: open_channel(address, tools_settings, "tools")
            for name, address in (
                ("ledger", ledger.address),
                ("vault", vault.address),
                ("provider", provider.address),
            )
        }
        for channel in channels.values():
            exits.push_async_callback(channel.close)
        stack = Stack(
            var_dir=var_dir,
            admin_key=admin_key,
            ledger=ledger,
            vault=vault,
            provider=provider,
            payments=None,
            payments_channel=channels["ledger"],  # replaced below once payments runs
            ledger_channel=channels["ledger"],
            provider_channel=channels["provider"],
            vault_channel=channels["vault"],
            database_urls=urls,
            redis_url=redis_url,
            cache_prefix=f"test:{secrets.token_hex(6)}:",
        )
        if start_payments:
            payments = await service.start(
                _payments_settings(stack, **(payments_overrides or {})), build_payments, port=0
            )
            exits.push_async_callback(payments.stop, 0)
            stack.payments = payments
            stack.payments_channel = open_channel(payments.address, tools_settings, "tools")
            exits.push_async_callback(stack.payments_channel.close)
        yield stack


# Subprocess payments (process-kill tests) ------------------------------------------------------


@contextlib.contextmanager
def payments_process(env: dict[str, str], log_path: pathlib.Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m payments_svc` with `env`; killed (SIGKILL) on exit if still running."""
    port_file = pathlib.Path(env["CLEARHOUSE_VAR_DIR"]) / "run" / "payments.port"
    port_file.unlink(missing_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "payments_svc"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


async def wait_for_port(env: dict[str, str], process: subprocess.Popen[bytes]) -> int:
    """The port a subprocess wrote to `<var>/run/payments.port` (polls with a deadline)."""
    port_file = pathlib.Path(env["CLEARHOUSE_VAR_DIR"]) / "run" / "payments.port"
    deadline = time.monotonic() + SUBPROCESS_START_SECONDS_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"payments exited with {process.returncode}")
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        await asyncio.sleep(0.05)
    raise TimeoutError("payments did not write its port file in time")


def tools_channel(var_dir: pathlib.Path, address: str) -> grpc.aio.Channel:
    """A `tools`-identity mTLS channel to `address` (CA from `var_dir`)."""
    identity = tls.ensure_identity(var_dir / "certs", "tools")
    return grpc.aio.secure_channel(
        address,
        grpc.ssl_channel_credentials(identity.ca_pem, identity.private_key_pem, identity.certificate_pem),
    )
