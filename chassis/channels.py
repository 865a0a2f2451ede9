"""Client channels to other services: mTLS with this process's identity, traced, bounded."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from chassis import tls
from chassis.grpc_server import MESSAGE_BYTES_MAX
from chassis.settings import CommonSettings

CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
    ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.enable_retries", 0),
)


def open_channel(target: str, settings: CommonSettings, identity_name: str) -> grpc.aio.Channel:
    """An aio channel to `target` ("host:port"), secured by mTLS unless plaintext is configured.

    `identity_name` is the calling service's name: its certificate is what the callee sees.
    """
    interceptors = aio_client_interceptors()  # type: ignore[no-untyped-call]
    if settings.plaintext:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)
    identity = tls.ensure_identity(settings.certs_dir, identity_name)
    return grpc.aio.secure_channel(
        target, tls.channel_credentials(identity), options=CHANNEL_OPTIONS, interceptors=interceptors
    )
