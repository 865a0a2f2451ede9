"""Payments throughput: full lifecycles per second over gRPC, against the transport's own limit.

A lifecycle is CreatePaymentIntent + ConfirmPaymentIntent with automatic capture (risk, vault
tokenize, routing, provider authorize + capture, ledger pending + post + fee, events). Ledger,
vault, provider (latency scale 0) and payments each run as their own process (`python -m …`,
mTLS), on SQLite (the embedded default) and on PostgreSQL; this process drives them at
increasing concurrency. In the same run a bare grpc.aio echo server (its own process, mTLS,
one round trip per call) gives the transport's rate on this machine, so the lifecycle figure
reads as a ratio to it. The gateway (REST) is measured by its own benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import grpc
from clearhouse.payments.v1 import (
    merchants_pb2,
    merchants_pb2_grpc,
    payment_intents_pb2,
    payment_intents_pb2_grpc,
    tokens_pb2,
)

from chassis import tls
from chassis.channels import open_channel
from chassis.settings import CommonSettings
from tests.bench.common import Row, drive, summarize
from tests.support.infra import fresh_postgres_database

ROOT = pathlib.Path(__file__).resolve().parents[2]
START_SECONDS_MAX = 60.0
CONCURRENCY_LEVELS = (1, 8, 32, 64)
LIFECYCLES_PER_LEVEL = {1: 150, 8: 600, 32: 1_200, 64: 1_200}
ECHO_CALLS = 10_000
ECHO_CONCURRENCY = 64
SECONDS_MAX_PER_LEVEL = 30.0
SERVICES = (
    ("ledger_svc", "ledger", "LEDGER"),
    ("vault_svc", "vault", "VAULT"),
    ("provider_sim", "provider", "PROVIDER"),
)
ADMIN_KEY = "sk_admin_bench_" + "x" * 32
# Head sampling is a production setting (the standard OTel variables); the default is every trace.
# The benchmark reports both: always-on on both databases, then SQLite with 10% of traces.
SAMPLED_ENV = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
CARD = payment_intents_pb2.PaymentMethod(
    card=tokens_pb2.CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123")
)


def _env(var_dir: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLEARHOUSE_", "REDIS_URL"))}
    env = {
        k: v for k, v in env.items() if k.split("_", 1)[0] not in {"LEDGER", "VAULT", "PROVIDER", "PAYMENTS"}
    }
    env.update(
        CLEARHOUSE_VAR_DIR=str(var_dir),
        CLEARHOUSE_LOG_LEVEL="WARNING",
        CLEARHOUSE_ADMIN_KEY=ADMIN_KEY,
        PYTHONPATH=f"{ROOT}:{ROOT / 'protos'}",
    )
    return env


async def _wait_port(var_dir: pathlib.Path, name: str, process: subprocess.Popen[bytes]) -> int:
    port_file = var_dir / "run" / f"{name}.port"
    deadline = time.monotonic() + START_SECONDS_MAX
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        await asyncio.sleep(0.05)
    return int(port_file.read_text())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Running:
    """The payments address and every service's pid (for CPU accounting)."""

    address: str
    pids: dict[str, int]


@contextlib.asynccontextmanager
async def processes(
    var_dir: pathlib.Path, urls: dict[str, str], extra_env: dict[str, str] | None = None
) -> AsyncIterator[Running]:
    """Start the four services (with `extra_env` added); yield the payments address and the pids."""
    started: list[subprocess.Popen[bytes]] = []
    pids: dict[str, int] = {}
    env = {**_env(var_dir), **(extra_env or {})}
    try:
        addresses: dict[str, str] = {}
        for module, name, prefix in SERVICES:
            service_env = dict(env)
            service_env[f"{prefix}_GRPC_PORT"] = "0"
            service_env[f"{prefix}_DATABASE_URL"] = urls[name]
            if name == "provider":
                service_env["PROVIDER_LATENCY_SCALE"] = "0"
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=ROOT,
                env=service_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            started.append(process)
            pids[name] = process.pid
            addresses[name] = f"127.0.0.1:{await _wait_port(var_dir, name, process)}"
        payments_env = dict(env)
        payments_env.update(
            PAYMENTS_GRPC_PORT="0",
            PAYMENTS_DATABASE_URL=urls["payments"],
            PAYMENTS_VAULT_ADDRESS=addresses["vault"],
            PAYMENTS_LEDGER_ADDRESS=addresses["ledger"],
            PAYMENTS_PROVIDER_ADDRESS=addresses["provider"],
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "payments_svc"],
            cwd=ROOT,
            env=payments_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        pids["payments"] = process.pid
        yield Running(f"127.0.0.1:{await _wait_port(var_dir, 'payments', process)}", pids)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


