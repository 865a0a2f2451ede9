"""Client side of the standard gRPC health service (readiness checks, runners, tests)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chassis.channels import open_channel
from chassis.settings import CommonSettings


async def check(channel: grpc.aio.Channel, service: str = "", timeout_seconds: float = 2.0) -> bool:
    """True when `service` ("" = the whole server) reports SERVING on `channel`."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_seconds)
    except grpc.aio.AioRpcError:
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


async def check_address(
    address: str, settings: CommonSettings, identity_name: str = "tools", timeout_seconds: float = 2.0
) -> bool:
    """Open a channel to `address`, check overall health, close it."""
    channel = open_channel(address, settings, identity_name)
    try:
        return await check(channel, timeout_seconds=timeout_seconds)
    finally:
        await channel.close()
