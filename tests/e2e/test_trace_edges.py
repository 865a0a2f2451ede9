"""Trace edges after a demo day (the opentelemetry-demo's idea), and a card-data canary scan.

The stack runs as `make run` runs it (tests/e2e/harness.py) with the chassis' default exporter:
every process writes OTLP/JSON to `var/traces/<process>.jsonl`. `make demo`'s day
(tools/demo.py) runs against it through the REST API, with its own webhook endpoint. After a
Ctrl-C (which flushes every exporter), the spans must contain each expected caller → callee edge,
the callee's span parented on the caller's:

- gateway → payments (gRPC client span → payments server span, under the gateway's HTTP span),
- payments → vault, payments → ledger, payments → provider (each under a confirm's trace),
- provider → gateway (the chargeback webhook: provider's HTTP client span → gateway's HTTP span
  → payments' ReceiveProviderWebhook),
- payments' webhook dispatcher → the merchant endpoint (the `traceparent` the endpoint received
  names the dispatcher's HTTP client span).

And no span, log line or service database holds a card number the day used, nor any CVC.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Iterable
from typing import Any

import pytest

from tests.e2e import harness
from tools.demo import DayResult, run_demo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SEED = 11
# Any CVC next to its name, in JSON, logfmt or repr form.
CVC_LEAK = re.compile(r"cvc[\"'\s:=\\]{0,6}\d{3,4}", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


def load_spans(traces: pathlib.Path) -> list[Span]:
    spans: list[Span] = []
    for path in sorted(traces.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            for resource in json.loads(line).get("resourceSpans", []):
                resource_attributes = attributes_of(resource["resource"].get("attributes", []))
                for scope in resource.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        spans.append(
                            Span(
                                service=str(resource_attributes["service.name"]),
                                name=span["name"],
                                kind=span["kind"],
                                trace_id=span["traceId"],
                                span_id=span["spanId"],
                                parent_id=span.get("parentSpanId", ""),
                                attributes=attributes_of(span.get("attributes", [])),
                            )
                        )
    return spans


def attributes_of(pairs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {pair["key"]: next(iter(pair["value"].values()), None) for pair in pairs}


class Graph:
    """Spans by id, with parent look-ups."""

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans
        self.by_id = {(s.trace_id, s.span_id): s for s in spans}

    def parent(self, span: Span) -> Span | None:
        return self.by_id.get((span.trace_id, span.parent_id)) if span.parent_id else None

    def servers(self, service: str, name: str) -> list[Span]:
        return [
            s for s in self.spans if s.service == service and s.kind == "SPAN_KIND_SERVER" and s.name == name
        ]

    def rpc_edges(self, caller: str, callee: str, method: str) -> list[tuple[Span, Span]]:
        """(caller's client span, callee's server span) pairs of `method`, parent-linked."""
        edges = []
        for server in self.servers(callee, method):
            client = self.parent(server)
            if (
                client
                and client.service == caller
                and client.kind == "SPAN_KIND_CLIENT"
                and client.name == method
            ):
                edges.append((client, server))
        return edges

    def ancestors(self, span: Span) -> list[Span]:
        chain = []
        current = self.parent(span)
        while current is not None and len(chain) < 64:
            chain.append(current)
            current = self.parent(current)
        return chain


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[DayResult, Graph, pathlib.Path]:
    workdir = tmp_path_factory.mktemp("clearhouse")
    with harness.running(workdir) as stack:
        result = run_demo(stack.gateway_url, stack.admin_key, SEED, log=lambda _line: None)
        assert stack.stop() == 0, stack.output()[-3000:]
        assert harness.processes_with_env(stack.marker) == []
    return result, Graph(load_spans(workdir / "var" / "traces")), workdir


CONFIRM = "/clearhouse.payments.v1.PaymentIntents/ConfirmPaymentIntent"


def test_the_demo_day_happened(day: tuple[DayResult, Graph, pathlib.Path]) -> None:
    result, _graph, _workdir = day
    providers = {i["provider"] for i in result.intents.values()}
    assert providers == {"provider_a", "provider_b"}
    assert {d["status"] for d in result.disputes} == {"WON", "LOST"}
    assert {r["status"] for r in result.refunds} == {"SUCCEEDED", "REJECTED"}
    assert any(r["mismatch_count"] > 0 for r in result.reconciliations if r["provider"] == "provider_a")
    assert result.payouts and all(p["status"] == "PAID" for p in result.payouts)
    assert result.deliveries and all(d.signature_valid for d in result.deliveries)


def test_gateway_to_payments(day: tuple[DayResult, Graph, pathlib.Path]) -> None:
    _result, graph, _workdir = day
    edges = graph.rpc_edges("gateway", "payments", CONFIRM)
    assert len(edges) >= len([i for i in _result.intents.values() if i.get("payment_method")])
    for client, _server in edges:
        http = graph.parent(client)
        assert http is not None and http.service == "gateway" and http.kind == "SPAN_KIND_SERVER"
        assert http.name == "POST /v1/payment_intents/{id}/confirm"


@pytest.mark.parametrize(
    ("callee", "method"),
    [
        ("vault", "/clearhouse.vault.v1.Vault/Tokenize"),
        ("ledger", "/clearhouse.ledger.v1.Ledger/CreateTransfers"),
        ("provider", "/clearhouse.provider.v1.Provider/Authorize"),
    ],
)
def test_payments_to_its_dependencies_under_the_merchants_request(
    day: tuple[DayResult, Graph, pathlib.Path], callee: str, method: str
) -> None:
    _result, graph, _workdir = day
    edges = graph.rpc_edges("payments", callee, method)
    assert edges, f"no payments → {callee} edge for {method}"
    under_confirm = 0
    for client, _server in edges:
        chain = graph.ancestors(client)
        names = [(s.service, s.kind, s.name) for s in chain]
        if ("payments", "SPAN_KIND_SERVER", CONFIRM) in names:
            # … whose trace starts at the merchant's HTTP request to the gateway.
            assert (
                chain[-1].service == "gateway" and chain[-1].name == "POST /v1/payment_intents/{id}/confirm"
            )
            under_confirm += 1
    assert under_confirm > 0, f"no {method} call inside a confirm's trace"


def test_provider_webhook_to_gateway_to_payments(day: tuple[DayResult, Graph, pathlib.Path]) -> None:
    _result, graph, _workdir = day
    received = graph.servers("gateway", "POST /v1/provider_webhooks/{provider}")
    assert received, "the chargeback webhook never reached the gateway"
    linked = 0
    for server in received:
        client = graph.parent(server)
        if client is None or client.service != "provider" or client.kind != "SPAN_KIND_CLIENT":
            continue
        assert str(client.attributes.get("http.url", "")).endswith("/v1/provider_webhooks/provider_a")
        downstream = [
            s
            for s in graph.servers(
                "payments", "/clearhouse.payments.v1.ProviderWebhooks/ReceiveProviderWebhook"
            )
            if server in graph.ancestors(s)
        ]
        assert downstream, "the gateway did not pass the webhook on to payments in the same trace"
        linked += 1
    assert linked > 0, "no gateway webhook span has the provider's HTTP client span as parent"


def test_webhook_dispatcher_to_merchant_endpoint(day: tuple[DayResult, Graph, pathlib.Path]) -> None:
    result, graph, _workdir = day
    assert result.deliveries
    for delivery in result.deliveries:
        version, trace_id, parent_id, _flags = delivery.traceparent.split("-")
        assert version == "00"
        client = graph.by_id.get((trace_id, parent_id))
        assert client is not None, f"delivery of {delivery.event_id}: its parent span was not exported"
        assert (client.service, client.kind) == ("payments", "SPAN_KIND_CLIENT")
        assert str(client.attributes.get("http.url", "")).endswith(delivery.path)


def test_no_card_number_or_cvc_anywhere(day: tuple[DayResult, Graph, pathlib.Path]) -> None:
    result, _graph, workdir = day
    var = workdir / "var"
    texts = [*var.glob("traces/*.jsonl"), *var.glob("logs/*.log"), workdir / "runner.out"]
    texts += [p for p in var.glob("settlements/**/*") if p.is_file()]
    assert len(texts) >= 11, texts
    pans = sorted(result.cards_used)
    assert len(pans) >= 15
    for path in texts:
        text = path.read_text(errors="replace")
        for pan in pans:
            assert pan not in text, f"{path.name} holds a card number"
        leak = CVC_LEAK.search(text)
        assert leak is None, f"{path.name}: {leak.group(0) if leak else ''}"
    # The services' own databases (the vault's holds ciphertext only).
    databases = [p for p in var.glob("*.db*") if p.is_file()]
    assert {p.name for p in databases} >= {"payments.db", "ledger.db", "provider.db", "vault.db"}
    for path in databases:
        data = path.read_bytes()
        for pan in pans:
            assert pan.encode() not in data, f"{path.name} holds a card number"
