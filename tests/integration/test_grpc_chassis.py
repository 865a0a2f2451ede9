"""The chassis gRPC server: errors with rich details, deadlines, mTLS identity, telemetry."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import pathlib

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chassis import context, errors, telemetry, tls
from chassis.channels import open_channel
from chassis.grpc_server import start_server
from chassis.settings import ServiceSettings
from tests.support.grpc_testing import call_raw, generic_service


def make_settings(var_dir: pathlib.Path, name: str, *, plaintext: bool = False) -> ServiceSettings:
    class _Settings(ServiceSettings):
        service_name = name

    return _Settings(CLEARHOUSE_VAR_DIR=var_dir, CLEARHOUSE_PLAINTEXT=plaintext, grpc_port=0)


async def test_domain_errors_become_rich_statuses(var_dir: pathlib.Path) -> None:
    async def fail(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        raise errors.FailedPrecondition(
            "intent is not capturable",
            reason="PAYMENT_NOT_CAPTURABLE",
            field_violations=[errors.FieldViolation("amount_to_capture", "too large")],
            retry_after_seconds=1.5,
            metadata={"status": "CREATED"},
        )

    async def crash(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        raise RuntimeError("secret internal detail 4242424242424242")

    settings = make_settings(var_dir, "payments", plaintext=True)
    server = await start_server(settings, [generic_service("t.S", {"Fail": fail, "Crash": crash})], ["t.S"])
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call_raw(channel, "/t.S/Fail")
        remote = errors.from_rpc_error(caught.value)
        assert remote.code is grpc.StatusCode.FAILED_PRECONDITION
        assert remote.reason == "PAYMENT_NOT_CAPTURABLE"
        assert remote.metadata == {"status": "CREATED"}
        assert remote.field_violations == (errors.FieldViolation("amount_to_capture", "too large"),)
        assert remote.retry_after_seconds == pytest.approx(1.5)
        assert isinstance(remote.to_error(), errors.FailedPrecondition)

        with pytest.raises(grpc.aio.AioRpcError) as crashed:
            await call_raw(channel, "/t.S/Crash")
        assert crashed.value.code() is grpc.StatusCode.INTERNAL
        assert "secret" not in (crashed.value.details() or "")
        assert errors.from_rpc_error(crashed.value).reason == "INTERNAL"
    finally:
        await channel.close()
        await server.stop(0)


async def test_default_deadline_applies_when_the_caller_sets_none(var_dir: pathlib.Path) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b""

    settings = make_settings(var_dir, "ledger", plaintext=True)
    settings.default_deadline_seconds = 0.3
    server = await start_server(settings, [generic_service("t.S", {"Slow": slow})], ["t.S"])
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/t.S/Slow")(b"")  # no timeout from the caller
        assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert started.is_set() and cancelled.is_set()
    finally:
        await channel.close()
        await server.stop(0)


async def test_mtls_rejects_callers_without_certificates_and_names_the_rest(var_dir: pathlib.Path) -> None:
    seen: list[str | None] = []

    async def whoami(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        seen.append(context.current().peer_service)
        return (context.current().peer_service or "").encode()

    settings = make_settings(var_dir, "vault")
    server = await start_server(settings, [generic_service("t.S", {"WhoAmI": whoami})], ["t.S"])
    address = f"127.0.0.1:{server.port}"
    try:
        # No client certificate at all (but trusting the CA): the handshake is refused.
        ca_only = grpc.ssl_channel_credentials(root_certificates=(var_dir / "certs" / "ca.pem").read_bytes())
        anonymous = grpc.aio.secure_channel(address, ca_only)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call_raw(anonymous, "/t.S/WhoAmI", timeout=3)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        await anonymous.close()

        # Plaintext against a TLS server: refused too.
        plain = grpc.aio.insecure_channel(address)
        with pytest.raises(grpc.aio.AioRpcError):
            await call_raw(plain, "/t.S/WhoAmI", timeout=3)
        await plain.close()

        # A certificate from another CA: refused.
        stranger = tls.ensure_identity(var_dir / "other-ca", "payments")
        foreign = grpc.aio.secure_channel(
            address,
            grpc.ssl_channel_credentials(
                root_certificates=(var_dir / "certs" / "ca.pem").read_bytes(),
                private_key=stranger.private_key_pem,
                certificate_chain=stranger.certificate_pem,
            ),
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await call_raw(foreign, "/t.S/WhoAmI", timeout=3)
        await foreign.close()

        payments = open_channel(address, settings, "payments")
        assert await call_raw(payments, "/t.S/WhoAmI") == b"payments"
        await payments.close()
        assert seen == ["payments"]
    finally:
        await server.stop(0)


async def test_one_trace_across_a_hop_and_logs_carry_its_id(var_dir: pathlib.Path) -> None:
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing(
        "test", version="0", environment="test", var_dir=var_dir, exporter=exporter, synchronous=True
    )
    stream = io.StringIO()
    handler = telemetry.setup_logging("test", "INFO", stream)
    settings_b = make_settings(var_dir, "ledger")
    settings_a = make_settings(var_dir, "payments")

    async def leaf(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        return b"leaf"

    server_b = await start_server(settings_b, [generic_service("t.B", {"Leaf": leaf})], ["t.B"])
    channel_to_b = open_channel(f"127.0.0.1:{server_b.port}", settings_a, "payments")

    async def front(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        logging.getLogger("test.front").info("handling front")
        return await call_raw(channel_to_b, "/t.B/Leaf")

    server_a = await start_server(settings_a, [generic_service("t.A", {"Front": front})], ["t.A"])
    client = open_channel(f"127.0.0.1:{server_a.port}", settings_a, "tools")
    try:
        exporter.clear()
        assert await call_raw(client, "/t.A/Front") == b"leaf"
    finally:
        await client.close()
        await channel_to_b.close()
        await server_a.stop(0)
        await server_b.stop(0)
        logging.getLogger().removeHandler(handler)

    front_server = next(
        s for s in exporter.get_finished_spans() if s.name == "/t.A/Front" and s.kind is trace.SpanKind.SERVER
    )
    leaf_client = next(
        s for s in exporter.get_finished_spans() if s.name == "/t.B/Leaf" and s.kind is trace.SpanKind.CLIENT
    )
    leaf_server = next(
        s for s in exporter.get_finished_spans() if s.name == "/t.B/Leaf" and s.kind is trace.SpanKind.SERVER
    )
    trace_id = front_server.context.trace_id
    assert leaf_client.context.trace_id == trace_id == leaf_server.context.trace_id
    assert leaf_client.parent is not None and leaf_client.parent.span_id == front_server.context.span_id
    assert leaf_server.parent is not None and leaf_server.parent.span_id == leaf_client.context.span_id

    lines = [json.loads(line) for line in stream.getvalue().splitlines() if "handling front" in line]
    assert len(lines) == 1
    assert lines[0]["trace_id"] == format(trace_id, "032x")
    assert lines[0]["span_id"] == format(front_server.context.span_id, "016x")


async def test_trace_file_is_otlp_json_with_hex_ids(var_dir: pathlib.Path) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    path = var_dir / "traces" / "unit.jsonl"
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}))
    provider.add_span_processor(SimpleSpanProcessor(telemetry.JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child"):
        pass
    provider.shutdown()
    spans = [
        span
        for line in path.read_text().splitlines()
        for resource_spans in json.loads(line)["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    ]
    by_name = {span["name"]: span for span in spans}
    assert by_name["parent"]["traceId"] == format(parent.get_span_context().trace_id, "032x")
    assert by_name["child"]["parentSpanId"] == format(parent.get_span_context().span_id, "016x")
    assert by_name["child"]["traceId"] == by_name["parent"]["traceId"]
