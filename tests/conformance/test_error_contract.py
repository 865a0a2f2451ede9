"""Error contract: any route + any malformed input → a google.rpc.Status JSON body, status from the table.

The table below is DESIGN.md §2 written out again (not imported from the gateway), so the test
fails if the gateway's table drifts from the design.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
import string
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.routes import Binding
from tests.conformance import support

# DESIGN.md §2: gRPC code → HTTP status, then the reason overrides.
DESIGN_TABLE = {
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}
REASON_OVERRIDES = {
    "IDEMPOTENCY_KEY_REUSED": 422,
    "METHOD_NOT_ALLOWED": 405,
    "NOT_ACCEPTABLE": 406,
    "REQUEST_BODY_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}


def expected_status(body: dict[str, Any]) -> int:
    reasons = [d.get("reason") for d in body["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    if reasons and reasons[0] in REASON_OVERRIDES:
        return REASON_OVERRIDES[reasons[0]]
    return DESIGN_TABLE.get(body["code"], 500)


def assert_status_shape(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert isinstance(body["code"], int) and body["code"] != 0
    assert isinstance(body["message"], str)
    assert all(isinstance(d, dict) and "@type" in d for d in body["details"])
    assert response.status_code == expected_status(body), body
    assert response.headers.get("x-request-id")
    return body


class ThreadedStack:
    """Backend + gateway on their own event loop in a thread, for synchronous hypothesis tests."""

    def __init__(self, var_dir: pathlib.Path) -> None:
        self.var_dir = var_dir
        self.url = ""
        self.bindings: list[Binding] = []
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as error:  # reported to the test thread
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with support.running_backend(self.var_dir) as (backend, _recorder):
            settings_ = support.gateway_settings(
                self.var_dir, rate_limit="100000/second", body_bytes_max=4096
            )
            async with support.running_gateway(settings_, backend.address) as gateway:
                self.url = gateway.url
                self.bindings = gateway.gateway.bindings
                self._ready.set()
                await self._stop.wait()

    def __enter__(self) -> ThreadedStack:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"stack did not start: {self._error!r}")
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def threaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedStack, httpx.Client]]:
    with (
        ThreadedStack(tmp_path_factory.mktemp("var")) as stack,
        httpx.Client(base_url=stack.url, timeout=10) as http,
    ):
        yield stack, http


segment_text = st.text(
    alphabet=string.ascii_letters + string.digits + "-._~ %:@!$&'()*+,;=", min_size=1, max_size=8
)


@st.composite
def route_paths(draw: st.DrawFn, binding: Binding) -> str:
    values = {}
    for variable in binding.template.variables:
        parts = []
        for segment in variable.pattern.split("/"):
            if segment == "*":
                parts.append(draw(segment_text).replace("/", "_"))
            elif segment == "**":
                parts.extend(draw(st.lists(segment_text, min_size=1, max_size=3)))
            else:
                parts.append(segment)
        values[variable.dotted] = "/".join(parts)
    return binding.template.expand(values)


json_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def malformed_requests(draw: st.DrawFn, bindings: list[Binding]) -> tuple[str, str, dict[str, str], bytes]:
    binding = draw(
        st.sampled_from([b for b in bindings if b.grpc_path != "/gatewaytest.v1.KitchenService/Slow"])
    )
    path = draw(route_paths(binding))
    method = binding.http_method
    headers = {"content-type": "application/json"}
    body = b"{}" if binding.body else b""
    kind = draw(
        st.sampled_from(
            [
                "unknown-field",
                "junk-json",
                "not-json",
                "media-type",
                "unknown-query",
                "method",
                "extra-segment",
                "escape",
                "too-large",
                "accept",
            ]
        )
    )
    if kind == "unknown-field" and binding.body and not binding.body_is_http_body:
        extra = draw(st.dictionaries(st.text(max_size=4), json_junk, max_size=2))
        body = _dumps({**extra, "zz_not_a_field": draw(json_junk)})
    elif kind == "junk-json" and binding.body and not binding.body_is_http_body:
        junk = draw(json_junk.filter(lambda v: not isinstance(v, dict) and v is not None))
        body = _dumps(junk)
    elif kind == "not-json" and binding.body and not binding.body_is_http_body:
        body = b"{" + draw(st.binary(max_size=10))
    elif kind == "media-type" and binding.body and not binding.body_is_http_body:
        headers["content-type"] = draw(
            st.sampled_from(["text/plain", "application/xml", "multipart/form-data"])
        )
        body = b'{"a": 1}'
    elif kind == "unknown-query":
        path += "?zz_not_a_field=" + draw(st.text(alphabet=string.ascii_letters, max_size=5))
    elif kind == "method":
        # A method no binding serves on this path (another RPC may own the path under another method).
        served = {b.http_method for b in bindings if b.template.match(path) is not None}
        others = [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if m not in served]
        if others:
            method = draw(st.sampled_from(others))
        else:  # every method has a route here: make the input malformed another way
            path += "?zz_not_a_field=1"
    elif kind == "extra-segment":
        longer = path.split("?")[0] + "/zz/extra"
        # A `**` template takes any extra segments: then it is not malformed, use a bad parameter.
        if any(b.http_method == method and b.template.match(longer) is not None for b in bindings):
            path += "?zz_not_a_field=1"
        else:
            path = longer
    elif kind == "escape":
        path = path.split("?")[0] + "%zz"
    elif kind == "too-large":
        body = b'{"a": "' + b"x" * 5000 + b'"}'
    elif kind == "accept" and not binding.response_is_http_body:
        headers["accept"] = draw(st.sampled_from(["text/html", "application/xml", "image/png"]))
    else:
        path += ("&" if "?" in path else "?") + "zz_unknown=1"
    return method, path, headers, body


def _dumps(value: object) -> bytes:
    # The standard library, not orjson: junk may hold integers beyond 64 bits (the gateway must
    # answer 400 to those too).
    return json.dumps(value).encode()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_route_any_malformed_input_is_a_status(
    threaded: tuple[ThreadedStack, httpx.Client], data: st.DataObject
) -> None:
    stack, http = threaded
    method, path, headers, body = data.draw(malformed_requests(stack.bindings))
    response = http.request(method, path, headers=headers, content=body)
    assert 400 <= response.status_code < 500, (method, path, response.status_code, response.text)
    assert_status_shape(response)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    code=st.integers(1, 16),
    reason=st.sampled_from(["", "IDEMPOTENCY_KEY_REUSED", "PAYMENT_NOT_CAPTURABLE", "METHOD_NOT_ALLOWED"]),
    message=st.text(max_size=20),
    unknown_detail=st.booleans(),
    retry_seconds=st.integers(0, 5),
    bad_field=st.sampled_from(["", "amount"]),
)
def test_backend_statuses_follow_the_table_and_keep_every_detail(
    threaded: tuple[ThreadedStack, httpx.Client],
    code: int,
    reason: str,
    message: str,
    unknown_detail: bool,
    retry_seconds: int,
    bad_field: str,
) -> None:
    _stack, http = threaded
    request = {
        "code": code,
        "reason": reason,
        "message": message,
        "unknown_detail": unknown_detail,
        "retry_seconds": retry_seconds,
        "bad_field": bad_field,
    }
    response = http.post("/v1/fail", json=request)
    body = assert_status_shape(response)
    assert body["code"] == code
    types = [d["@type"] for d in body["details"]]
    if not reason:
        # No details from the backend: the gateway adds an ErrorInfo whose reason is the code name.
        assert types == ["type.googleapis.com/google.rpc.ErrorInfo"]
        return
    assert body["message"] == message
    assert body["details"][0] == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "test",
    }
    if bad_field:
        assert {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": [{"field": "amount", "description": "bad"}],
        } in body["details"]
    if retry_seconds:
        assert response.headers["retry-after"] == str(retry_seconds)
    if unknown_detail:
        assert {
            "@type": support.UNKNOWN_DETAIL_TYPE,
            "value": base64.b64encode(b"\x08\x2a").decode(),
        } in body["details"]


def test_not_found_and_method_not_allowed_are_distinguished(
    threaded: tuple[ThreadedStack, httpx.Client],
) -> None:
    _stack, http = threaded
    missing = http.get("/v1/no/such/route")
    assert missing.status_code == 404
    assert assert_status_shape(missing)["details"][0]["reason"] == "ROUTE_NOT_FOUND"
    wrong = http.patch("/v1/downloads/x")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    assert assert_status_shape(wrong)["details"][0]["reason"] == "METHOD_NOT_ALLOWED"


def test_backend_down_is_503_with_a_safe_message(tmp_path: pathlib.Path) -> None:
    async def main() -> httpx.Response:
        settings_ = support.gateway_settings(tmp_path)
        async with (
            support.running_gateway(settings_, "127.0.0.1:1") as gateway,
            httpx.AsyncClient(base_url=gateway.url) as http,
        ):
            return await http.get("/v1/kitchens/k1")

    response = asyncio.run(main())
    body = assert_status_shape(response)
    assert response.status_code == 503
    assert "127.0.0.1" not in body["message"]
    assert body["details"][0]["reason"] == "UNAVAILABLE"
