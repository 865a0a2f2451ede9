"""Ledger throughput: single-transfer and batched RPCs vs the database's raw row rate.

For SQLite and PostgreSQL: the ledger runs as its own process (`python -m ledger_svc`, mTLS),
driven by concurrent clients from this process. Then, in the same run, the same database does
the equivalent plain work without the ledger (per transfer: one transfer row, two entry rows,
two account updates, in transactions of 100 transfers) so the ledger's batched figure reads as
a ratio of the storage's own limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import sqlalchemy as sa
from clearhouse.ledger.v1 import ledger_pb2 as pb
from clearhouse.ledger.v1 import ledger_pb2_grpc

from chassis import db
from chassis.channels import open_channel
from ledger_svc.adapters.orm import accounts, entries, transfers
from ledger_svc.bootstrap import MIGRATIONS
from ledger_svc.settings import LedgerSettings
from tests.bench.common import Row, drive, summarize
from tests.support.infra import fresh_postgres_database

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACCOUNTS = 20
SINGLE_TOTAL = 3_000
SINGLE_CONCURRENCY = 32
BATCH_TRANSFERS = 100
BATCH_CALLS = 150
BATCH_CONCURRENCY = 4
RAW_TRANSACTIONS = 150
START_SECONDS_MAX = 60.0


@contextlib.asynccontextmanager
async def ledger_process(
    var_dir: pathlib.Path, database_url: str
) -> AsyncIterator[ledger_pb2_grpc.LedgerStub]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LEDGER_", "CLEARHOUSE_"))}
    env.update(
        CLEARHOUSE_VAR_DIR=str(var_dir),
        CLEARHOUSE_LOG_LEVEL="WARNING",
        LEDGER_GRPC_PORT="0",
        LEDGER_DATABASE_URL=database_url,
        PYTHONPATH=f"{ROOT}:{ROOT / 'protos'}",
    )
    if "BENCH_LEDGER_WRITERS" in os.environ:  # to compare write concurrency settings
        env["LEDGER_WRITERS"] = os.environ["BENCH_LEDGER_WRITERS"]
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger_svc"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = var_dir / "run" / "ledger.port"
        deadline = time.monotonic() + START_SECONDS_MAX
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the ledger did not start")
            await asyncio.sleep(0.05)
        settings = LedgerSettings(CLEARHOUSE_VAR_DIR=var_dir)
        channel = open_channel(f"127.0.0.1:{int(port_file.read_text())}", settings, "tools")
        try:
            yield ledger_pb2_grpc.LedgerStub(channel)
        finally:
            await channel.close()
    finally:
        process.terminate()
        process.wait(timeout=15)


async def ledger_rows(backend: str, database_url: str, var_dir: pathlib.Path) -> list[Row]:
    rows: list[Row] = []
    async with ledger_process(var_dir, database_url) as stub:
        ids = [f"bench-{secrets.token_hex(4)}-{i}" for i in range(ACCOUNTS)]
        await stub.CreateAccounts(
            pb.CreateAccountsRequest(
                accounts=[pb.Account(id=i, currency="USD", type=pb.Account.ASSET) for i in ids]
            )
        )
        rng = random.Random(7)
        # Each measured run uses fresh transfer ids (a repeat would only measure `exists`).
        prefix = [secrets.token_hex(4)]

        def pair() -> tuple[str, str]:
            debit, credit = rng.sample(ids, 2)
            return debit, credit

        async def single(index: int) -> None:
            debit, credit = pair()
            response = await stub.CreateTransfers(
                pb.CreateTransfersRequest(
                    transfers=[
                        pb.Transfer(
                            id=f"{prefix[0]}-s{index}",
                            debit_account_id=debit,
                            credit_account_id=credit,
                            amount=1,
                        )
                    ]
                ),
                timeout=30,
            )
            assert response.results[0].result == pb.CreateTransferResult.OK

        await drive(single, total=200, concurrency=SINGLE_CONCURRENCY)  # warm-up
        prefix[0] = secrets.token_hex(4)
        rate, latencies = await drive(single, total=SINGLE_TOTAL, concurrency=SINGLE_CONCURRENCY)
        rows.append(
            summarize(
                "ledger",
                f"{backend}: single-transfer RPCs",
                rate,
                latencies,
                f"transfers/s; {SINGLE_CONCURRENCY} concurrent callers, {ACCOUNTS} accounts (group commit)",
            )
        )
        prefix[0] = secrets.token_hex(4)
        rate_one, latencies_one = await drive(single, total=300, concurrency=1)
        rows.append(
            summarize(
                "ledger", f"{backend}: single-transfer RPCs, 1 caller", rate_one, latencies_one, "transfers/s"
            )
        )

        async def batched(index: int) -> None:
            transfers = []
            for offset in range(BATCH_TRANSFERS):
                debit, credit = pair()
                transfers.append(
                    pb.Transfer(
                        id=f"{prefix[0]}-b{index}-{offset}",
                        debit_account_id=debit,
                        credit_account_id=credit,
                        amount=1,
                    )
                )
            response = await stub.CreateTransfers(pb.CreateTransfersRequest(transfers=transfers), timeout=60)
            assert all(r.result == pb.CreateTransferResult.OK for r in response.results)

        rate, latencies = await drive(batched, total=BATCH_CALLS, concurrency=BATCH_CONCURRENCY)
        rows.append(
            summarize(
                "ledger",
                f"{backend}: batched RPCs ({BATCH_TRANSFERS}/call)",
                rate * BATCH_TRANSFERS,
                latencies,
                f"transfers/s; latency per call; {BATCH_CONCURRENCY} concurrent callers",
            )
        )
    return rows


async def raw_rate(database_url: str) -> float:
    """Transfers/s of the plain equivalent rows, written straight to the ledger's own schema."""
    await db.migrate(MIGRATIONS, database_url)
    engine = db.create_engine(database_url, instrument=False)
    try:
        ids = [f"raw-{i}" for i in range(ACCOUNTS)]
        async with engine.begin() as connection:
            await connection.execute(
                accounts.insert(),
                [
                    {
                        "id": i,
                        "currency": "USD",
                        "type": 1,
                        "code": 0,
                        "flags": 0,
                        "metadata": "{}",
                        "debits_posted": 0,
                        "credits_posted": 0,
                        "debits_pending": 0,
                        "credits_pending": 0,
                        "created_at_us": 0,
                        "batch_seq": 0,
                    }
                    for i in ids
                ],
            )
        rng = random.Random(11)
        seq = 0
        update = (
            accounts.update()
            .where(accounts.c.id == sa.bindparam("b_id"))
            .values(debits_posted=accounts.c.debits_posted + sa.bindparam("b_amount"))
        )
        started = time.perf_counter()
        for number in range(RAW_TRANSACTIONS):
            transfer_rows, entry_rows, touched = [], [], set()
            for offset in range(BATCH_TRANSFERS):
                debit, credit = rng.sample(ids, 2)
                transfer_id = f"raw-{number}-{offset}"
                transfer_rows.append(
                    {
                        "id": transfer_id,
                        "debit_account_id": debit,
                        "credit_account_id": credit,
                        "amount": 1,
                        "currency": "USD",
                        "code": 0,
                        "flags": 0,
                        "pending_id": "",
                        "timeout_seconds": 0,
                        "expires_at_us": 0,
                        "metadata": "{}",
                        "state": 1,
                        "amount_posted": 0,
                        "created_at_us": 0,
                        "batch_seq": number,
                    }
                )
                for account_id, side in ((debit, 1), (credit, 2)):
                    seq += 1
                    entry_rows.append(
                        {
                            "seq": seq,
                            "transfer_id": transfer_id,
                            "account_id": account_id,
                            "side": side,
                            "kind": 1,
                            "amount": 1,
                            "balance_after": 0,
                            "created_at_us": 0,
                            "batch_seq": number,
                        }
                    )
                    touched.add(account_id)
            async with engine.begin() as connection:
                await connection.execute(transfers.insert(), transfer_rows)
                await connection.execute(entries.insert(), entry_rows)
                # Two account updates per transfer, as the naive row-per-transfer design would do.
                await connection.execute(
                    update,
                    [{"b_id": row["debit_account_id"], "b_amount": 1} for row in transfer_rows]
                    + [{"b_id": row["credit_account_id"], "b_amount": 1} for row in transfer_rows],
                )
        elapsed = time.perf_counter() - started
        return RAW_TRANSACTIONS * BATCH_TRANSFERS / elapsed
    finally:
        await engine.dispose()


