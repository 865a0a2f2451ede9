"""A test backend built from tests/conformance/protos and a real gateway in front of it.

The backend records every request message and its metadata, so a test can assert exactly what
the gateway sent; `Slow` records cancellation; `Fail` produces any status with any details. The
gateway runs under a real uvicorn server on port 0, reached over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvicorn
from google.api import httpbody_pb2
from google.protobuf import any_pb2, duration_pb2, empty_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from chassis import service
from chassis.grpc_server import Registration
from chassis.service import ServiceDefinition
from chassis.settings import ServiceSettings
from gateway.app import Gateway, create_app
from gateway.settings import GatewaySettings

PROTOS = pathlib.Path(__file__).resolve().parent / "protos"
if str(PROTOS) not in sys.path:
    sys.path.insert(0, str(PROTOS))

from gatewaytest.v1 import kitchen_pb2  # noqa: E402

SERVICE = "gatewaytest.v1.KitchenService"
PACKAGE = "gatewaytest.v1"
UNKNOWN_DETAIL_TYPE = "type.googleapis.com/gatewaytest.v1.NotInAnyPool"


class BackendSettings(ServiceSettings):
    """The test backend poses as the payments service (its certificate identity)."""

    service_name = "payments"


@dataclasses.dataclass
class Received:
    """One call the backend saw."""

    method: str
    request: Message
    metadata: dict[str, str]
    peer_service: str | None


@dataclasses.dataclass
class Recorder:
    """Everything the backend saw, and the state of its slow calls."""

    calls: list[Received] = dataclasses.field(default_factory=list)
    started: dict[str, asyncio.Event] = dataclasses.field(default_factory=dict)
    cancelled: dict[str, asyncio.Event] = dataclasses.field(default_factory=dict)

    def last(self, method: str) -> Received:
        """The most recent call of `method`."""
        for call in reversed(self.calls):
            if call.method == method:
                return call
        raise AssertionError(f"the backend never received {method}")

    def count(self, method: str) -> int:
        """How many calls of `method` arrived."""
        return sum(1 for call in self.calls if call.method == method)

    def event(self, table: dict[str, asyncio.Event], token: str) -> asyncio.Event:
        """The event for `token` (created on first use)."""
        return table.setdefault(token, asyncio.Event())


def _handlers(recorder: Recorder) -> dict[str, grpc.RpcMethodHandler]:
    from chassis import context as call_context

    methods = kitchen_pb2.DESCRIPTOR.services_by_name["KitchenService"].methods_by_name

    def record(name: str, request: Message, context: grpc.aio.ServicerContext) -> None:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        recorder.calls.append(Received(name, request, metadata, call_context.current().peer_service))

    async def replay_flags(request_metadata: dict[str, str], context: grpc.aio.ServicerContext) -> None:
        key = request_metadata.get("idempotency-key", "")
        if key.startswith("replay-initial"):
            await context.send_initial_metadata((("idempotent-replayed", "true"), ("x-internal", "secret")))
        if key.startswith("replay-trailing"):
            context.set_trailing_metadata((("idempotent-replayed", "true"), ("x-internal", "secret")))

    async def create(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("CreateKitchen", request, context)
        await replay_flags(recorder.calls[-1].metadata, context)
        return request.kitchen

    async def echo(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("EchoKitchen", request, context)
        await replay_flags(recorder.calls[-1].metadata, context)
        return request

    async def get(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("GetKitchen", request, context)
        return request

    async def internal(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("Internal", request, context)
        return request

    async def update(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("UpdateKitchen", request, context)
        return kitchen_pb2.UpdateKitchenResponse(kitchen=request.kitchen)

    async def resource(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("GetResource", request, context)
        return request

    async def delete(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("DeleteKitchen", request, context)
        return empty_pb2.Empty()

    async def upload(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("Upload", request, context)
        return kitchen_pb2.UploadResponse(
            bucket=request.bucket, content_type=request.body.content_type, data=request.body.data
        )

    async def download(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("Download", request, context)
        return httpbody_pb2.HttpBody(content_type="text/csv", data=f"name\n{request.name}\n".encode())

    async def slow(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("Slow", request, context)
        recorder.event(recorder.started, request.token).set()
        try:
            await asyncio.sleep(request.delay_ms / 1000)
        except asyncio.CancelledError:
            recorder.event(recorder.cancelled, request.token).set()
            raise
        return kitchen_pb2.SlowResponse(delay_ms=request.delay_ms)

    async def fail(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record("Fail", request, context)
        code = next(c for c in grpc.StatusCode if c.value[0] == request.code)
        if not request.reason:
            await context.abort(code, request.message)
        details = []
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=request.reason, domain="test"))
        details.append(info)
        if request.bad_field:
            bad = any_pb2.Any()
            bad.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=request.bad_field, description="bad"
                        )
                    ]
                )
            )
            details.append(bad)
        if request.retry_seconds:
            retry = any_pb2.Any()
            retry.Pack(
                error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=request.retry_seconds))
            )
            details.append(retry)
        if request.unknown_detail:
            details.append(any_pb2.Any(type_url=UNKNOWN_DETAIL_TYPE, value=b"\x08\x2a"))
        status = status_pb2.Status(code=request.code, message=request.message, details=details)
        await context.abort_with_status(rpc_status.to_status(status))

    functions = {
        "CreateKitchen": create,
        "EchoKitchen": echo,
        "GetKitchen": get,
        "UpdateKitchen": update,
        "GetResource": resource,
        "DeleteKitchen": delete,
        "Upload": upload,
        "Download": download,
        "Slow": slow,
        "Fail": fail,
        "Internal": internal,
    }
    from google.protobuf import message_factory

    handlers = {}
    for name, function in functions.items():
        method = methods[name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            function,
            request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString,
        )
    return handlers


def registration(recorder: Recorder) -> Registration:
    """The KitchenService registration, backed by `recorder`."""
    handler = grpc.method_handlers_generic_handler(SERVICE, _handlers(recorder))

    def add(_servicer: Any, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((handler,))

    return (add, None)


@contextlib.asynccontextmanager
async def running_backend(var_dir: pathlib.Path) -> AsyncIterator[tuple[service.RunningService, Recorder]]:
    """The KitchenService on port 0 (mTLS, chassis interceptor), with its recorder."""
    recorder = Recorder()

    async def build(_settings: BackendSettings) -> ServiceDefinition:
        return ServiceDefinition(registrations=[registration(recorder)], service_names=[SERVICE])

    settings = BackendSettings(CLEARHOUSE_VAR_DIR=var_dir, grpc_port=0)
    running = await service.start(settings, build)
    try:
        yield running, recorder
    finally:
        await running.stop(0)


def gateway_settings(var_dir: pathlib.Path, **overrides: Any) -> GatewaySettings:
    """Settings for a test gateway (test protos' sources for OpenAPI comments)."""
    values: dict[str, Any] = {
        "CLEARHOUSE_VAR_DIR": var_dir,
        "proto_source_dirs": [PROTOS],
        "packages": [PACKAGE],
        "port": 0,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@dataclasses.dataclass
class RunningGateway:
    """A gateway served by uvicorn on a real socket."""

    url: str
    port: int
    gateway: Gateway
    server: uvicorn.Server


@contextlib.asynccontextmanager
async def running_gateway(settings: GatewaySettings, backend_address: str) -> AsyncIterator[RunningGateway]:
    """Serve a gateway for `backend_address` on 127.0.0.1, port 0, in this event loop."""
    app = create_app(settings, backend_address=backend_address)
    gateway: Gateway = getattr(app, "gateway", app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        access_log=False,
        http="httptools",
        loop="asyncio",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not server.started:
            if task.done():
                task.result()
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("uvicorn did not start")
            await asyncio.sleep(0.01)
        yield RunningGateway(f"http://127.0.0.1:{port}", port, gateway, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()
