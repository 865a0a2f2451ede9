"""Ledger reads of part 2: transfers by id with their amounts (reconciliation)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from clearhouse.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from chassis import errors

# Ids per LookupTransfers call.
LOOKUP_BATCH_MAX = 500


class LedgerReader:
    """LookupTransfers in batches."""

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float) -> None:
        self._stub = ledger_pb2_grpc.LedgerStub(channel)
        self._timeout_seconds = timeout_seconds

    async def posted_amounts(self, transfer_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """(amount, currency) of each transfer that exists among `transfer_ids`."""
        found: dict[str, tuple[int, str]] = {}
        for start in range(0, len(transfer_ids), LOOKUP_BATCH_MAX):
            chunk = list(transfer_ids[start : start + LOOKUP_BATCH_MAX])
            try:
                response = await self._stub.LookupTransfers(
                    ledger_pb2.LookupTransfersRequest(ids=chunk), timeout=self._timeout_seconds
                )
            except grpc.aio.AioRpcError as error:
                remote = errors.from_rpc_error(error)
                raise errors.Unavailable(
                    f"the ledger is unavailable ({remote.code.name})",
                    reason="LEDGER_UNAVAILABLE",
                    retry_after_seconds=1.0,
                ) from None
            for transfer in response.transfers:
                found[transfer.id] = (transfer.amount, transfer.currency)
        return found
