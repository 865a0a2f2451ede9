"""gRPC entry point of the vault service: thin translation between protobuf and handlers."""

from __future__ import annotations

from clearhouse.vault.v1 import vault_pb2_grpc


class VaultServicer(vault_pb2_grpc.VaultServicer):
    """gRPC `clearhouse.vault.v1.Vault`; RPCs not yet implemented answer UNIMPLEMENTED."""
