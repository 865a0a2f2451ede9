"""Crash safety: SIGKILL the ledger process in the middle of a stream of batches, restart, verify.

Every batch the client saw acknowledged must exist after the restart, every batch whose fate was
unknown must be all-or-nothing, and the invariants and the hash chain must hold.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest
from clearhouse.ledger.v1 import ledger_pb2 as pb
from clearhouse.ledger.v1 import ledger_pb2_grpc

from chassis.channels import open_channel
from tests.integration.ledger.conftest import ledger_settings
from tests.integration.ledger.helpers import A, F, R, T, account, assert_clean, ref

ROOT = pathlib.Path(__file__).resolve().parents[3]
START_SECONDS_MAX = 60.0
STREAMS = 4
BATCH_SIZE = 50
ACKNOWLEDGED_BEFORE_KILL = 12


def spawn(var_dir: pathlib.Path, database_url: str, log: pathlib.Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LEDGER_", "CLEARHOUSE_"))}
    env.update(
        CLEARHOUSE_VAR_DIR=str(var_dir),
        LEDGER_GRPC_PORT="0",
        LEDGER_DATABASE_URL=database_url,
        PYTHONPATH=f"{ROOT}:{ROOT / 'protos'}",
    )
    with log.open("ab") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "ledger_svc"], cwd=ROOT, env=env, stdout=stream, stderr=stream
        )


async def wait_for_port(var_dir: pathlib.Path, process: subprocess.Popen[bytes], log: pathlib.Path) -> int:
    path = var_dir / "run" / "ledger.port"
    deadline = time.monotonic() + START_SECONDS_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ledger exited with {process.returncode}: {log.read_text()[-2000:]}")
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        await asyncio.sleep(0.05)
    pytest.fail("ledger did not write its port file in time")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=15)


async def test_sigkill_mid_stream_loses_nothing_acknowledged(
    var_dir: pathlib.Path, database_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = var_dir / "ledger.log"
    settings = ledger_settings(var_dir, database_url)
    first = spawn(var_dir, database_url, log)
    processes.append(first)
    port = await wait_for_port(var_dir, first, log)
    channel = open_channel(f"127.0.0.1:{port}", settings, "tools")
    stub = ledger_pb2_grpc.LedgerStub(channel)

    source, merchant, revenue = ref("src"), ref("mer"), ref("rev")
    created = await stub.CreateAccounts(
        pb.CreateAccountsRequest(
            accounts=[
                account(source, A.ASSET),
                account(merchant, no_overdraft=True),
                account(revenue, A.REVENUE),
            ]
        ),
        timeout=30,
    )
    assert all(r.result == pb.CreateAccountResult.OK for r in created.results)

    acknowledged: list[list[str]] = []
    unknown: list[pb.CreateTransfersRequest] = []
    enough = asyncio.Event()

    def batch() -> pb.CreateTransfersRequest:
        transfers = []
        for index in range(BATCH_SIZE):
            if index % 5 == 4:
                transfers.append(
                    T(
                        id=ref(),
                        debit_account_id=merchant,
                        credit_account_id=revenue,
                        amount=1,
                        flags=F(pending=True),
                    )
                )
            else:
                transfers.append(T(id=ref(), debit_account_id=source, credit_account_id=merchant, amount=10))
        return pb.CreateTransfersRequest(transfers=transfers)

    async def stream() -> None:
        while True:
            request = batch()
            try:
                response = await stub.CreateTransfers(request, timeout=30)
            except grpc.aio.AioRpcError:
                unknown.append(request)  # in flight when the process died: fate unknown
                return
            assert all(r.result == R.OK for r in response.results)
            acknowledged.append([t.id for t in request.transfers])
            if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                enough.set()

    streams = [asyncio.create_task(stream()) for _ in range(STREAMS)]
    await asyncio.wait_for(enough.wait(), 120)
    first.send_signal(signal.SIGKILL)
    await asyncio.wait_for(asyncio.gather(*streams), 60)
    assert first.wait(timeout=15) == -signal.SIGKILL
    # Every stream ends on exactly one request whose outcome it never learnt.
    assert len(unknown) == STREAMS
    await channel.close()

    (var_dir / "run" / "ledger.port").unlink()
    second = spawn(var_dir, database_url, log)
    processes.append(second)
    port = await wait_for_port(var_dir, second, log)
    channel = open_channel(f"127.0.0.1:{port}", settings, "tools")
    stub = ledger_pb2_grpc.LedgerStub(channel)
    try:
        for ids in acknowledged:
            found = await stub.LookupTransfers(pb.LookupTransfersRequest(ids=ids), timeout=30)
            assert len(found.transfers) == len(ids)
        for request in unknown:
            ids = [t.id for t in request.transfers]
            found = await stub.LookupTransfers(pb.LookupTransfersRequest(ids=ids), timeout=30)
            assert len(found.transfers) in (0, len(ids)), "a batch was half-applied"
        await assert_clean(stub)
        # The client's retry of an unknown batch completes it exactly once.
        for request in unknown:
            response = await stub.CreateTransfers(request, timeout=30)
            assert len({r.result for r in response.results}) == 1
            assert response.results[0].result in (R.OK, R.EXISTS)
        total = len(acknowledged) + len(unknown)
        balances = await stub.GetBalances(pb.GetBalancesRequest(account_ids=[merchant]), timeout=30)
        assert balances.balances[0].credits_posted == total * (BATCH_SIZE * 4 // 5) * 10
        assert balances.balances[0].debits_pending == total * (BATCH_SIZE // 5)
        await assert_clean(stub)
    finally:
        await channel.close()
