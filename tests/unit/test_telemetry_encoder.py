"""The lean OTLP/JSON span encoder writes exactly what the protobuf reference path writes."""

from __future__ import annotations

import json
import pathlib

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from chassis import telemetry


def _spans() -> list[ReadableSpan]:
    """Spans of every shape: kinds, attribute types, events, links, statuses, remote parents."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "unit", "replica": 3}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("encoder-test", "1.2.3", schema_url="https://example.test/schema")
    other = provider.get_tracer("other-scope")
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value"), ("other", "x")]),
    )
    attributes = {
        "text": "value",
        "empty": "",
        "flag": False,
        "count": 0,
        "big": 2**62,
        "negative": -7,
        "ratio": 1.5,
        "whole": 2.0,
        "infinite": float("inf"),
        "texts": ["a", "b"],
        "numbers": [1, 2, 3],
        "floats": [0.5, 1.0],
        "flags": [True, False],
        "none": [],
    }
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes=attributes) as root:
        root.add_event("event", {"n": 1, "s": "x"})
        root.add_event("bare")
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "it failed"))
        with other.start_as_current_span("ok", kind=SpanKind.PRODUCER) as ok:
            ok.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span(
        "remote child",
        context=trace.set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.CONSUMER,
        links=[Link(remote, {"link": "attribute"}), Link(root.get_span_context())],
    ):
        pass
    with tracer.start_as_current_span("", kind=SpanKind.INTERNAL):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_lean_document_equals_the_protobuf_reference() -> None:
    spans = _spans()
    assert len(spans) == 5
    lean = telemetry.otlp_json_document(spans)
    reference = telemetry._reference_document(spans)
    # Compare as serialised JSON so that int/str or list/absent differences cannot hide.
    assert json.dumps(lean, sort_keys=True) == json.dumps(reference, sort_keys=True)
    assert telemetry.otlp_json_document([]) == telemetry._reference_document([])


def test_exporter_falls_back_to_the_reference_for_unknown_values(tmp_path: pathlib.Path) -> None:
    spans = _spans()
    # An attribute type the lean encoder does not handle: the reference path decides the line
    # (it logs and drops the bad attribute), so the export still succeeds.
    spans[0]._attributes = {**dict(spans[0].attributes or {}), "odd": object()}  # type: ignore[attr-defined]
    exporter = telemetry.JsonLinesSpanExporter(tmp_path / "spans.jsonl")
    exporter.export(spans)
    (line,) = (tmp_path / "spans.jsonl").read_text().splitlines()
    names = [
        span["name"]
        for resource in json.loads(line)["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
        if "name" in span
    ]
    assert sorted(names) == ["child", "ok", "remote child", "root"]
