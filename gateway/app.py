"""The gateway's ASGI application."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.settings import GatewaySettings


async def healthz(_request: Request) -> JSONResponse:
    """Liveness of the gateway process itself."""
    return JSONResponse({"status": "ok"})


def create_app(settings: GatewaySettings) -> Starlette:
    """Build the gateway application for `settings`."""
    app = Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])
    app.state.settings = settings
    return app
