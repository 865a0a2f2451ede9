"""`python -m gateway`: serve the REST gateway with uvicorn."""

from __future__ import annotations

import uvicorn

from chassis import __version__, telemetry
from chassis.settings import SettingsError, load
from gateway.app import create_app
from gateway.settings import GatewaySettings


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
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            server_header=False,
        )
    finally:
        telemetry.shutdown_tracing()


if __name__ == "__main__":
    main()
