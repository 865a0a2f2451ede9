"""Container health check for docker compose: `grpc HOST:PORT` or `http URL`; exit 0 when healthy.

Compose has no native gRPC check, so the image runs this against the plaintext health-only port
(CLEARHOUSE_HEALTH_PORT) of a gRPC process, or the gateway's /healthz. Kubernetes does not need
it: kubelet's native grpc and httpGet probes do the same.
"""

from __future__ import annotations

import sys
import urllib.request

TIMEOUT_SECONDS = 3.0


def grpc_serving(address: str) -> bool:
    """True when the standard health service at `address` (plaintext) reports SERVING."""
    import grpc  # noqa: PLC0415 - only this branch needs grpc; the http check stays light.
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT_SECONDS
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str) -> bool:
    """True when `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - fixed local URL
            return bool(response.status == 200)
    except OSError:
        return False


def main(argv: list[str]) -> int:
    """Entry point: `healthcheck.py grpc 127.0.0.1:8081` or `healthcheck.py http http://…/healthz`."""
    if len(argv) != 2 or argv[0] not in {"grpc", "http"}:
        print("usage: healthcheck.py grpc HOST:PORT | http URL", file=sys.stderr)
        return 2
    kind, target = argv
    healthy = grpc_serving(target) if kind == "grpc" else http_ok(target)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
