"""Process life cycle shared by every gRPC service: settings → telemetry → storage → server.

A service provides `build(settings) -> ServiceDefinition` (its servicers, the service names for
health/reflection, background workers, clean-up). `main()` is the `python -m <service>` entry
point; `start()` is the same in-process, for tests (bind port 0, read the bound port).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pathlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from chassis import __version__, metrics, telemetry
from chassis.grpc_server import Registration, RunningServer, start_server
from chassis.settings import ServiceSettings, SettingsError, load

log = logging.getLogger("chassis.service")

# How long in-flight calls get to finish on shutdown.
SHUTDOWN_GRACE_SECONDS = 5.0


@dataclasses.dataclass
class ServiceDefinition:
    """What a service contributes to the shared process life cycle."""

    registrations: Sequence[Registration]
    service_names: Sequence[str]
    # Long-running coroutines (workers); cancelled on shutdown.
    background: Sequence[Callable[[], Awaitable[None]]] = ()
    # Clean-up run after the server stopped (dispose engines, close channels).
    on_stop: Sequence[Callable[[], Awaitable[None]]] = ()
    # Anything the service wants tests to reach (its handlers, its engine).
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunningService:
    """A started service in this process."""

    settings: ServiceSettings
    server: RunningServer
    definition: ServiceDefinition
    tasks: list[asyncio.Task[None]]

    @property
    def port(self) -> int:
        """The bound gRPC port."""
        return self.server.port

    @property
    def address(self) -> str:
        """host:port to dial."""
        return f"{self.settings.grpc_host}:{self.server.port}"

    async def stop(self, grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop serving, cancel workers, run clean-ups."""
        await self.server.stop(grace_seconds)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for cleanup in self.definition.on_stop:
            await cleanup()


Builder = Callable[[Any], Awaitable[ServiceDefinition]]


async def start(settings: ServiceSettings, build: Builder, *, port: int | None = None) -> RunningService:
    """Build and start a service in this process (port 0 binds any free port)."""
    definition = await build(settings)
    server = await start_server(settings, definition.registrations, definition.service_names, port=port)
    tasks = [
        asyncio.create_task(_guard(worker), name=getattr(worker, "__name__", "worker"))
        for worker in definition.background
    ]
    return RunningService(settings=settings, server=server, definition=definition, tasks=tasks)


async def _guard(worker: Callable[[], Awaitable[None]]) -> None:
    """Run a worker; log (never swallow silently) a crash."""
    try:
        await worker()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background worker crashed", extra={"worker": getattr(worker, "__name__", "")})


def write_port_file(var_dir: pathlib.Path, service_name: str, port: int) -> pathlib.Path:
    """Record the bound port under var/run/ so runners and tests can find a port-0 service."""
    path = var_dir / "run" / f"{service_name}.port"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(f"{port}\n")
    temporary.replace(path)
    return path


async def _serve_forever(settings: ServiceSettings, build: Builder) -> None:
    running = await start(settings, build)
    write_port_file(settings.var_dir, settings.service_name, running.port)
    metrics.serve_metrics(settings.metrics_port, settings.metrics_host)
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_event.set)
    log.info("service started", extra={"port": running.port, "pid": os.getpid()})
    await stop_event.wait()
    log.info("service stopping")
    await running.stop()


def main(settings_class: type[ServiceSettings], build: Builder) -> None:
    """Entry point of `python -m <service>`."""
    try:
        settings = load(settings_class)
    except SettingsError as error:
        raise SystemExit(f"configuration error: {error}") from None
    telemetry.setup_logging(settings.service_name, settings.log_level)
    telemetry.setup_tracing(
        settings.service_name,
        version=__version__,
        environment=settings.environment.value,
        var_dir=settings.var_dir,
    )
    telemetry.instrument_libraries()
    try:
        asyncio.run(_serve_forever(settings, build))
    finally:
        telemetry.shutdown_tracing()
