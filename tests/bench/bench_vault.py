"""Vault benchmark: tokenize/s, reveal/s and tokenize+reveal pairs/s (the payment hot path: one of
each per lifecycle with a raw card) over gRPC (mTLS, payments identity), rewrap rows/s, and, in the
same run, the raw AES-256-GCM encrypt rate of `cryptography` so the figures read as a ratio.
SQLite (the embedded default) always; PostgreSQL too when it answers. The vault server runs in
this process, so the figures include the client's CPU too (as a co-located payments would)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from clearhouse.vault.v1 import vault_pb2, vault_pb2_grpc
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chassis.channels import open_channel
from chassis.service import start
from tests.bench.common import Row, drive, summarize
from vault_svc.bootstrap import build
from vault_svc.settings import VaultSettings

TOKENIZE_TOTAL = 2_000
REVEAL_TOTAL = 2_000
PAIR_TOTAL = 2_000
# The payment hot path at moderate and at high fan-in (payments workers times replicas).
PAIR_CONCURRENCIES = (16, 64)
REWRAP_ROWS = 5_000
REWRAP_BATCH = 1_000
CONCURRENCY = 16
AES_SECONDS = 1.0
# The vault as its own process (`python -m vault_svc`, tracing to its JSON-lines file as in
# development), so its CPU per pair is measured apart from the client's.
PROCESS_START_SECONDS = 60.0
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
ROOT = pathlib.Path(__file__).resolve().parents[2]
CARDS = ("4242424242424242", "5555555555554444", "378282246310005", "6011111111111117")


def aes_gcm_rate() -> float:
    """AES-256-GCM encryptions per second of a 16-byte payload with `cryptography` (one core)."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    payload, aad = b"4242424242424242", b"tok_01JD3XXXXXXXXXXXXXXXXXXXXX"
    count = 0
    deadline = time.perf_counter() + AES_SECONDS
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(1_000):
            nonce = os.urandom(12)
            aead.encrypt(nonce, payload, aad)
        count += 1_000
    return count / (time.perf_counter() - started)


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (Linux /proc)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


