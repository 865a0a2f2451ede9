"""gRPC entry point of the provider service: thin translation between protobuf and handlers."""

from __future__ import annotations

from clearhouse.provider.v1 import provider_pb2_grpc


class ProviderServicer(provider_pb2_grpc.ProviderServicer):
    """gRPC `clearhouse.provider.v1.Provider`; RPCs not yet implemented answer UNIMPLEMENTED."""