async def backend_rows(backend: str, make_url: contextlib.AbstractAsyncContextManager[str]) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        var_dir = pathlib.Path(folder)
        async with make_url as url:
            rows.extend(await ledger_rows(backend, url, var_dir))
        async with (
            _sqlite_url(var_dir / "raw.db") if backend == "sqlite" else fresh_postgres_database()
        ) as raw_url:
            raw = await raw_rate(raw_url)
    batched = next(r for r in rows if "batched" in r.case)
    rows.append(
        Row(
            "ledger",
            f"{backend}: raw INSERT/UPDATE equivalent",
            raw,
            "transfers/s",
            note=f"1 transfer + 2 entries + 2 account updates per transfer, 100/txn; ledger batched = "
            f"{batched.rate / raw:.0%} of this",
        )
    )
    return rows


@contextlib.asynccontextmanager
async def _sqlite_url(path: pathlib.Path) -> AsyncIterator[str]:
    yield f"sqlite:///{path}"


async def run() -> list[Row]:
    """Every ledger figure, SQLite then PostgreSQL (skipped when PostgreSQL does not answer)."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        rows.extend(await backend_rows("sqlite", _sqlite_url(pathlib.Path(folder) / "ledger.db")))
    try:
        rows.extend(await backend_rows("postgresql", fresh_postgres_database()))
    except BaseException as error:  # pytest.skip raises a BaseException outside pytest
        if isinstance(error, KeyboardInterrupt | asyncio.CancelledError):
            raise
        rows.append(Row("ledger", "postgresql", 0.0, note=f"skipped: {type(error).__name__}: {error}"))
    return rows
