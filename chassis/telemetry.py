"""OpenTelemetry set-up for every process: traces, metrics and JSON logs carrying trace ids.

Traces go to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific variable) is set —
the standard OTel variables are honoured by the exporter itself — and otherwise to
`var/traces/<service>.jsonl`, one OTLP-JSON ExportTraceServiceRequest per line, which any OTLP
tool can read. Resource attributes: service.name, service.version, deployment.environment.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import pathlib
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind

_configured_lock = threading.Lock()
_configured = False


class JsonLinesSpanExporter(SpanExporter):
    """Writes spans as OTLP JSON (one ExportTraceServiceRequest per line) to a file."""

    def __init__(self, path: pathlib.Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            document = otlp_json_document(spans)
        except Exception:  # an attribute value the lean encoder does not know: the reference path
            document = _reference_document(spans)
        line = json.dumps(document, separators=(",", ":"))
        with self._lock, self._path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the file is opened per export."""


# OTLP/JSON differs from protobuf's canonical JSON in one place: trace and span ids are hex
# strings, not base64 (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def _reference_document(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """OTLP JSON through the official protobuf encoder and MessageToDict (slow; the reference)."""
    document = json_format.MessageToDict(encode_spans(spans))
    _hex_ids(document)
    return document


# The lean encoder below builds the same document as `_reference_document` straight from the SDK
# spans. Profiling the services under load showed the protobuf round trip (encode_spans, then
# MessageToDict's reflection walk) costing about a quarter of each process's CPU; plain dicts
# cost a fraction of that. Rules of protobuf's canonical JSON that it reproduces: 64-bit
# integers (times, intValue) as strings, enums by name, scalar fields at their zero value
# omitted (but oneof members such as AnyValue's always printed), bytes as base64 — except ids,
# which OTLP/JSON writes as hex. tests/unit/test_telemetry_encoder.py checks it against the
# reference on spans of every shape.
_SPAN_KIND_NAMES = {
    SpanKind.INTERNAL: "SPAN_KIND_INTERNAL",
    SpanKind.SERVER: "SPAN_KIND_SERVER",
    SpanKind.CLIENT: "SPAN_KIND_CLIENT",
    SpanKind.PRODUCER: "SPAN_KIND_PRODUCER",
    SpanKind.CONSUMER: "SPAN_KIND_CONSUMER",
}
_STATUS_CODE_NAMES = {1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}
# SpanFlags: bit 8 says whether the parent's remoteness is known (always, here), bit 9 that it is.
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200


def _json_value(value: Any) -> dict[str, Any]:
    """An AnyValue as canonical JSON (bool before int: bool is an int in Python)."""
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if value is None:
        return {}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Sequence):
        values = [_json_value(item) for item in value]
        return {"arrayValue": {"values": values} if values else {}}
    if isinstance(value, Mapping):
        pairs = [_json_key_value(str(key), item) for key, item in value.items()]
        return {"kvlistValue": {"values": pairs} if pairs else {}}
    raise TypeError(f"unsupported attribute type {type(value).__name__}")


def _json_key_value(key: str, value: Any) -> dict[str, Any]:
    pair: dict[str, Any] = {"key": key} if key else {}
    pair["value"] = _json_value(value)
    return pair


def _json_attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not attributes:
        return []
    return [_json_key_value(key, value) for key, value in attributes.items()]


def _span_flags(parent: SpanContext | None) -> int:
    return (
        _FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE
        if parent is not None and parent.is_remote
        else _FLAGS_HAS_IS_REMOTE
    )


