"""grpc.aio server factory and the interceptor every service runs behind.

`start_server` binds (port 0 in tests, the returned port is the bound one), registers the standard
health and reflection services, installs OpenTelemetry's server interceptor and the chassis
interceptor, and returns a handle whose `stop(grace)` shuts down gracefully.

The chassis interceptor, for every unary call: binds the CallContext (caller's mTLS identity,
bearer credential, idempotency key, request id), enforces a default deadline when the caller set
none, translates `ClearhouseError` into a google.rpc.Status with details, turns any other
exception into a bare INTERNAL (logged with its trace, never echoed to the caller), and records
RED metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from chassis import context as call_context
from chassis import errors, metrics, tls
from chassis.settings import ServiceSettings

log = logging.getLogger("chassis.grpc")

# Largest message a service accepts or sends (ledger batches of 1,000 transfers fit easily).
MESSAGE_BYTES_MAX = 8 * 1024 * 1024
SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
    ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)

Registration = tuple[Callable[[Any, grpc.aio.Server], None], object]


class ChassisInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Context binding, default deadline, error translation and RED metrics for unary calls."""

    def __init__(self, default_deadline_seconds: float) -> None:
        self._default_deadline_seconds = default_deadline_seconds

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        inner = handler.unary_unary
        deadline_default = self._default_deadline_seconds
        service_name, _, method_name = method.lstrip("/").rpartition("/")

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = {
                key.lower(): value
                for key, value in (context.invocation_metadata() or ())
                if isinstance(value, str)
            }
            bound = call_context.bind(
                call_context.CallContext.from_metadata(method, tls.peer_service(context), metadata)
            )
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                remaining = context.time_remaining()
                timeout = deadline_default if remaining is None else min(remaining, 3600.0)
                return await asyncio.wait_for(inner(request, context), timeout)
            except errors.ClearhouseError as error:
                code = error.code
                await context.abort_with_status(error.to_grpc_status())
            except TimeoutError:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                await context.abort_with_status(errors.DeadlineExceeded("deadline exceeded").to_grpc_status())
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[assignment]
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error in %s", method)
                await context.abort_with_status(errors.Internal("internal error").to_grpc_status())
            finally:
                call_context.reset(bound)
                labels = (service_name, method_name, code.name)
                metrics.RPC_SECONDS.labels(*labels).observe(time.perf_counter() - started)
                metrics.RPC_TOTAL.labels(*labels).inc()
            raise AssertionError("unreachable: abort_with_status raises")

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclasses.dataclass
class RunningServer:
    """A started server: its bound port, health servicer and graceful stop."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    service_names: tuple[str, ...]
    # Plaintext server carrying only the health service (CLEARHOUSE_HEALTH_PORT), for kubelet probes.
    health_server: grpc.aio.Server | None = None

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING / NOT_SERVING for every service (and the overall "" entry)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Report NOT_SERVING, let in-flight calls finish for `grace_seconds`, then stop."""
        await self.set_serving(False)
        await self.server.stop(grace_seconds)
        if self.health_server is not None:
            await self.health_server.stop(0)

    async def wait(self) -> None:
        """Wait until the server stops."""
        await self.server.wait_for_termination()


def service_full_name(module: Any, service: str) -> str:
    """Full name of `service` declared in a generated `_pb2` module."""
    return str(module.DESCRIPTOR.services_by_name[service].full_name)


async def start_server(
    settings: ServiceSettings,
    registrations: Sequence[Registration],
    service_names: Sequence[str],
    *,
    port: int | None = None,
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> RunningServer:
    """Start a grpc.aio server for `registrations` and return it with its bound port."""
    interceptors: list[grpc.aio.ServerInterceptor] = [
        aio_server_interceptor(),  # type: ignore[no-untyped-call]
        ChassisInterceptor(settings.default_deadline_seconds),
        *extra_interceptors,
    ]
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    for add, servicer in registrations:
        add(servicer, server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = tuple(service_names)
    reflection.enable_server_reflection(
        (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    address = f"{settings.grpc_host}:{settings.grpc_port if port is None else port}"
    if settings.plaintext:
        bound = server.add_insecure_port(address)
    else:
        identity = tls.ensure_identity(settings.certs_dir, settings.service_name)
        bound = server.add_secure_port(address, tls.server_credentials(identity))
    if bound == 0:
        raise OSError(f"could not bind {address}")
    await server.start()
    health_server = await _start_health_server(settings, health) if settings.health_port else None
    running = RunningServer(
        server=server, port=bound, health=health, service_names=names, health_server=health_server
    )
    await running.set_serving(True)
    log.info("gRPC server listening", extra={"address": address, "port": bound})
    return running


async def _start_health_server(
    settings: ServiceSettings, health: health_aio.HealthServicer
) -> grpc.aio.Server:
    """Serve `health` alone, in plaintext, on CLEARHOUSE_HEALTH_PORT (it reveals only SERVING or not)."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"{settings.grpc_host}:{settings.health_port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"could not bind {address}")
    await server.start()
    return server
