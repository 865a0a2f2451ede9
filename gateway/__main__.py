"""`python -m gateway`: serve the REST gateway with uvicorn (uvloop event loop, httptools parser)."""

from __future__ import annotations

import socket

import uvicorn

from chassis import __version__, telemetry
from chassis.service import write_port_file
from chassis.settings import SettingsError, load
from gateway.app import create_app
from gateway.settings import GatewaySettings

# Connections queued by the kernel before uvicorn accepts them.
LISTEN_BACKLOG = 2048


def main() -> None:
    """Load settings, set up telemetry and serve until interrupted."""
    try:
        settings: GatewaySettings = load(GatewaySettings)
    except SettingsError as error:
        raise SystemExit(f"configuration error: {error}") from None
    telemetry.setup_logging("gateway", settings.log_level)
    telemetry.setup_tracing(
        "gateway", version=__version__, environment=settings.environment.value, var_dir=settings.var_dir
    )
    telemetry.instrument_libraries()
    # Bind here (not in uvicorn) so that port 0 works and the bound port is recorded for tools.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(LISTEN_BACKLOG)
    write_port_file(settings.var_dir, "gateway", sock.getsockname()[1])
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        # The gateway reads X-Forwarded-For itself (trusted_proxy_count); uvicorn must not
        # rewrite the client address from it.
        proxy_headers=False,
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
        backlog=LISTEN_BACKLOG,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        telemetry.shutdown_tracing()


if __name__ == "__main__":
    main()