def _json_span(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None, "an ended SDK span always has a context"
    document: dict[str, Any] = {
        "traceId": format(context.trace_id, "032x"),
        "spanId": format(context.span_id, "016x"),
    }
    trace_state = ",".join(f"{key}={value}" for key, value in context.trace_state.items())
    if trace_state:
        document["traceState"] = trace_state
    parent = span.parent
    if parent is not None:
        document["parentSpanId"] = format(parent.span_id, "016x")
    if span.name:
        document["name"] = span.name
    document["kind"] = _SPAN_KIND_NAMES[span.kind]
    if span.start_time:
        document["startTimeUnixNano"] = str(span.start_time)
    if span.end_time:
        document["endTimeUnixNano"] = str(span.end_time)
    attributes = _json_attributes(span.attributes)
    if attributes:
        document["attributes"] = attributes
    if span.dropped_attributes:
        document["droppedAttributesCount"] = span.dropped_attributes
    if span.events:
        document["events"] = [_json_event(event) for event in span.events]
    if span.dropped_events:
        document["droppedEventsCount"] = span.dropped_events
    if span.links:
        document["links"] = [_json_link(link) for link in span.links]
    if span.dropped_links:
        document["droppedLinksCount"] = span.dropped_links
    status = span.status
    if status is not None:
        encoded_status: dict[str, Any] = {}
        if status.description:
            encoded_status["message"] = status.description
        code = _STATUS_CODE_NAMES.get(status.status_code.value)
        if code:
            encoded_status["code"] = code
        document["status"] = encoded_status
    document["flags"] = _span_flags(parent)
    return document


def _json_event(event: Event) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if event.timestamp:
        document["timeUnixNano"] = str(event.timestamp)
    if event.name:
        document["name"] = event.name
    attributes = _json_attributes(event.attributes)
    if attributes:
        document["attributes"] = attributes
    if event.dropped_attributes:
        document["droppedAttributesCount"] = event.dropped_attributes
    return document


def _json_link(link: Link) -> dict[str, Any]:
    document: dict[str, Any] = {
        "traceId": format(link.context.trace_id, "032x"),
        "spanId": format(link.context.span_id, "016x"),
    }
    attributes = _json_attributes(link.attributes)
    if attributes:
        document["attributes"] = attributes
    if link.dropped_attributes:
        document["droppedAttributesCount"] = link.dropped_attributes
    document["flags"] = _span_flags(link.context)
    return document


def _json_scope(scope: InstrumentationScope | None) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if scope is None:
        return document
    if scope.name:
        document["name"] = scope.name
    if scope.version:
        document["version"] = scope.version
    attributes = _json_attributes(scope.attributes)
    if attributes:
        document["attributes"] = attributes
    return document


def otlp_json_document(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """One ExportTraceServiceRequest as OTLP JSON (grouped by resource, then scope, in order)."""
    grouped: dict[Resource, dict[InstrumentationScope | None, list[dict[str, Any]]]] = {}
    for span in spans:
        by_scope = grouped.setdefault(span.resource, {})
        by_scope.setdefault(span.instrumentation_scope or None, []).append(_json_span(span))
    resource_spans: list[dict[str, Any]] = []
    for resource, by_scope in grouped.items():
        scope_spans: list[dict[str, Any]] = []
        for scope, encoded in by_scope.items():
            entry: dict[str, Any] = {"scope": _json_scope(scope), "spans": encoded}
            if scope is not None and scope.schema_url:
                entry["schemaUrl"] = scope.schema_url
            scope_spans.append(entry)
        resource_attributes = _json_attributes(resource.attributes)
        resource_entry: dict[str, Any] = {
            "resource": {"attributes": resource_attributes} if resource_attributes else {},
            "scopeSpans": scope_spans,
        }
        if resource.schema_url:
            resource_entry["schemaUrl"] = resource.schema_url
        resource_spans.append(resource_entry)
    return {"resourceSpans": resource_spans} if resource_spans else {}


def _hex_ids(node: Any) -> None:
    """Rewrite base64 trace/span ids to hex in place, anywhere in an OTLP document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def _otlp_configured() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _otlp_exporter() -> SpanExporter:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    )
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter()


def setup_tracing(
    service_name: str,
    *,
    version: str,
    environment: str,
    var_dir: pathlib.Path,
    exporter: SpanExporter | None = None,
    synchronous: bool = False,
) -> TracerProvider:
    """Install the global TracerProvider once per process and return it.

    `exporter` overrides the choice (tests pass an in-memory exporter); `synchronous` exports each
    span as it ends (tests), otherwise spans are batched.
    """
    global _configured
    with _configured_lock:
        current = trace.get_tracer_provider()
        if _configured and isinstance(current, TracerProvider):
            if exporter is not None:
                current.add_span_processor(SimpleSpanProcessor(exporter))
            return current
        resource = Resource.create(
            {
                "service.name": os.environ.get("OTEL_SERVICE_NAME", service_name),
                "service.version": version,
                "deployment.environment": environment,
            }
        )
        provider = TracerProvider(resource=resource)
        if exporter is None:
            exporter = (
                _otlp_exporter()
                if _otlp_configured()
                else JsonLinesSpanExporter(var_dir / "traces" / f"{service_name}.jsonl")
            )
        processor = SimpleSpanProcessor(exporter) if synchronous else BatchSpanProcessor(exporter)
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _configured = True
        return provider


def shutdown_tracing() -> None:
    """Flush and stop the tracer provider (on process exit)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def instrument_libraries() -> None:
    """Turn on the official instrumentations for Redis and outgoing HTTP (httpx).

    gRPC is instrumented through explicit interceptors (chassis.grpc_server/channels) and
    SQLAlchemy per engine (chassis.db), so that each is configured in exactly one place.
    """
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415

    if not RedisInstrumentor().is_instrumented_by_opentelemetry:
        RedisInstrumentor().instrument()
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument()


# A run of 12-19 digits, possibly separated by spaces or dashes, that could be a PAN.
_PAN_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){11,18}\d(?!\d)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def redact_pans(text: str) -> str:
    """Replace anything that looks like a card number (12-19 digits passing Luhn) with a marker.

    Defence in depth: code never logs card data on purpose; this catches accidents.
    """

    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        return "[REDACTED]" if 12 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)

    return _PAN_CANDIDATE.sub(replace, text)


_STANDARD_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace_id, span_id, extras."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self._service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        span_context = trace.get_current_span().get_span_context()
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self._service_name,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if span_context.is_valid:
            payload["trace_id"] = format(span_context.trace_id, "032x")
            payload["span_id"] = format(span_context.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_FIELDS and not key.startswith("_"):
                payload[key] = value if isinstance(value, (int, float, bool)) else str(value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact_pans(json.dumps(payload, default=str))


def setup_logging(service_name: str, level: str = "INFO", stream: Any = None) -> logging.Handler:
    """Send every log record to `stream` (stderr) as JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service_name))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
