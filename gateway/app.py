"""The gateway's ASGI application: HTTP/JSON in, one unary gRPC call out, JSON back.

A raw ASGI callable rather than a framework's router: the routes come from the descriptors (not
from decorators), the per-request work is precomputed per binding, and the benchmark showed the
framework layer costs more than it gives here (docs/gateway.md has the figures). Starlette is used
only for its CORS middleware, when CORS is configured.

Per request: route (404/405) → span (continuing the caller's trace) → rate limit (429) → headers
(400) → body with a size limit (413) and media type (415/406) → request message from path, query
and body (400 naming the field) → the backend call with a deadline, cancelled if the client goes
away → the response message (or its `response_body` field) as JSON, or a `google.rpc.Status`.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import grpc
import orjson
import prometheus_client
import swagger_ui_bundle
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from chassis import channels, health, metrics, tls
from chassis import context as call_context
from chassis.errors import status_from_rpc_error
from gateway import edge, errors, openapi, protojson, routes, templates
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway")

Scope = MutableMapping[str, Any]
Message_ = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message_]]
Send = Callable[[Message_], Awaitable[None]]

HTTP_SECONDS = prometheus_client.Histogram(
    "clearhouse_http_server_duration_seconds",
    "Gateway request duration by route template.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_TOTAL = prometheus_client.Counter(
    "clearhouse_http_server_requests_total",
    "Gateway requests by route template and status.",
    ["route", "method", "status"],
)
UNMATCHED_ROUTE = "unmatched"
# More query parameters than any request message could use is refused before parsing them.
QUERY_PARAMETERS_MAX = 200
JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
SWAGGER_ASSETS = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-32x32.png",
        "favicon-16x16.png",
    }
)
DOCS_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Clearhouse API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-ui-standalone-preset.js"></script>
<script src="/docs/static/init.js"></script>
</body></html>
"""
DOCS_INIT = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});
};
"""
_CONTENT_TYPES = {".css": b"text/css", ".js": b"text/javascript", ".png": b"image/png"}


class ClientDisconnected(Exception):
    """The client went away before the response was sent."""


class Gateway:
    """ASGI application transcoding the routes of `packages` to the gRPC backend at `backend_address`."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        packages: list[str] | None = None,
        backend_address: str | None = None,
        registry: protojson.CodecRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or protojson.default_registry
        self.packages = packages or list(settings.packages)
        self.backend_address = backend_address or settings.payments_address
        services = routes.load_services(self.packages)
        self.bindings = routes.build_bindings(services, self.registry)
        self.router = routes.Router(self.bindings)
        self.limiter = (
            edge.RateLimiter(settings.rate_limit, settings.redis_url) if settings.rate_limit_enabled else None
        )
        self.tracer = trace.get_tracer("gateway")
        self._channel: grpc.aio.Channel | None = None
        self._callables: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}
        self._deadlines: dict[str, float] = {}
        for binding in self.bindings:
            full_name = binding.method.full_name
            self._deadlines[binding.grpc_path] = min(
                settings.deadline_overrides_seconds.get(full_name, settings.default_deadline_seconds),
                settings.deadline_seconds_max,
            )
        self._openapi: bytes | None = None
        self._metric_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._static: dict[str, Callable[[], Awaitable[tuple[int, list[tuple[bytes, bytes]], bytes]]]] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/openapi.json": self._openapi_json,
            "/docs": self._docs,
            "/metrics": self._metrics,
        }

    # Life cycle ------------------------------------------------------------------------------

    def _ensure_channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            # Created inside the running event loop (grpc.aio binds a channel to its loop).
            self._channel = _backend_channel(self.backend_address, self.settings)
            for binding in self.bindings:
                path = binding.grpc_path
                if path not in self._callables:
                    self._callables[path] = self._channel.unary_unary(
                        path,
                        request_serializer=binding.request_class.SerializeToString,
                        response_deserializer=binding.response_class.FromString,
                    )
        return self._channel

    async def aclose(self) -> None:
        """Close the backend channel."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._callables.clear()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._ensure_channel()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # Requests --------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        static = self._static.get(path)
        if static is not None or path.startswith("/docs/static/"):
            await self._serve_static(scope, send, static)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        raw_path_bytes: bytes | None = scope.get("raw_path")
        raw_path = raw_path_bytes.partition(b"?")[0].decode("latin-1") if raw_path_bytes else path
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers[name] = value
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers.items()
            if name in edge.TRACE_HEADERS
        }
        context_token = otel_context.attach(propagate.extract(carrier)) if carrier else None
        match: routes.Match | None = None
        route_error: errors.GatewayError | None = None
        try:
            match = self.router.match(method, raw_path)
            if match is None:
                route_error = self._route_error(raw_path)
        except templates.PathEscapeError as error:
            route_error = errors.invalid_field("path", str(error), reason="INVALID_PATH")
        route = match.binding.route if match is not None else UNMATCHED_ROUTE
        span = self.tracer.start_span(
            f"{method} {route}" if match is not None else method,
            kind=SpanKind.SERVER,
            # Few attributes on purpose: each costs a lock in the SDK; the gRPC client span
            # carries rpc.service and rpc.method.
            attributes={"http.request.method": method, "url.path": path, "http.route": route},
        )
        span_token = otel_context.attach(trace.set_span_in_context(span))
        status_code = 500
        try:
            request_id_raw = headers.get(b"x-request-id")
            request_id = edge.new_request_id()
            extra_headers: list[tuple[bytes, bytes]] = []
            try:
                if request_id_raw is not None:
                    request_id = edge.check_request_id(request_id_raw.decode("latin-1"))
                span.set_attribute("clearhouse.request_id", request_id)
                if route_error is not None:
                    raise route_error
                assert match is not None
                status_code, extra_headers, content_type, body = await self._transcode(
                    match, scope, headers, request_id=request_id, receive=receive, extra_headers=extra_headers
                )
            except errors.GatewayError as error:
                status_code, content_type, body = self._error_response(error.status)
                extra_headers = [*extra_headers, *error.headers]
            except grpc.aio.AioRpcError as error:
                status = errors.from_backend(status_from_rpc_error(error))
                status_code, content_type, body = self._error_response(status)
                extra_headers.extend(edge.flag_headers(error.initial_metadata()))
                extra_headers.extend(edge.flag_headers(error.trailing_metadata()))
                retry_after = errors.retry_after_seconds(status)
                if retry_after is not None:
                    extra_headers.append((b"retry-after", str(retry_after).encode()))
            except ClientDisconnected:
                status_code = 499
                span.set_attribute("http.response.status_code", status_code)
                span.set_status(StatusCode.ERROR, "client disconnected")
                return
            response_headers = [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                (b"x-request-id", request_id.encode()),
                *extra_headers,
            ]
            span_context = span.get_span_context()
            if span_context.is_valid:
                response_headers.append(
                    (
                        b"traceparent",
                        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
                        f"{int(span_context.trace_flags):02x}".encode(),
                    )
                )
            await send({"type": "http.response.start", "status": status_code, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
            span.set_attribute("http.response.status_code", status_code)
            if status_code >= 500:
                span.set_status(StatusCode.ERROR)
        finally:
            otel_context.detach(span_token)
            span.end()
            if context_token is not None:
                otel_context.detach(context_token)
            self._observe(route, method, status_code, time.perf_counter() - started)

    def _observe(self, route: str, method: str, status_code: int, seconds: float) -> None:
        """RED metrics; the labelled children are cached (labels() takes a lock and hashes)."""
        key = (route, method, status_code)
        children = self._metric_children.get(key)
        if children is None:
            labels = (route, method, str(status_code))
            children = (HTTP_SECONDS.labels(*labels), HTTP_TOTAL.labels(*labels))
            # Bounded: routes x methods x statuses, all finite (unmatched paths share one label).
            self._metric_children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def _route_error(self, raw_path: str) -> errors.GatewayError:
        allowed = self.router.allowed_methods(raw_path)
        if allowed:
            return errors.GatewayError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"method not allowed; this path accepts {', '.join(allowed)}",
                "METHOD_NOT_ALLOWED",
                headers=[(b"allow", ", ".join(allowed).encode())],
            )
        return errors.GatewayError(grpc.StatusCode.NOT_FOUND, "no route for this path", "ROUTE_NOT_FOUND")

    @staticmethod
    def _error_response(status: status_pb2.Status) -> tuple[int, bytes, bytes]:
        return errors.http_status(status), b"application/json", errors.render(status)

    async def _transcode(
        self,
        match: routes.Match,
        scope: Scope,
        headers: dict[bytes, bytes],
        *,
        request_id: str,
        receive: Receive,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bytes]:
        binding = match.binding
        client_ip = self._client_ip(scope, headers)
        authorization = headers.get(b"authorization")
        if self.limiter is not None:
            key = edge.client_key(authorization.decode("latin-1") if authorization else None, client_ip)
            try:
                extra_headers.extend(await self.limiter.check(key))
            except errors.GatewayError:
                raise
            except Exception:
                # Fail open: a Redis outage must not take the payment API down with it; the
                # backend still authenticates every call. Logged so the outage is seen.
                log.warning("rate limiter unavailable; request allowed", exc_info=True)
        metadata: list[tuple[str, str]] = [(call_context.REQUEST_ID, request_id)]
        for header, key_name in edge.FORWARDED_HEADERS.items():
            raw = headers.get(header)
            if raw is None:
                continue
            value = raw.decode("latin-1")
            if key_name == call_context.IDEMPOTENCY_KEY:
                edge.check_idempotency_key(value)
            else:
                edge.check_metadata_value(header.decode().title(), value)
            metadata.append((key_name, value))
        metadata.append((call_context.FORWARDED_FOR, client_ip))
        grpc_timeout = headers.get(b"grpc-timeout")
        x_timeout = headers.get(b"x-timeout")
        asked = edge.parse_timeout(
            grpc_timeout.decode("latin-1") if grpc_timeout is not None else None,
            x_timeout.decode("latin-1") if x_timeout is not None else None,
        )
        deadline = self._deadlines[binding.grpc_path]
        if asked is not None:
            deadline = min(asked, self.settings.deadline_seconds_max)
        if not binding.response_is_http_body:
            accept = headers.get(b"accept")
            if not edge.accepts_json(accept.decode("latin-1") if accept is not None else None):
                raise errors.GatewayError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "this route answers application/json; the Accept header does not allow it",
                    "NOT_ACCEPTABLE",
                )
        body = await self._read_body(receive, headers)
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        request = self._build_request(match, scope.get("query_string", b""), body, content_type)
        self._ensure_channel()
        # The gRPC client span, made here rather than by an interceptor (see _backend_channel):
        # same name and attributes as OpenTelemetry's gRPC instrumentation, child of the server
        # span, its context (and the caller's baggage) injected into the metadata.
        client_span = self.tracer.start_span(
            binding.grpc_path, kind=SpanKind.CLIENT, attributes=binding.rpc_attributes
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(client_span))
        metadata.extend(carrier.items())
        code = grpc.StatusCode.OK
        try:
            call = self._callables[binding.grpc_path](request, timeout=deadline, metadata=metadata)
            response = await self._await_call(call, receive)
            extra_headers.extend(edge.flag_headers(await call.initial_metadata()))
            extra_headers.extend(edge.flag_headers(await call.trailing_metadata()))
        except grpc.aio.AioRpcError as error:
            code = error.code()
            raise
        except ClientDisconnected:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            client_span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                client_span.set_status(StatusCode.ERROR, code.name)
            client_span.end()
        if binding.response_is_http_body:
            http_body: Any = (
                getattr(response, binding.response_field.name) if binding.response_field else response
            )
            media = http_body.content_type or "application/octet-stream"
            return 200, extra_headers, media.encode("latin-1"), bytes(http_body.data)
        payload = binding.response_printer(
            getattr(response, binding.response_field.name) if binding.response_field else response
        )
        return 200, extra_headers, b"application/json", orjson.dumps(payload)

    async def _await_call(self, call: grpc.aio.UnaryUnaryCall, receive: Receive) -> Message:
        """Await the backend call; cancel it if the client disconnects meanwhile."""
        disconnected = False

        def on_message(future: asyncio.Future[Message_]) -> None:
            nonlocal disconnected
            if future.cancelled() or future.exception() is not None:
                return
            if future.result().get("type") == "http.disconnect":
                disconnected = True
                call.cancel()

        watcher = asyncio.ensure_future(receive())
        watcher.add_done_callback(on_message)
        try:
            response: Message = await call
            return response
        except asyncio.CancelledError:
            if disconnected:
                raise ClientDisconnected from None
            raise
        finally:
            watcher.remove_done_callback(on_message)
            watcher.cancel()

    def _client_ip(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        trusted = self.settings.trusted_proxy_count
        forwarded = headers.get(b"x-forwarded-for")
        if trusted and forwarded:
            hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",") if hop.strip()]
            # The last `trusted` hops were added by our own proxies; the one before is the client.
            if len(hops) >= trusted:
                return hops[-trusted]
        return peer

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        limit = self.settings.body_bytes_max
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self._too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _too_large(limit: int) -> errors.GatewayError:
        return errors.GatewayError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request body larger than {limit} bytes",
            "REQUEST_BODY_TOO_LARGE",
        )

    # Request message ---------------------------------------------------------------------------

    def _build_request(
        self, match: routes.Match, query_string: bytes, body: bytes, content_type: str
    ) -> Message:
        binding = match.binding
        request = binding.request_class()
        try:
            if binding.body == "*":
                if binding.body_is_http_body:
                    request.content_type = content_type  # type: ignore[attr-defined]
                    request.data = body  # type: ignore[attr-defined]
                else:
                    data = self._json_body(body, content_type)
                    if data is not None:
                        self._check_collisions(binding, data, 0)
                        binding.request_codec.fill(request, data)
            elif binding.body_field is not None:
                field = binding.body_field
                if binding.body_is_http_body:
                    target = getattr(request, field.name)
                    target.content_type = content_type
                    target.data = body
                else:
                    data = self._json_body(body, content_type)
                    if data is not None:
                        self._check_collisions(binding, data, 1)
                        assert binding.body_filler is not None
                        binding.body_filler(request, data, field.name, 0)
            elif body:
                raise errors.invalid_field(
                    "body",
                    f"{binding.http_method} {binding.route} takes no request body",
                    reason="BODY_NOT_ALLOWED",
                )
            if query_string:
                self._apply_query(binding, request, query_string)
            for variable, leaf in binding.path_fields:
                self._set_leaf(request, leaf, [match.values[variable.dotted]], variable.dotted)
        except protojson.JsonFieldError as error:
            raise errors.invalid_field(error.field, error.description) from None
        return request

    @staticmethod
    def _json_body(body: bytes, content_type: str) -> object:
        if not body.strip():
            return None
        if not content_type or not edge.is_json_media_type(content_type):
            raise errors.GatewayError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body must be application/json (UTF-8), not {content_type or 'unspecified'!r}",
                "UNSUPPORTED_MEDIA_TYPE",
            )
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise errors.invalid_field("body", f"malformed JSON: {error}", reason="INVALID_JSON") from None

    @staticmethod
    def _check_collisions(binding: routes.Binding, data: object, skip: int) -> None:
        """A field bound by the path must not also come in the body (which one would win?)."""
        for variable, leaf in binding.path_fields:
            chain = leaf.chain
            if skip:
                if chain[0] is not binding.body_field:
                    continue
                chain = chain[1:]
            current = data
            for field in chain:
                if not isinstance(current, dict):
                    break
                if field.name in current:
                    current = current[field.name]
                elif field.json_name in current:
                    current = current[field.json_name]
                else:
                    break
            else:
                raise errors.invalid_field(
                    variable.dotted, "is set by the URL path and must not also appear in the body"
                )

    def _apply_query(self, binding: routes.Binding, request: Message, query_string: bytes) -> None:
        try:
            pairs = parse_qsl(
                query_string.decode("latin-1"),
                keep_blank_values=True,
                strict_parsing=True,
                encoding="utf-8",
                errors="strict",
                max_num_fields=QUERY_PARAMETERS_MAX,
            )
        except (ValueError, UnicodeDecodeError):
            raise errors.invalid_field(
                "query", f"malformed query string (or more than {QUERY_PARAMETERS_MAX} parameters)"
            ) from None
        grouped: dict[str, tuple[routes.LeafField, str, list[str]]] = {}
        for name, value in pairs:
            leaf = binding.query_fields.get(name)
            if leaf is None:
                hint = " (this route takes every field in the body)" if binding.body == "*" else ""
                raise errors.invalid_field(name, f"unknown query parameter{hint}")
            entry = grouped.get(leaf.name)
            if entry is None:
                grouped[leaf.name] = (leaf, name, [value])
            elif not leaf.repeated:
                raise errors.invalid_field(name, "given more than once for a single-valued field")
            else:
                entry[2].append(value)
        for leaf, name, values in grouped.values():
            self._set_leaf(request, leaf, values, name)

    @staticmethod
    def _set_leaf(request: Message, leaf: routes.LeafField, texts: list[str], label: str) -> None:
        target = request
        for field in leaf.chain[:-1]:
            target = getattr(target, field.name)
        scalar = leaf.scalar_field()
        values = [protojson.string_to_json(scalar, text, label) for text in texts]
        leaf.filler(target, values if leaf.repeated else values[0], label, 1)

    # Gateway's own endpoints -------------------------------------------------------------------

    async def _serve_static(
        self,
        scope: Scope,
        send: Send,
        handler: Callable[[], Awaitable[tuple[int, list[tuple[bytes, bytes]], bytes]]] | None,
    ) -> None:
        if scope["method"] not in {"GET", "HEAD"}:
            status = errors.make_status(
                grpc.StatusCode.UNIMPLEMENTED, "method not allowed; use GET", "METHOD_NOT_ALLOWED"
            )
            code, headers, body = 405, [*JSON_HEADERS, (b"allow", b"GET, HEAD")], errors.render(status)
        elif handler is not None:
            code, headers, body = await handler()
        else:
            code, headers, body = self._docs_asset(scope["path"].removeprefix("/docs/static/"))
        headers = [
            *headers,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", edge.new_request_id().encode()),
        ]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _healthz(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 200, list(JSON_HEADERS), b'{"status":"ok"}'

    async def _readyz(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        channel = self._ensure_channel()
        if await health.check(channel, timeout_seconds=2.0):
            return 200, list(JSON_HEADERS), b'{"status":"ready"}'
        status = errors.make_status(
            grpc.StatusCode.UNAVAILABLE, "the payments service is not serving", "BACKEND_NOT_READY"
        )
        return 503, list(JSON_HEADERS), errors.render(status)

    async def _openapi_json(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if self._openapi is None:
            document = await asyncio.to_thread(
                openapi.document, self.bindings, self.settings.proto_source_dirs, self.settings
            )
            self._openapi = orjson.dumps(document)
        return 200, [(b"content-type", b"application/json")], self._openapi

    async def _docs(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 200, [(b"content-type", b"text/html; charset=utf-8")], DOCS_PAGE

    async def _metrics(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 200, [(b"content-type", prometheus_client.CONTENT_TYPE_LATEST.encode())], metrics.render()

    @staticmethod
    def _docs_asset(name: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if name == "init.js":
            return 200, [(b"content-type", b"text/javascript")], DOCS_INIT
        if name not in SWAGGER_ASSETS:
            status = errors.make_status(grpc.StatusCode.NOT_FOUND, "no such asset", "ROUTE_NOT_FOUND")
            return 404, list(JSON_HEADERS), errors.render(status)
        path = pathlib.Path(swagger_ui_bundle.swagger_ui_path) / name
        kind = _CONTENT_TYPES.get(path.suffix, b"application/octet-stream")
        return 200, [(b"content-type", kind), (b"cache-control", b"max-age=86400")], path.read_bytes()


def _backend_channel(target: str, settings: GatewaySettings) -> grpc.aio.Channel:
    """An mTLS channel as identity `gateway`, from the chassis' pieces but without interceptors.

    Not `chassis.channels.open_channel`: its OpenTelemetry interceptor awaits the RPC inside the
    interceptor's own task, so cancelling the call the gateway holds cancels only that wait and
    the RPC runs on to its deadline — a client that disconnects would leave the backend working.
    Without the interceptor the gateway holds the real call (cancel() reaches the server) and
    skips the interceptor's per-call task; it makes the client span itself (`_transcode`).
    """
    if settings.plaintext:
        return grpc.aio.insecure_channel(target, options=channels.CHANNEL_OPTIONS)
    identity = tls.ensure_identity(settings.certs_dir, "gateway")
    return grpc.aio.secure_channel(
        target, tls.channel_credentials(identity), options=channels.CHANNEL_OPTIONS
    )


def create_app(
    settings: GatewaySettings, *, packages: list[str] | None = None, backend_address: str | None = None
) -> Any:
    """The gateway application for `settings`, with CORS in front when origins are configured."""
    gateway = Gateway(settings, packages=packages, backend_address=backend_address)
    if not settings.cors_allow_origins:
        return gateway
    from starlette.middleware.cors import CORSMiddleware  # noqa: PLC0415

    app = CORSMiddleware(
        gateway,  # type: ignore[arg-type]
        allow_origins=settings.cors_allow_origins,
        allow_methods=sorted({b.http_method for b in gateway.bindings} | {"GET"}),
        allow_headers=[
            "authorization",
            "content-type",
            "idempotency-key",
            "x-request-id",
            "x-timeout",
            "grpc-timeout",
            "traceparent",
            "tracestate",
            "baggage",
        ],
        expose_headers=[
            "x-request-id",
            "traceparent",
            "idempotent-replayed",
            "retry-after",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "ratelimit-policy",
        ],
        max_age=600,
    )
    app.gateway = gateway  # type: ignore[attr-defined]
    return app
