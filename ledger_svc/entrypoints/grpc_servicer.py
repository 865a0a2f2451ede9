"""gRPC entry point of the ledger service: thin translation between protobuf and handlers."""

from __future__ import annotations

from clearhouse.ledger.v1 import ledger_pb2_grpc


class LedgerServicer(ledger_pb2_grpc.LedgerServicer):
    """gRPC `clearhouse.ledger.v1.Ledger`; RPCs not yet implemented answer UNIMPLEMENTED."""
