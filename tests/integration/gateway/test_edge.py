"""Edge behaviour of the gateway over real HTTP and real gRPC: limits, deadlines, cancellation,
headers, trace context, CORS, health, OpenAPI, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from limits import parse as parse_limit
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chassis import __version__, telemetry
from tests.conformance import support

EVENT_WAIT_SECONDS = 10.0


@contextlib.asynccontextmanager
async def stack(
    var_dir: pathlib.Path, **overrides: Any
) -> AsyncIterator[tuple[support.RunningGateway, support.Recorder, httpx.AsyncClient]]:
    async with support.running_backend(var_dir) as (backend, recorder):
        settings = support.gateway_settings(var_dir, **overrides)
        async with (
            support.running_gateway(settings, backend.address) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=20) as http,
        ):
            yield gateway, recorder, http


def bearer() -> dict[str, str]:
    return {"authorization": f"Bearer sk_test_{secrets.token_hex(8)}"}


# ---- Rate limits --------------------------------------------------------------------------------


async def test_rate_limit_per_api_key_in_memory(var_dir: pathlib.Path) -> None:
    async with stack(var_dir, rate_limit="3/minute") as (_gateway, _recorder, http):
        key = bearer()
        statuses = [(await http.get("/v1/kitchens/k", headers=key)).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await http.get("/v1/kitchens/k", headers=key)
        assert limited.status_code == 429
        body = limited.json()
        assert body["code"] == 8
        assert body["details"][0]["reason"] == "RATE_LIMITED"
        assert any(d["@type"].endswith("RetryInfo") for d in body["details"])
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["ratelimit-limit"] == "3"
        assert limited.headers["ratelimit-remaining"] == "0"
        assert "ratelimit-reset" in limited.headers
        # Another key has its own budget; the limited key's secret is nowhere in the response.
        other = await http.get("/v1/kitchens/k", headers=bearer())
        assert other.status_code == 200
        assert other.headers["ratelimit-limit"] == "3"
        assert other.headers["ratelimit-policy"] == "3;w=60"
        assert key["authorization"].split()[1] not in limited.text


@pytest.mark.redis
async def test_rate_limit_is_shared_through_redis(var_dir: pathlib.Path, redis_url: str) -> None:
    key = bearer()
    async with (
        stack(var_dir, rate_limit="3/minute", REDIS_URL=redis_url) as (gateway_a, _r, http_a),
        support.running_gateway(
            support.gateway_settings(var_dir, rate_limit="3/minute", REDIS_URL=redis_url),
            gateway_a.gateway.backend_address,
        ) as gateway_b,
        httpx.AsyncClient(base_url=gateway_b.url) as http_b,
    ):
        try:
            assert (await http_a.get("/v1/kitchens/k", headers=key)).status_code == 200
            assert (await http_b.get("/v1/kitchens/k", headers=key)).status_code == 200
            assert (await http_a.get("/v1/kitchens/k", headers=key)).status_code == 200
            limited = await http_b.get("/v1/kitchens/k", headers=key)
            assert limited.status_code == 429, "the second replica must see the first one's hits"
        finally:
            limiter = gateway_a.gateway.limiter
            assert limiter is not None
            item = parse_limit("3/minute")
            from gateway.edge import client_key

            await limiter.strategy.clear(item, client_key(key["authorization"], "127.0.0.1"))


async def test_rate_limiter_fails_open_when_redis_is_down(var_dir: pathlib.Path) -> None:
    async with stack(var_dir, rate_limit="3/minute", REDIS_URL="redis://127.0.0.1:1/0") as (
        _,
        recorder,
        http,
    ):
        response = await http.get("/v1/kitchens/k", headers=bearer())
        assert response.status_code == 200
        assert recorder.count("GetKitchen") == 1


# ---- Body size ----------------------------------------------------------------------------------


async def test_body_size_limit_declared_and_streamed(var_dir: pathlib.Path) -> None:
    async with stack(var_dir, body_bytes_max=2048) as (_gateway, recorder, http):
        big = b'{"f_string": "' + b"x" * 3000 + b'"}'
        declared = await http.post(
            "/v1/kitchens/k:echo", content=big, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert declared.json()["details"][0]["reason"] == "REQUEST_BODY_TOO_LARGE"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 500

        streamed = await http.post(
            "/v1/kitchens/k:echo", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert recorder.count("EchoKitchen") == 0
        fits = await http.post("/v1/kitchens/k:echo", json={"f_string": "x" * 1000})
        assert fits.status_code == 200


# ---- Deadlines and cancellation -----------------------------------------------------------------


async def wait_event(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), EVENT_WAIT_SECONDS)


async def test_default_deadline_gives_504_and_cancels_the_backend(var_dir: pathlib.Path) -> None:
    async with stack(var_dir, CLEARHOUSE_DEFAULT_DEADLINE_SECONDS=0.3) as (_gateway, recorder, http):
        token = secrets.token_hex(4)
        response = await http.post("/v1/slow", json={"delay_ms": 20_000, "token": token})
        assert response.status_code == 504
        body = response.json()
        assert body["code"] == 4
        assert body["details"][0]["reason"] == "DEADLINE_EXCEEDED"
        await wait_event(recorder.event(recorder.cancelled, token))


async def test_caller_timeout_is_honoured_and_capped(var_dir: pathlib.Path) -> None:
    async with stack(var_dir, deadline_seconds_max=0.5) as (_gateway, recorder, http):
        fast = await http.post("/v1/slow", json={"delay_ms": 1, "token": "a"}, headers={"grpc-timeout": "5S"})
        assert fast.status_code == 200
        token = secrets.token_hex(4)
        loop = asyncio.get_running_loop()
        started = loop.time()
        capped = await http.post(
            "/v1/slow", json={"delay_ms": 20_000, "token": token}, headers={"x-timeout": "120"}
        )
        assert capped.status_code == 504
        assert loop.time() - started < 10, "the 120 s asked for must be capped at 0.5 s"
        await wait_event(recorder.event(recorder.cancelled, token))
        token = secrets.token_hex(4)
        short = await http.post(
            "/v1/slow", json={"delay_ms": 20_000, "token": token}, headers={"grpc-timeout": "100m"}
        )
        assert short.status_code == 504
        for bad in ("soon", "-1", "0S", "123456789S"):
            malformed = await http.post("/v1/slow", json={"delay_ms": 1}, headers={"x-timeout": bad})
            assert malformed.status_code == 400, bad
            violation = next(d for d in malformed.json()["details"] if d["@type"].endswith("BadRequest"))
            assert violation["field_violations"][0]["field"] == "X-Timeout"


async def test_client_disconnect_cancels_the_backend_call(var_dir: pathlib.Path) -> None:
    # A deadline far beyond the wait below: only the disconnect can cancel the call in time.
    async with stack(var_dir, CLEARHOUSE_DEFAULT_DEADLINE_SECONDS=120) as (gateway, recorder, _http):
        token = secrets.token_hex(4)
        body = f'{{"delay_ms": 30000, "token": "{token}"}}'.encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(
            b"POST /v1/slow HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        await wait_event(recorder.event(recorder.started, token))
        writer.close()
        await writer.wait_closed()
        await wait_event(recorder.event(recorder.cancelled, token))
        del reader


# ---- Headers ------------------------------------------------------------------------------------


async def test_header_allowlist_and_response_headers(var_dir: pathlib.Path) -> None:
    async with stack(var_dir) as (_gateway, recorder, http):
        sent = {
            "authorization": "Bearer sk_test_abc",
            "idempotency-key": "key-1",
            "x-request-id": "req-from-client.1",
            "provider-signature": "t=1,v1=ab",
            "x-forwarded-for": "6.6.6.6",
            "connection": "keep-alive",
            "te": "trailers",
            "cookie": "session=1",
            "x-clearhouse-principal": "platform-admin",
            "x-peer-service": "vault",
            "x-internal-identity": "payments",
            "grpc-internal-encoding-request": "gzip",
        }
        response = await http.post("/v1/kitchens/k:echo", json={}, headers=sent)
        assert response.status_code == 200
        received = recorder.last("EchoKitchen")
        assert received.peer_service == "gateway", "the backend sees the gateway's mTLS identity"
        metadata = received.metadata
        assert metadata["authorization"] == "Bearer sk_test_abc"
        assert metadata["idempotency-key"] == "key-1"
        assert metadata["x-request-id"] == "req-from-client.1"
        assert metadata["provider-signature"] == "t=1,v1=ab"
        # Not trusted from the client (no proxy configured): the socket peer.
        assert metadata["x-forwarded-for"] == "127.0.0.1"
        for forbidden in (
            "connection",
            "te",
            "cookie",
            "x-clearhouse-principal",
            "x-peer-service",
            "x-internal-identity",
        ):
            assert forbidden not in metadata, forbidden
        assert response.headers["x-request-id"] == "req-from-client.1"
        assert "idempotent-replayed" not in response.headers
        assert response.headers["cache-control"] == "no-store"

        generated = await http.get("/v1/kitchens/k")
        assert generated.headers["x-request-id"].startswith("req_")
        assert recorder.last("GetKitchen").metadata["x-request-id"] == generated.headers["x-request-id"]


async def test_trusted_proxy_chain_gives_the_client_address(var_dir: pathlib.Path) -> None:
    async with stack(var_dir, trusted_proxy_count=1) as (_gateway, recorder, http):
        await http.get("/v1/kitchens/k", headers={"x-forwarded-for": "203.0.113.9, 10.0.0.1"})
        assert recorder.last("GetKitchen").metadata["x-forwarded-for"] == "10.0.0.1"


@pytest.mark.parametrize("where", ["initial", "trailing"])
async def test_idempotent_replay_is_marked(var_dir: pathlib.Path, where: str) -> None:
    async with stack(var_dir) as (_gateway, _recorder, http):
        response = await http.post(
            "/v1/kitchens/k:echo", json={}, headers={"idempotency-key": f"replay-{where}-1"}
        )
        assert response.status_code == 200
        assert response.headers["idempotent-replayed"] == "true"
        assert "x-internal" not in response.headers, "only allowlisted metadata becomes a header"


@pytest.mark.parametrize(
    ("header", "value", "field"),
    [
        ("idempotency-key", "k" * 256, "Idempotency-Key"),
        ("idempotency-key", "key\twith-tab", "Idempotency-Key"),
        ("x-request-id", "has spaces in it", "X-Request-Id"),
        ("x-request-id", "r" * 129, "X-Request-Id"),
    ],
)
async def test_invalid_forwarded_headers_are_400(
    var_dir: pathlib.Path, header: str, value: str, field: str
) -> None:
    async with stack(var_dir) as (_gateway, recorder, http):
        response = await http.post("/v1/kitchens/k:echo", json={}, headers={header: value})
        assert response.status_code == 400
        violation = next(d for d in response.json()["details"] if d["@type"].endswith("BadRequest"))
        assert violation["field_violations"][0]["field"] == field
        assert recorder.count("EchoKitchen") == 0


async def test_idempotency_key_of_255_characters_is_forwarded(var_dir: pathlib.Path) -> None:
    async with stack(var_dir) as (_gateway, recorder, http):
        key = "k" * 255
        response = await http.post("/v1/kitchens/k:echo", json={}, headers={"idempotency-key": key})
        assert response.status_code == 200
        assert recorder.last("EchoKitchen").metadata["idempotency-key"] == key


async def test_non_ascii_authorization_is_400(var_dir: pathlib.Path) -> None:
    async with stack(var_dir) as (_gateway, _recorder, http):
        response = await http.get(
            "/v1/kitchens/k", headers={"authorization": "Bearer sk_\xe9".encode("latin-1")}
        )
        assert response.status_code == 400


# ---- Trace context --------------------------------------------------------------------------------


async def test_gateway_span_is_parent_of_the_backend_span(var_dir: pathlib.Path) -> None:
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing(
        "gateway",
        version=__version__,
        environment="test",
        var_dir=var_dir,
        exporter=exporter,
        synchronous=True,
    )
    try:
        async with stack(var_dir) as (_gateway, recorder, http):
            incoming_trace = secrets.token_hex(16)
            incoming_span = secrets.token_hex(8)
            response = await http.get(
                "/v1/shelves/s1/kitchens/k1",
                headers={
                    "traceparent": f"00-{incoming_trace}-{incoming_span}-01",
                    "baggage": "tenant=acme",
                },
            )
            assert response.status_code == 200
            assert response.headers["traceparent"].split("-")[1] == incoming_trace
            metadata = recorder.last("GetKitchen").metadata
            assert metadata["traceparent"].split("-")[1] == incoming_trace
            assert "tenant=acme" in metadata.get("baggage", "")

            def finished() -> list[Any]:
                return [
                    s
                    for s in exporter.get_finished_spans()
                    if format(s.context.trace_id, "032x") == incoming_trace
                ]

            deadline = asyncio.get_running_loop().time() + EVENT_WAIT_SECONDS
            while len(finished()) < 3 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            spans = finished()
            server = next(
                s
                for s in spans
                if s.attributes.get("http.route") == "/v1/shelves/{nested.name}/kitchens/{id}"
            )
            assert server.name == "GET /v1/shelves/{nested.name}/kitchens/{id}"
            assert format(server.parent.span_id, "016x") == incoming_span
            assert response.headers["traceparent"].split("-")[2] == format(server.context.span_id, "016x")
            client = next(s for s in spans if s.kind.name == "CLIENT")
            backend = next(s for s in spans if s.kind.name == "SERVER" and s is not server)
            assert client.parent.span_id == server.context.span_id
            assert backend.parent.span_id == client.context.span_id
    finally:
        # The provider is process-wide: stop this exporter collecting other tests' spans.
        exporter.shutdown()


# ---- CORS, health, OpenAPI, docs, metrics ---------------------------------------------------------


async def test_cors_preflight_and_exposed_headers(var_dir: pathlib.Path) -> None:
    origin = "https://shop.example"
    async with stack(var_dir, cors_allow_origins=[origin]) as (_gateway, _recorder, http):
        preflight = await http.options(
            "/v1/kitchens/k:echo",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, idempotency-key, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        response = await http.get("/v1/kitchens/k", headers={"origin": origin})
        assert response.headers["access-control-allow-origin"] == origin
        assert "x-request-id" in response.headers["access-control-expose-headers"]
        other = await http.options(
            "/v1/kitchens/k",
            headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
        )
        assert other.status_code == 400


async def test_healthz_and_readyz_follow_the_backend(var_dir: pathlib.Path) -> None:
    async with support.running_backend(var_dir) as (backend, _recorder):
        settings = support.gateway_settings(var_dir)
        async with (
            support.running_gateway(settings, backend.address) as gateway,
            httpx.AsyncClient(base_url=gateway.url) as http,
        ):
            healthz = await http.get("/healthz")
            assert healthz.json() == {"status": "ok"}
            assert healthz.headers["x-request-id"].startswith("req_")
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            await backend.server.set_serving(False)
            not_ready = await http.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["details"][0]["reason"] == "BACKEND_NOT_READY"
            assert (await http.get("/healthz")).status_code == 200


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


async def test_openapi_document_from_the_route_table(var_dir: pathlib.Path) -> None:
    async with stack(var_dir) as (gateway, _recorder, http):
        document = (await http.get("/openapi.json")).json()
        assert document["openapi"] == "3.1.0"
        operations = [op for path in document["paths"].values() for op in path.values()]
        ids = [op["operationId"] for op in operations]
        assert len(ids) == len(set(ids)) == len(gateway.gateway.bindings)
        schemas = document["components"]["schemas"]
        for ref in _refs(document):
            assert ref.startswith("#/components/")
            section, name = ref.split("/")[2:4]
            assert name in document["components"][section], ref
        create = document["paths"]["/v1/kitchens"]["post"]
        assert create["operationId"] == "KitchenService_CreateKitchen"
        assert create["summary"] == "Named body field: the JSON body is the `kitchen` field"
        assert {p["name"] for p in create["parameters"] if p["in"] == "query"} == {"request_note"}
        resource = document["paths"]["/v1/projects/{name_1}/locations/{name_2}/kitchens/{name_3}"]["get"]
        assert [p["name"] for p in resource["parameters"] if p["in"] == "path"] == [
            "name_1",
            "name_2",
            "name_3",
        ]
        get = document["paths"]["/v1/kitchens/{id}"]["get"]
        params = {p["name"]: p for p in get["parameters"]}
        assert params["r_string"]["schema"] == {"type": "array", "items": {"type": "string"}}
        assert params["ts"]["schema"]["format"] == "date-time"
        kitchen = schemas["gatewaytest.v1.Kitchen"]
        assert kitchen["additionalProperties"] is False
        assert kitchen["properties"]["f_int64"]["type"] == ["string", "integer"]
        assert kitchen["properties"]["color"]["enum"] == ["COLOR_UNSPECIFIED", "RED", "GREEN"]
        assert "at most one of choice_text, choice_nested, choice_number" in kitchen["description"]
        assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        upload = document["paths"]["/v1/buckets/{bucket}/objects"]["post"]
        assert upload["security"] == []
        echo = document["paths"]["/v1/kitchens/{id}:echo"]["post"]
        body_schema = echo["requestBody"]["content"]["application/json"]["schema"]
        assert "id" not in body_schema["properties"], "a path-bound field is not part of the body"
        assert "gatewaytest.v1.KitchenService.Internal" not in str(document)
        import schemathesis

        schemathesis.openapi.from_dict(document)  # loads as a valid OpenAPI 3.1 schema


async def test_docs_page_is_served_from_the_package(var_dir: pathlib.Path) -> None:
    async with stack(var_dir) as (_gateway, _recorder, http):
        page = await http.get("/docs")
        assert page.status_code == 200
        assert "/openapi.json" in (await http.get("/docs/static/init.js")).text
        for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
            assert asset in page.text
            served = await http.get(f"/docs/static/{asset}")
            assert served.status_code == 200
            assert len(served.content) > 1000
        assert (await http.get("/docs/static/../../settings.py")).status_code == 404
        assert "cdn" not in page.text.lower()


async def test_red_metrics_per_route_template(var_dir: pathlib.Path) -> None:
    async with stack(var_dir) as (_gateway, _recorder, http):
        await http.get("/v1/kitchens/metric-probe")
        text = (await http.get("/metrics")).text
        assert (
            'clearhouse_http_server_requests_total{method="GET",route="/v1/kitchens/{id}",status="200"}'
            in text
        )
        assert "metric-probe" not in text, "the route template, never the concrete path, labels metrics"
