"""A real provider simulator on port 0 (mTLS, real database) and a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import time
from collections.abc import AsyncIterator, Callable

import pytest
import uvicorn
from clearhouse.provider.v1 import provider_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chassis import channels
from chassis.service import RunningService, start
from provider_sim.bootstrap import build
from provider_sim.service_layer.handlers import ProviderService
from provider_sim.settings import ProviderSettings

POLL_SECONDS_MAX = 10.0
FUTURE_YEAR = 2099


@dataclasses.dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """Starlette app served by uvicorn on 127.0.0.1:0; answers 500 to the first `fail_first` posts."""

    def __init__(self) -> None:
        self.received: list[ReceivedWebhook] = []
        self.fail_first = 0
        self.server: uvicorn.Server | None = None
        self.port = 0

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(ReceivedWebhook(request.url.path, dict(request.headers), body))
        if self.fail_first > 0:
            self.fail_first -= 1
            return Response(status_code=500)
        return Response(status_code=200)

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/provider_webhooks/{{provider}}"

    async def wait_for(self, predicate: Callable[[list[ReceivedWebhook]], bool]) -> list[ReceivedWebhook]:
        deadline = time.monotonic() + POLL_SECONDS_MAX
        while not predicate(self.received):
            if time.monotonic() > deadline:
                raise AssertionError(f"webhooks not received in time; got {len(self.received)}")
            await asyncio.sleep(0.02)
        return self.received


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = Starlette(routes=[Route("/v1/provider_webhooks/{provider}", receiver._handle, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + POLL_SECONDS_MAX
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("webhook receiver did not start")
        await asyncio.sleep(0.01)
    receiver.server = server
    receiver.port = server.servers[0].sockets[0].getsockname()[1]
    yield receiver
    server.should_exit = True
    await task


@dataclasses.dataclass
class Provider:
    running: RunningService
    stub: provider_pb2_grpc.ProviderStub
    settings: ProviderSettings
    var_dir: pathlib.Path
    receiver: WebhookReceiver

    @property
    def service(self) -> ProviderService:
        service: ProviderService = self.running.definition.extras["service"]
        return service


def provider_settings(var_dir: pathlib.Path, database_url: str, webhook_url: str) -> ProviderSettings:
    return ProviderSettings(
        CLEARHOUSE_VAR_DIR=var_dir,
        CLEARHOUSE_ENV="test",
        database_url=database_url,
        grpc_port=0,
        latency_scale=0.0,
        webhook_url=webhook_url,
        chargeback_delay_seconds=0.0,
        worker_poll_seconds=0.05,
        webhook_retry_base_seconds=0.01,
    )


@pytest.fixture
async def provider(
    database_url: str, var_dir: pathlib.Path, receiver: WebhookReceiver
) -> AsyncIterator[Provider]:
    settings = provider_settings(var_dir, database_url, receiver.url_template)
    running = await start(settings, build, port=0)
    channel = channels.open_channel(running.address, settings, "payments")
    try:
        yield Provider(running, provider_pb2_grpc.ProviderStub(channel), settings, var_dir, receiver)
    finally:
        await channel.close()
        await running.stop(0)