@contextlib.asynccontextmanager
async def vault_process(settings: VaultSettings, url: str) -> AsyncIterator[tuple[str, int]]:
    """`python -m vault_svc` on a free port with `settings`' var dir; yields (address, pid)."""
    port_file = settings.var_dir / "run" / "vault.port"
    port_file.unlink(missing_ok=True)
    environment = {
        **os.environ,
        "CLEARHOUSE_VAR_DIR": str(settings.var_dir),
        "VAULT_DATABASE_URL": url,
        "VAULT_GRPC_PORT": "0",
        "CLEARHOUSE_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "vault_svc"], cwd=ROOT, env=environment)
    try:
        deadline = time.monotonic() + PROCESS_START_SECONDS
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the vault process did not start")
            await asyncio.sleep(0.1)
        yield f"{settings.grpc_host}:{port_file.read_text().strip()}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.asynccontextmanager
async def database_urls(root: pathlib.Path) -> AsyncIterator[list[tuple[str, str]]]:
    urls = [("sqlite", f"sqlite:///{root / 'vault-bench.db'}")]
    async with contextlib.AsyncExitStack() as stack:
        try:
            from tests.support.infra import fresh_postgres_database

            urls.append(("postgres", await stack.enter_async_context(fresh_postgres_database())))
        except BaseException as error:
            print(f"vault bench: PostgreSQL skipped ({type(error).__name__})")
        yield urls


def pair_operation(stub: vault_pb2_grpc.VaultStub, tokens: list[str]) -> Callable[[int], Awaitable[None]]:
    """One payment's vault work: tokenize a card (holding its CVC), then reveal it."""

    async def pair(index: int) -> None:
        reply = await stub.Tokenize(
            vault_pb2.TokenizeRequest(
                card=vault_pb2.Card(number=CARDS[index % len(CARDS)], exp_month=12, exp_year=2040, cvc="123"),
                merchant_id="mch_bench",
            ),
            timeout=30,
        )
        revealed = await stub.RevealCard(
            vault_pb2.RevealCardRequest(
                token=reply.token.token,
                merchant_id="mch_bench",
                purpose=vault_pb2.RevealCardRequest.AUTHORIZATION,
                reference=f"pi_bench_{index}",
            ),
            timeout=30,
        )
        # The hot path needs the CVC held at tokenize back on the reveal.
        assert revealed.card.cvc == "123"
        tokens.append(reply.token.token)

    return pair


async def bench_process(label: str, url: str, var_dir: pathlib.Path) -> list[Row]:
    """Pairs against the vault in its own process: rate, and the vault's CPU ms per pair."""
    settings = VaultSettings(CLEARHOUSE_VAR_DIR=var_dir, database_url=url, grpc_port=0)
    rows: list[Row] = []
    async with vault_process(settings, url) as (address, pid):
        channel = open_channel(address, settings, "payments")
        try:
            pair = pair_operation(vault_pb2_grpc.VaultStub(channel), [])
            await drive(pair, total=PAIR_CONCURRENCIES[-1], concurrency=PAIR_CONCURRENCIES[-1])
            for concurrency in PAIR_CONCURRENCIES:
                cpu_started = process_cpu_seconds(pid)
                rate, latencies = await drive(pair, total=PAIR_TOTAL, concurrency=concurrency)
                cpu_ms = (process_cpu_seconds(pid) - cpu_started) * 1000 / max(1, len(latencies))
                rows.append(
                    summarize(
                        "vault",
                        f"tokenize+reveal pair ({label}, vault process)",
                        rate,
                        latencies,
                        f"{concurrency} pairs in flight, vault process {cpu_ms:.2f} CPU ms/pair",
                    )
                )
        finally:
            await channel.close()
    return rows


async def bench_backend(label: str, url: str, var_dir: pathlib.Path) -> list[Row]:
    settings = VaultSettings(CLEARHOUSE_VAR_DIR=var_dir, database_url=url, grpc_port=0)
    running = await start(settings, build, port=0)
    payments = open_channel(running.address, settings, "payments")
    tools = open_channel(running.address, settings, "tools")
    stub, admin = vault_pb2_grpc.VaultStub(payments), vault_pb2_grpc.VaultStub(tools)
    rows: list[Row] = []
    try:
        tokens: list[str] = []

        async def tokenize(index: int) -> None:
            reply = await stub.Tokenize(
                vault_pb2.TokenizeRequest(
                    card=vault_pb2.Card(
                        number=CARDS[index % len(CARDS)], exp_month=12, exp_year=2040, cvc="123"
                    ),
                    merchant_id="mch_bench",
                ),
                timeout=30,
            )
            tokens.append(reply.token.token)

        rate, latencies = await drive(tokenize, total=TOKENIZE_TOTAL, concurrency=CONCURRENCY)
        rows.append(
            summarize("vault", f"tokenize ({label})", rate, latencies, f"gRPC mTLS, {CONCURRENCY} in flight")
        )

        async def reveal(index: int) -> None:
            await stub.RevealCard(
                vault_pb2.RevealCardRequest(
                    token=tokens[index % len(tokens)],
                    merchant_id="mch_bench",
                    purpose=vault_pb2.RevealCardRequest.AUTHORIZATION,
                ),
                timeout=30,
            )

        rate, latencies = await drive(reveal, total=REVEAL_TOTAL, concurrency=CONCURRENCY)
        rows.append(
            summarize("vault", f"reveal ({label})", rate, latencies, f"gRPC mTLS, {CONCURRENCY} in flight")
        )

        pair = pair_operation(stub, tokens)

        for concurrency in PAIR_CONCURRENCIES:
            cpu_started = time.process_time()
            rate, latencies = await drive(pair, total=PAIR_TOTAL, concurrency=concurrency)
            cpu_ms = (time.process_time() - cpu_started) * 1000 / max(1, len(latencies))
            rows.append(
                summarize(
                    "vault",
                    f"tokenize+reveal pair ({label})",
                    rate,
                    latencies,
                    f"gRPC mTLS, {concurrency} pairs in flight, {cpu_ms:.2f} CPU ms/pair (server+client)",
                )
            )

        while len(tokens) < REWRAP_ROWS:
            await drive(tokenize, total=REWRAP_ROWS - len(tokens), concurrency=CONCURRENCY)
        await admin.RotateKey(vault_pb2.RotateKeyRequest(), timeout=30)
        rewrapped = 0
        started = time.perf_counter()
        while True:
            reply = await admin.RewrapTokens(
                vault_pb2.RewrapTokensRequest(batch_size=REWRAP_BATCH), timeout=60
            )
            rewrapped += reply.rewrapped
            if reply.remaining == 0 or reply.rewrapped == 0:
                break
        elapsed = time.perf_counter() - started
        rows.append(
            Row(
                "vault",
                f"rewrap ({label})",
                rewrapped / elapsed,
                "rows/s",
                note=f"{rewrapped} rows, batches of {REWRAP_BATCH}",
            )
        )
    finally:
        await payments.close()
        await tools.close()
        await running.stop(0)
    return rows


async def run() -> list[Row]:
    """All vault figures, the raw AES-GCM rate first."""
    rows = [
        Row(
            "vault",
            "raw AES-256-GCM encrypt (cryptography)",
            aes_gcm_rate(),
            "ops/s",
            note="16-byte payload, one core",
        )
    ]
    with tempfile.TemporaryDirectory(prefix="vault-bench-") as directory:
        root = pathlib.Path(directory)
        async with database_urls(root) as urls:
            for label, url in urls:
                rows.extend(await bench_backend(label, url, root / f"var-{label}"))
            async with database_urls(root / "process") as process_urls:
                for label, url in process_urls:
                    rows.extend(await bench_process(label, url, root / f"var-process-{label}"))
    return rows


if __name__ == "__main__":
    for row in asyncio.run(run()):
        print(row)
