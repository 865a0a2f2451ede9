"""Small gRPC servers for chassis tests, built with generic handlers (no test protos needed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from chassis.grpc_server import Registration

Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


def generic_service(service: str, methods: dict[str, Handler]) -> Registration:
    """A registration for `start_server` exposing raw-bytes unary methods."""
    handler = grpc.method_handlers_generic_handler(
        service,
        {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in methods.items()},
    )

    def add(_servicer: Any, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((handler,))

    return (add, None)


async def call_raw(
    channel: grpc.aio.Channel,
    method: str,
    payload: bytes = b"",
    timeout: float = 5.0,
    metadata: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """Invoke `/service/method` with raw bytes."""
    callable_ = channel.unary_unary(method)
    return await callable_(payload, timeout=timeout, metadata=metadata)  # type: ignore[no-any-return]
