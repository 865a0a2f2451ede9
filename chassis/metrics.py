"""Prometheus metrics shared by every process: RED per RPC, plus a registry services add to.

One registry per process (the default one); `serve_metrics` exposes it on CLEARHOUSE_METRICS_PORT
for gRPC processes, and the gateway mounts it at /metrics.
"""

from __future__ import annotations

import prometheus_client

RPC_SECONDS = prometheus_client.Histogram(
    "clearhouse_rpc_server_duration_seconds",
    "Server-side duration of gRPC calls.",
    ["service", "method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RPC_TOTAL = prometheus_client.Counter(
    "clearhouse_rpc_server_requests_total",
    "gRPC calls handled, by final status code.",
    ["service", "method", "code"],
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Serve /metrics on `port` (0 = disabled); returns the port served or 0."""
    if port <= 0:
        return 0
    prometheus_client.start_http_server(port, addr=host)
    return port


def render() -> bytes:
    """The current metrics in Prometheus text format."""
    return prometheus_client.generate_latest()
