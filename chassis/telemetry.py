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
import os
import pathlib
import re
import sys
import threading
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

_configured_lock = threading.Lock()
_configured = False


class JsonLinesSpanExporter(SpanExporter):
    """Writes spans as OTLP JSON (one ExportTraceServiceRequest per line) to a file."""

    def __init__(self, path: pathlib.Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        request = encode_spans(spans)
        document = json_format.MessageToDict(request)
        _hex_ids(document)
        line = json.dumps(document, separators=(",", ":"))
        with self._lock, self._path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the file is opened per export."""


# OTLP/JSON differs from protobuf's canonical JSON in one place: trace and span ids are hex
# strings, not base64 (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


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