async def lifecycles(running: Running, var_dir: pathlib.Path, label: str) -> list[Row]:
    """Drive create + confirm at each concurrency level; note CPU ms per lifecycle per process."""
    settings = CommonSettings(CLEARHOUSE_VAR_DIR=var_dir)
    channel = open_channel(running.address, settings, "tools")
    rows: list[Row] = []
    try:
        merchants = merchants_pb2_grpc.MerchantsStub(channel)
        intents = payment_intents_pb2_grpc.PaymentIntentsStub(channel)
        created = await merchants.CreateMerchant(
            merchants_pb2.CreateMerchantRequest(name="Bench", country="US", default_currency="USD"),
            metadata=(("authorization", f"Bearer {ADMIN_KEY}"),),
        )
        # Thousands of payments with one test card would trip the card-velocity rule (by design);
        # the benchmark merchant's thresholds are lifted so every lifecycle goes the full path.
        await merchants.UpdateMerchant(
            merchants_pb2.UpdateMerchantRequest(
                merchant_id=created.merchant.id,
                risk_settings=merchants_pb2.RiskSettings(
                    amount_threshold=10**9, review_score=100, block_score=100
                ),
            ),
            metadata=(("authorization", f"Bearer {ADMIN_KEY}"),),
        )
        metadata = (("authorization", f"Bearer {created.api_key.secret}"),)
        failures = 0

        async def lifecycle(index: int) -> None:
            nonlocal failures
            intent = await intents.CreatePaymentIntent(
                payment_intents_pb2.CreatePaymentIntentRequest(amount=1_000 + index % 100, currency="USD"),
                metadata=metadata,
                timeout=30,
            )
            confirmed = await intents.ConfirmPaymentIntent(
                payment_intents_pb2.ConfirmPaymentIntentRequest(
                    id=intent.payment_intent.id, payment_method=CARD
                ),
                metadata=metadata,
                timeout=30,
            )
            if confirmed.payment_intent.status != payment_intents_pb2.PaymentIntent.CAPTURED:
                failures += 1

        await lifecycle(0)  # warm-up: ledger accounts, connections
        for concurrency in CONCURRENCY_LEVELS:
            failures = 0
            cpu_before = {name: cpu_seconds(pid) for name, pid in running.pids.items()}
            rate, latencies = await drive(
                lifecycle,
                total=LIFECYCLES_PER_LEVEL[concurrency],
                concurrency=concurrency,
                seconds_max=SECONDS_MAX_PER_LEVEL,
            )
            done = max(1, len(latencies))
            cpu = ", ".join(
                f"{name} {(cpu_seconds(pid) - cpu_before[name]) / done * 1000:.1f}"
                for name, pid in running.pids.items()
            )
            note = f"{label}; CPU ms per lifecycle: {cpu}"
            if failures:
                note += f"; {failures} not captured"
            rows.append(summarize("payments", f"lifecycle {label} c={concurrency}", rate, latencies, note))
    finally:
        await channel.close()
    return rows


# Echo baseline -------------------------------------------------------------------------------


def _serve_echo(var_dir: pathlib.Path) -> None:
    """Echo server process: one unary method returning its request, mTLS like the services."""

    async def serve() -> None:
        async def echo(request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
            return request

        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        identity = tls.ensure_identity(var_dir / "certs", "ledger")
        port = server.add_secure_port("127.0.0.1:0", tls.server_credentials(identity))
        await server.start()
        (var_dir / "run").mkdir(parents=True, exist_ok=True)
        (var_dir / "run" / "echo.port").write_text(f"{port}\n")
        await server.wait_for_termination()

    asyncio.run(serve())


async def echo_baseline(var_dir: pathlib.Path) -> Row:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_payments", "echo", str(var_dir)],
        cwd=ROOT,
        env=_env(var_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = await _wait_port(var_dir, "echo", process)
        channel = open_channel(f"127.0.0.1:{port}", CommonSettings(CLEARHOUSE_VAR_DIR=var_dir), "tools")
        call = channel.unary_unary("/bench.Echo/Echo")
        payload = b"x" * 200

        async def once(_index: int) -> None:
            await call(payload, timeout=10)

        await once(0)
        rate, latencies = await drive(
            once, total=ECHO_CALLS, concurrency=ECHO_CONCURRENCY, seconds_max=SECONDS_MAX_PER_LEVEL
        )
        await channel.close()
        return summarize(
            "payments",
            f"bare grpc.aio echo c={ECHO_CONCURRENCY}",
            rate,
            latencies,
            "mTLS, 200-byte unary, one round trip",
        )
    finally:
        process.terminate()
        process.wait(timeout=15)


async def run() -> list[Row]:
    """Echo baseline, then lifecycles on SQLite and (when reachable) PostgreSQL."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-payments-") as tmp:
        base = pathlib.Path(tmp)
        tls.ensure_identity(base / "var" / "certs", "tools")
        rows.append(await echo_baseline(base / "var"))
        sqlite_dir = base / "sqlite"
        tls_dir = sqlite_dir / "certs"
        tls_dir.parent.mkdir(parents=True, exist_ok=True)
        urls = {
            name: f"sqlite:///{sqlite_dir / (name + '.db')}"
            for name in ("ledger", "vault", "provider", "payments")
        }
        async with processes(sqlite_dir, urls) as running:
            rows.extend(await lifecycles(running, sqlite_dir, "SQLite"))
        sampled_dir = base / "sampled"
        sampled_urls = {name: f"sqlite:///{sampled_dir / (name + '.db')}" for name in urls}
        async with processes(sampled_dir, sampled_urls, SAMPLED_ENV) as running:
            rows.extend(await lifecycles(running, sampled_dir, "SQLite, traces sampled 10%"))
        postgres_dir = base / "postgres"
        try:
            async with contextlib.AsyncExitStack() as exits:
                pg_urls = {
                    name: await exits.enter_async_context(fresh_postgres_database())
                    for name in ("ledger", "vault", "provider", "payments")
                }
                async with processes(postgres_dir, pg_urls) as running:
                    rows.extend(await lifecycles(running, postgres_dir, "PostgreSQL"))
        except BaseException as error:
            if type(error).__name__ not in {"Skipped", "OSError"}:
                raise
            rows.append(
                Row("payments", "lifecycle PostgreSQL", 0.0, note="PostgreSQL not reachable: skipped")
            )
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "echo":
        _serve_echo(pathlib.Path(sys.argv[2]))
    else:
        for row in asyncio.run(run()):
            print(row)
