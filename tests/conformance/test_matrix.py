"""Conformance matrix: template kinds x body modes x query shapes x field kinds x escaping.

Every cell goes through real HTTP to the gateway and real gRPC to the recording backend, and
asserts the exact request message the backend received and the exact JSON that came back.
Expected values are written out by hand here (never computed by the gateway's own code).
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from google.api_core import path_template
from google.protobuf import any_pb2, duration_pb2, empty_pb2, field_mask_pb2, struct_pb2, timestamp_pb2
from google.protobuf import wrappers_pb2 as w

from tests.conformance.conftest import Stack
from tests.conformance.support import kitchen_pb2 as k

pytestmark = pytest.mark.asyncio(loop_scope="module")

JSON = {"content-type": "application/json"}

# The JSON of an empty Kitchen: every field without presence, zero-valued; int64s as strings.
EMPTY_KITCHEN: dict[str, Any] = {
    "id": "",
    "f_double": 0,
    "f_float": 0,
    "f_int32": 0,
    "f_int64": "0",
    "f_uint32": 0,
    "f_uint64": "0",
    "f_sint32": 0,
    "f_sint64": "0",
    "f_fixed32": 0,
    "f_fixed64": "0",
    "f_sfixed32": 0,
    "f_sfixed64": "0",
    "f_bool": False,
    "f_string": "",
    "f_bytes": "",
    "color": "COLOR_UNSPECIFIED",
    "r_int64": [],
    "r_string": [],
    "r_color": [],
    "r_nested": [],
    "m_string": {},
    "m_nested": {},
    "m_bool": {},
    "r_ts": [],
}


def kitchen_json(**fields: Any) -> dict[str, Any]:
    out = copy.deepcopy(EMPTY_KITCHEN)
    out.update(fields)
    return out


def nested_json(name: str = "", amount: str = "0", **extra: Any) -> dict[str, Any]:
    return {"name": name, "amount": amount, **extra}


def ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


def any_nested(name: str) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(k.Nested(name=name))
    return packed


# (cell id, JSON fields sent, Kitchen fields expected at the backend, JSON fields expected back)
FIELD_KINDS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("int32-number", {"f_int32": -5}, {"f_int32": -5}, {"f_int32": -5}),
    ("int32-string", {"f_int32": "7"}, {"f_int32": 7}, {"f_int32": 7}),
    ("int32-json-name", {"fInt32": 8}, {"f_int32": 8}, {"f_int32": 8}),
    ("int64-number", {"f_int64": 2500}, {"f_int64": 2500}, {"f_int64": "2500"}),
    (
        "int64-string-max",
        {"f_int64": "9223372036854775807"},
        {"f_int64": 2**63 - 1},
        {"f_int64": "9223372036854775807"},
    ),
    (
        "int64-string-min",
        {"f_int64": "-9223372036854775808"},
        {"f_int64": -(2**63)},
        {"f_int64": "-9223372036854775808"},
    ),
    ("int64-integral-float", {"f_int64": 1000.0}, {"f_int64": 1000}, {"f_int64": "1000"}),
    ("uint32", {"f_uint32": 4294967295}, {"f_uint32": 4294967295}, {"f_uint32": 4294967295}),
    (
        "uint64",
        {"f_uint64": "18446744073709551615"},
        {"f_uint64": 2**64 - 1},
        {"f_uint64": "18446744073709551615"},
    ),
    ("sint32", {"f_sint32": -3}, {"f_sint32": -3}, {"f_sint32": -3}),
    ("sint64", {"f_sint64": "-4"}, {"f_sint64": -4}, {"f_sint64": "-4"}),
    ("fixed32", {"f_fixed32": 9}, {"f_fixed32": 9}, {"f_fixed32": 9}),
    ("fixed64", {"f_fixed64": 10}, {"f_fixed64": 10}, {"f_fixed64": "10"}),
    ("sfixed32", {"f_sfixed32": -11}, {"f_sfixed32": -11}, {"f_sfixed32": -11}),
    ("sfixed64", {"f_sfixed64": "-12"}, {"f_sfixed64": -12}, {"f_sfixed64": "-12"}),
    ("double", {"f_double": 1.5}, {"f_double": 1.5}, {"f_double": 1.5}),
    ("double-string", {"f_double": "2.25"}, {"f_double": 2.25}, {"f_double": 2.25}),
    ("double-infinity", {"f_double": "-Infinity"}, {"f_double": float("-inf")}, {"f_double": "-Infinity"}),
    ("float-shortest", {"f_float": 0.1}, {"f_float": 0.1}, {"f_float": 0.1}),
    ("bool", {"f_bool": True}, {"f_bool": True}, {"f_bool": True}),
    (
        "string-unicode",
        {"f_string": "héllo ✓ \u0000"},
        {"f_string": "héllo ✓ \u0000"},
        {"f_string": "héllo ✓ \u0000"},
    ),
    ("bytes-standard", {"f_bytes": "aGk="}, {"f_bytes": b"hi"}, {"f_bytes": "aGk="}),
    ("bytes-url-safe-unpadded", {"f_bytes": "-_8"}, {"f_bytes": b"\xfb\xff"}, {"f_bytes": "+/8="}),
    ("enum-name", {"color": "GREEN"}, {"color": 2}, {"color": "GREEN"}),
    ("enum-lower-case", {"color": "green"}, {"color": 2}, {"color": "GREEN"}),
    ("enum-number", {"color": 1}, {"color": 1}, {"color": "RED"}),
    (
        "message",
        {"nested": {"name": "n", "amount": "5", "child": {"name": "c"}}},
        {"nested": k.Nested(name="n", amount=5, child=k.Nested(name="c"))},
        {"nested": nested_json("n", "5", child=nested_json("c"))},
    ),
    ("message-empty", {"nested": {}}, {"nested": k.Nested()}, {"nested": nested_json()}),
    ("message-null", {"nested": None}, {}, {}),
    ("timestamp", {"ts": "2026-01-31T12:00:00Z"}, {"ts": ts(1769860800)}, {"ts": "2026-01-31T12:00:00Z"}),
    (
        "timestamp-offset-fraction",
        {"ts": "2026-01-31T12:00:00.5+01:00"},
        {"ts": ts(1769857200, 500_000_000)},
        {"ts": "2026-01-31T11:00:00.500Z"},
    ),
    (
        "duration",
        {"dur": "1.5s"},
        {"dur": duration_pb2.Duration(seconds=1, nanos=500_000_000)},
        {"dur": "1.500s"},
    ),
    ("duration-negative", {"dur": "-3s"}, {"dur": duration_pb2.Duration(seconds=-3)}, {"dur": "-3s"}),
    (
        "field-mask",
        {"mask": "fString,nested.amount"},
        {"mask": field_mask_pb2.FieldMask(paths=["f_string", "nested.amount"])},
        {"mask": "fString,nested.amount"},
    ),
    (
        "struct",
        {"st": {"a": 1, "b": [True, None, "x"], "c": {"d": "e"}}},
        {"st": struct({"a": 1, "b": [True, None, "x"], "c": {"d": "e"}})},
        {"st": {"a": 1.0, "b": [True, None, "x"], "c": {"d": "e"}}},
    ),
    ("value-string", {"val": "text"}, {"val": struct_pb2.Value(string_value="text")}, {"val": "text"}),
    ("value-null", {"val": None}, {"val": struct_pb2.Value(null_value=0)}, {"val": None}),
    (
        "list-value",
        {"lv": [1, "a"]},
        {
            "lv": struct_pb2.ListValue(
                values=[struct_pb2.Value(number_value=1), struct_pb2.Value(string_value="a")]
            )
        },
        {"lv": [1.0, "a"]},
    ),
    ("wrapper-int64", {"w_int64": "5"}, {"w_int64": w.Int64Value(value=5)}, {"w_int64": "5"}),
    ("wrapper-string", {"w_string": "s"}, {"w_string": w.StringValue(value="s")}, {"w_string": "s"}),
    (
        "wrapper-bool-false-is-present",
        {"w_bool": False},
        {"w_bool": w.BoolValue(value=False)},
        {"w_bool": False},
    ),
    ("wrapper-double", {"w_double": 2.5}, {"w_double": w.DoubleValue(value=2.5)}, {"w_double": 2.5}),
    ("wrapper-uint32", {"w_uint32": 7}, {"w_uint32": w.UInt32Value(value=7)}, {"w_uint32": 7}),
    ("wrapper-bytes", {"w_bytes": "aGk="}, {"w_bytes": w.BytesValue(value=b"hi")}, {"w_bytes": "aGk="}),
    ("wrapper-null-is-unset", {"w_int64": None}, {}, {}),
    ("repeated-int64", {"r_int64": [1, "2"]}, {"r_int64": [1, 2]}, {"r_int64": ["1", "2"]}),
    ("repeated-string", {"r_string": ["a", "b"]}, {"r_string": ["a", "b"]}, {"r_string": ["a", "b"]}),
    (
        "repeated-enum",
        {"r_color": ["RED", "green", 2]},
        {"r_color": [1, 2, 2]},
        {"r_color": ["RED", "GREEN", "GREEN"]},
    ),
    (
        "repeated-message",
        {"r_nested": [{"name": "a"}, {}]},
        {"r_nested": [k.Nested(name="a"), k.Nested()]},
        {"r_nested": [nested_json("a"), nested_json()]},
    ),
    ("repeated-null-is-empty", {"r_string": None}, {}, {}),
    (
        "repeated-timestamp",
        {"r_ts": ["1970-01-01T00:00:01Z"]},
        {"r_ts": [ts(1)]},
        {"r_ts": ["1970-01-01T00:00:01Z"]},
    ),
    (
        "map-string",
        {"m_string": {"k": "v", "": "empty"}},
        {"m_string": {"k": "v", "": "empty"}},
        {"m_string": {"k": "v", "": "empty"}},
    ),
    (
        "map-int-key-message",
        {"m_nested": {"7": {"name": "x"}, "-1": {}}},
        {"m_nested": {7: k.Nested(name="x"), -1: k.Nested()}},
        {"m_nested": {"7": nested_json("x"), "-1": nested_json()}},
    ),
    ("map-bool-key", {"m_bool": {"true": "3"}}, {"m_bool": {True: 3}}, {"m_bool": {"true": "3"}}),
    ("oneof-text", {"choice_text": "t"}, {"choice_text": "t"}, {"choice_text": "t"}),
    (
        "oneof-empty-message",
        {"choice_nested": {}},
        {"choice_nested": k.Nested()},
        {"choice_nested": nested_json()},
    ),
    ("oneof-number-json-name", {"choiceNumber": "9"}, {"choice_number": 9}, {"choice_number": "9"}),
    (
        "oneof-null-then-set",
        {"choice_text": None, "choice_number": 1},
        {"choice_number": 1},
        {"choice_number": "1"},
    ),
    ("optional-zero-is-present", {"opt_int64": 0}, {"opt_int64": 0}, {"opt_int64": "0"}),
    ("optional-empty-string", {"opt_string": ""}, {"opt_string": ""}, {"opt_string": ""}),
    (
        "any",
        {"any": {"@type": "type.googleapis.com/gatewaytest.v1.Nested", "name": "x"}},
        {"any": any_nested("x")},
        {"any": {"@type": "type.googleapis.com/gatewaytest.v1.Nested", "name": "x"}},
    ),
    ("empty", {"empty": {}}, {"empty": empty_pb2.Empty()}, {"empty": {}}),
]


@pytest.mark.parametrize(
    ("sent", "expected_message", "expected_json"),
    [pytest.param(s, m, j, id=cell) for cell, s, m, j in FIELD_KINDS],
)
async def test_field_kind_round_trip(
    stack: Stack, sent: dict[str, Any], expected_message: dict[str, Any], expected_json: dict[str, Any]
) -> None:
    response = await stack.http.post("/v1/kitchens/k1:echo", json=sent)
    assert response.status_code == 200, response.text
    received = stack.recorder.last("EchoKitchen").request
    assert received == k.Kitchen(id="k1", **expected_message)
    assert response.json() == kitchen_json(id="k1", **expected_json)
    assert response.headers["content-type"] == "application/json"


# ---- Query shapes (GET /v1/kitchens/{id}: every other field from the query string) -------------

QUERY_SHAPES: list[tuple[str, str, dict[str, Any]]] = [
    ("scalar", "f_int64=5", {"f_int64": 5}),
    ("json-name", "fInt64=6", {"f_int64": 6}),
    ("negative", "f_sint32=-2", {"f_sint32": -2}),
    ("repeated", "r_string=a&r_string=b", {"r_string": ["a", "b"]}),
    ("repeated-int64", "r_int64=1&r_int64=-2", {"r_int64": [1, -2]}),
    ("repeated-enum-mixed", "r_color=red&r_color=GREEN&r_color=1", {"r_color": [1, 2, 1]}),
    ("enum-lower-case", "color=green", {"color": 2}),
    ("bool-true", "f_bool=true", {"f_bool": True}),
    ("bool-one", "f_bool=1", {"f_bool": True}),
    ("nested", "nested.amount=3&nested.name=x", {"nested": k.Nested(amount=3, name="x")}),
    ("nested-deeper", "nested.child.name=y", {"nested": k.Nested(child=k.Nested(name="y"))}),
    ("timestamp", "ts=2026-01-31T12:00:00Z", {"ts": ts(1769860800)}),
    ("timestamp-escaped-plus", "ts=2026-01-31T13:00:00%2B01:00", {"ts": ts(1769860800)}),
    ("duration", "dur=2s", {"dur": duration_pb2.Duration(seconds=2)}),
    (
        "field-mask",
        "mask=fString,nested.name",
        {"mask": field_mask_pb2.FieldMask(paths=["f_string", "nested.name"])},
    ),
    ("wrapper-bool", "w_bool=false", {"w_bool": w.BoolValue(value=False)}),
    ("wrapper-int64", "w_int64=-9", {"w_int64": w.Int64Value(value=-9)}),
    ("bytes-url-safe", "f_bytes=-_8", {"f_bytes": b"\xfb\xff"}),
    ("percent-escaped", "f_string=a%20b%26c%3Dd", {"f_string": "a b&c=d"}),
    ("plus-is-space", "f_string=a+b", {"f_string": "a b"}),
    ("utf8", "f_string=%E2%9C%93", {"f_string": "✓"}),
    ("empty-string", "f_string=", {"f_string": ""}),
    ("optional-zero", "opt_int64=0", {"opt_int64": 0}),
    ("oneof", "choice_text=x", {"choice_text": "x"}),
    ("double-nan", "f_double=NaN", {"f_double": float("nan")}),
]


@pytest.mark.parametrize(("query", "expected"), [pytest.param(q, e, id=c) for c, q, e in QUERY_SHAPES])
async def test_query_shape(stack: Stack, query: str, expected: dict[str, Any]) -> None:
    response = await stack.http.get(f"/v1/kitchens/k1?{query}")
    assert response.status_code == 200, response.text
    received = stack.recorder.last("GetKitchen").request
    want = k.Kitchen(id="k1", **expected)
    if "f_double" in expected:  # NaN != NaN: compare the rest and the NaN-ness
        assert str(received.f_double) == "nan"
        received.f_double = 0
        want.f_double = 0
    assert received == want


QUERY_REJECTIONS = [
    ("unknown", "/v1/kitchens/k1?bogus=1", "bogus"),
    ("single-given-twice", "/v1/kitchens/k1?f_int64=1&f_int64=2", "f_int64"),
    ("map-not-addressable", "/v1/kitchens/k1?m_string=x", "m_string"),
    ("path-bound-field", "/v1/kitchens/k1?id=other", "id"),
    ("non-ascii-digits", "/v1/kitchens/k1?f_int64=%EF%BC%91", "f_int64"),
    ("underscore-digits", "/v1/kitchens/k1?f_int64=1_000", "f_int64"),
    ("exponent-string", "/v1/kitchens/k1?f_int64=1e3", "f_int64"),
    ("out-of-range", "/v1/kitchens/k1?f_int32=2147483648", "f_int32"),
    ("bool-word", "/v1/kitchens/k1?f_bool=yes", "f_bool"),
    ("unknown-enum", "/v1/kitchens/k1?color=purple", "color"),
    ("bad-timestamp", "/v1/kitchens/k1?ts=2026-1-31T12:00:00Z", "ts"),
    ("message-not-addressable", "/v1/kitchens/k1?nested=x", "nested"),
    ("body-route-takes-no-query", "/v1/kitchens/k1:echo?f_int64=1", "f_int64"),
    ("body-field-not-in-query", "/v1/kitchens?kitchen.f_string=x", "kitchen.f_string"),
    ("invalid-utf8", "/v1/kitchens/k1?f_string=%FF", "query"),
    ("too-many-parameters", "/v1/kitchens/k1?" + "&".join(["r_string=x"] * 201), "query"),
]


@pytest.mark.parametrize(("url", "field"), [pytest.param(u, f, id=c) for c, u, f in QUERY_REJECTIONS])
async def test_query_rejection_names_the_parameter(stack: Stack, url: str, field: str) -> None:
    method = "POST" if ":echo" in url or url.startswith("/v1/kitchens?") else "GET"
    response = await stack.http.request(method, url, json={} if method == "POST" else None)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3
    violations = [d for d in body["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    assert violations and violations[0]["field_violations"][0]["field"] == field


# ---- Templates and escaping -------------------------------------------------------------------

TEMPLATES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    # (cell, method, url, backend method, expected request fields)
    ("variable", "GET", "/v1/kitchens/abc", "GetKitchen", {"id": "abc"}),
    ("variable-escaped-slash", "GET", "/v1/kitchens/a%2Fb", "GetKitchen", {"id": "a/b"}),
    ("variable-escaped-space", "GET", "/v1/kitchens/a%20b", "GetKitchen", {"id": "a b"}),
    ("variable-escaped-percent", "GET", "/v1/kitchens/100%25", "GetKitchen", {"id": "100%"}),
    ("variable-utf8", "GET", "/v1/kitchens/%E2%9C%93", "GetKitchen", {"id": "✓"}),
    ("variable-colon-without-verb", "GET", "/v1/kitchens/a:b", "GetKitchen", {"id": "a:b"}),
    ("variable-reserved-kept", "GET", "/v1/kitchens/a;b,c", "GetKitchen", {"id": "a;b,c"}),
    ("verb", "POST", "/v1/kitchens/k1:echo", "EchoKitchen", {"id": "k1"}),
    ("verb-escaped-colon-in-id", "POST", "/v1/kitchens/k%3A1:echo", "EchoKitchen", {"id": "k:1"}),
    (
        "nested-field-path",
        "GET",
        "/v1/shelves/s1/kitchens/k1",
        "GetKitchen",
        {"id": "k1", "nested": k.Nested(name="s1")},
    ),
    (
        "multi-segment",
        "GET",
        "/v1/projects/p1/locations/l1/kitchens/k1",
        "GetResource",
        {"name": "projects/p1/locations/l1/kitchens/k1"},
    ),
    (
        "multi-segment-keeps-escaped-slash",
        "GET",
        "/v1/projects/p%2F1/locations/l%2fx/kitchens/k",
        "GetResource",
        {"name": "projects/p%2F1/locations/l%2Fx/kitchens/k"},
    ),
    (
        "multi-segment-decodes-the-rest",
        "GET",
        "/v1/projects/p%201/locations/%E2%9C%93/kitchens/k",
        "GetResource",
        {"name": "projects/p 1/locations/✓/kitchens/k"},
    ),
    ("double-wildcard", "GET", "/v1/files/a/b/c.txt", "GetResource", {"name": "files/a/b/c.txt"}),
    ("double-wildcard-zero-segments", "GET", "/v1/files", "GetResource", {"name": "files"}),
    ("literal-around-variable", "GET", "/v1/literal/x/tail", "GetResource", {"name": "x"}),
    (
        "two-variables",
        "DELETE",
        "/v1/projects/p1/things/f1",
        "GetResource",
        {"name": "projects/p1", "filter": "f1"},
    ),
    ("additional-binding-put", "PUT", "/v1/kitchens/k2", "EchoKitchen", {"id": "k2"}),
    (
        "query-beside-multi-segment",
        "GET",
        "/v1/files/x?page_size=5",
        "GetResource",
        {"name": "files/x", "page_size": 5},
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "rpc", "expected"), [pytest.param(m, u, r, e, id=c) for c, m, u, r, e in TEMPLATES]
)
async def test_template_kind(stack: Stack, method: str, url: str, rpc: str, expected: dict[str, Any]) -> None:
    response = await stack.http.request(method, url, json={} if method in {"POST", "PUT"} else None)
    assert response.status_code == 200, response.text
    received = stack.recorder.last(rpc).request
    assert received == type(received)(**expected)


@pytest.mark.parametrize(
    ("template", "values"),
    [
        ("/v1/kitchens/{id}", {"id": "k-1.x~y"}),
        ("/v1/{name=projects/*/locations/*/kitchens/*}", {"name": "projects/a/locations/b/kitchens/c"}),
        ("/v1/{name=files/**}", {"name": "files/a/b/c"}),
        ("/v1/literal/{name=*}/tail", {"name": "n_1"}),
    ],
)
async def test_path_expansion_agrees_with_google_api_core(
    stack: Stack, template: str, values: dict[str, str]
) -> None:
    """google-api-core's path_template is an independent oracle where its rules apply (no escaping)."""
    path = path_template.expand(template, **values)
    assert path_template.validate(template, path)
    response = await stack.http.get(path)
    assert response.status_code == 200, response.text
    received = stack.recorder.calls[-1].request
    for name, value in values.items():
        assert getattr(received, name) == value


async def test_transcoding_agrees_with_google_api_core(stack: Stack) -> None:
    """api_core's transcode splits a request into path and query; the backend must get it back whole."""
    request = k.Kitchen(
        id="k9", f_int64=5, r_string=["a", "b"], nested=k.Nested(name="s1", amount=2), color=2
    )
    rules = [{"method": "get", "uri": "/v1/shelves/{nested.name}/kitchens/{id}"}]
    transcoded = path_template.transcode(rules, request)
    query = transcoded["query_params"]
    params = [("f_int64", str(query.f_int64)), ("color", k.Kitchen.Color.Name(query.color))]
    params += [("r_string", s) for s in query.r_string]
    params.append(("nested.amount", str(query.nested.amount)))
    response = await stack.http.get(transcoded["uri"], params=params)
    assert response.status_code == 200, response.text
    assert stack.recorder.last("GetKitchen").request == request


TEMPLATE_MISSES = [
    ("trailing-slash", "GET", "/v1/kitchens/", 404),
    ("empty-segment", "GET", "/v1/kitchens//x", 404),
    ("unknown-prefix", "GET", "/v2/kitchens/k1", 404),
    ("multi-segment-wrong-shape", "GET", "/v1/projects/p1/locations/l1", 404),
    ("wrong-verb", "POST", "/v1/kitchens/k1:shout", 405),
    ("method-not-bound", "POST", "/v1/kitchens/k1", 405),
    ("head-not-bound", "HEAD", "/v1/kitchens/k1", 405),
]


@pytest.mark.parametrize(
    ("method", "url", "status"), [pytest.param(m, u, s, id=c) for c, m, u, s in TEMPLATE_MISSES]
)
async def test_template_miss(stack: Stack, method: str, url: str, status: int) -> None:
    response = await stack.http.request(method, url)
    assert response.status_code == status
    if method != "HEAD":
        body = response.json()
        reason = body["details"][0]["reason"]
        assert reason == ("ROUTE_NOT_FOUND" if status == 404 else "METHOD_NOT_ALLOWED")


async def test_wrong_method_lists_the_allowed_ones(stack: Stack) -> None:
    response = await stack.http.post("/v1/kitchens/k1", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH, PUT"
    assert response.json()["code"] == 12


async def test_malformed_escape_in_path_is_400(stack: Stack) -> None:
    response = await stack.http.get("/v1/kitchens/a%zzb")
    assert response.status_code == 400
    assert response.json()["details"][0]["reason"] == "INVALID_PATH"


# ---- Body modes --------------------------------------------------------------------------------


async def test_named_body_field_with_query_beside_it(stack: Stack) -> None:
    response = await stack.http.post("/v1/kitchens?request_note=hi", json={"f_int64": "4", "id": "k"})
    assert response.status_code == 200, response.text
    received = stack.recorder.last("CreateKitchen").request
    assert received == k.CreateKitchenRequest(kitchen=k.Kitchen(id="k", f_int64=4), request_note="hi")
    assert response.json() == kitchen_json(id="k", f_int64="4")


async def test_named_body_field_null_leaves_it_unset(stack: Stack) -> None:
    response = await stack.http.post("/v1/kitchens", content=b"null", headers=JSON)
    assert response.status_code == 200, response.text
    assert not stack.recorder.last("CreateKitchen").request.HasField("kitchen")


async def test_whole_body_empty_means_an_empty_request(stack: Stack) -> None:
    response = await stack.http.post("/v1/kitchens/k5:echo")
    assert response.status_code == 200, response.text
    assert stack.recorder.last("EchoKitchen").request == k.Kitchen(id="k5")


async def test_response_body_returns_the_field_flat_and_path_fills_a_body_field(stack: Stack) -> None:
    response = await stack.http.patch("/v1/kitchens/k7?update_mask=fString", json={"f_string": "new"})
    assert response.status_code == 200, response.text
    received = stack.recorder.last("UpdateKitchen").request
    assert received == k.UpdateKitchenRequest(
        kitchen=k.Kitchen(id="kitchens/k7", f_string="new"),
        update_mask=field_mask_pb2.FieldMask(paths=["f_string"]),
    )
    assert response.json() == kitchen_json(id="kitchens/k7", f_string="new")


async def test_empty_response_is_an_empty_object(stack: Stack) -> None:
    response = await stack.http.delete("/v1/kitchens/k8")
    assert response.status_code == 200
    assert response.json() == {}
    assert stack.recorder.last("DeleteKitchen").request == k.DeleteKitchenRequest(id="k8")


async def test_http_body_request_passes_raw_bytes_and_content_type(stack: Stack) -> None:
    raw = b'{"not": "parsed"}\x00\xff'
    response = await stack.http.post(
        "/v1/buckets/b1/objects", content=raw, headers={"content-type": "application/x-custom; v=1"}
    )
    assert response.status_code == 200, response.text
    received = stack.recorder.last("Upload").request
    assert received.bucket == "b1"
    assert received.body.content_type == "application/x-custom; v=1"
    assert received.body.data == raw
    assert response.json() == {
        "bucket": "b1",
        "content_type": "application/x-custom; v=1",
        "data": base64.b64encode(raw).decode(),
    }


async def test_http_body_response_is_raw_with_its_content_type(stack: Stack) -> None:
    response = await stack.http.get("/v1/downloads/report")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv"
    assert response.content == b"name\nreport\n"


BODY_REJECTIONS = [
    ("body-on-get", "GET", "/v1/kitchens/k1", b"{}", JSON, 400, "BODY_NOT_ALLOWED", "body"),
    ("body-on-delete", "DELETE", "/v1/kitchens/k1", b"{}", JSON, 400, "BODY_NOT_ALLOWED", "body"),
    (
        "path-body-collision",
        "POST",
        "/v1/kitchens/k1:echo",
        b'{"id": "k2"}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "id",
    ),
    (
        "path-body-collision-json-name",
        "PATCH",
        "/v1/kitchens/k1",
        b'{"id": "kitchens/k1"}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "kitchen.id",
    ),
    (
        "unknown-body-field",
        "POST",
        "/v1/kitchens/k1:echo",
        b'{"nope": 1}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "nope",
    ),
    (
        "unknown-nested-field",
        "POST",
        "/v1/kitchens/k1:echo",
        b'{"nested": {"child": {"nope": 1}}}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "nested.child.nope",
    ),
    (
        "unknown-field-named-body",
        "POST",
        "/v1/kitchens",
        b'{"nope": 1}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "kitchen.nope",
    ),
    ("not-json", "POST", "/v1/kitchens/k1:echo", b"{", JSON, 400, "INVALID_JSON", "body"),
    (
        "array-for-whole-body",
        "POST",
        "/v1/kitchens/k1:echo",
        b"[1]",
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "body",
    ),
    ("array-for-named-body", "POST", "/v1/kitchens", b"[1]", JSON, 400, "INVALID_REQUEST_FIELD", "kitchen"),
    (
        "form-content-type",
        "POST",
        "/v1/kitchens/k1:echo",
        b"a=1",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        None,
    ),
    ("no-content-type", "POST", "/v1/kitchens/k1:echo", b"{}", {}, 415, "UNSUPPORTED_MEDIA_TYPE", None),
    (
        "latin1-charset",
        "POST",
        "/v1/kitchens/k1:echo",
        b"{}",
        {"content-type": "application/json; charset=latin-1"},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        None,
    ),
    (
        "two-oneof-members",
        "POST",
        "/v1/kitchens/k1:echo",
        b'{"choice_text": "a", "choice_number": 1}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "choice_number",
    ),
    (
        "field-set-twice",
        "POST",
        "/v1/kitchens/k1:echo",
        b'{"f_int32": 1, "fInt32": 2}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "fInt32",
    ),
    (
        "null-in-array",
        "POST",
        "/v1/kitchens/k1:echo",
        b'{"r_nested": [null]}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "r_nested[0]",
    ),
    (
        "null-map-value",
        "POST",
        "/v1/kitchens/k1:echo",
        b'{"m_string": {"a": null}}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "m_string[a]",
    ),
    (
        "bad-map-int-key",
        "POST",
        "/v1/kitchens/k1:echo",
        b'{"m_nested": {"x": {}}}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "m_nested[x]",
    ),
    (
        "bad-map-bool-key",
        "POST",
        "/v1/kitchens/k1:echo",
        b'{"m_bool": {"yes": 1}}',
        JSON,
        400,
        "INVALID_REQUEST_FIELD",
        "m_bool[yes]",
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "headers", "status", "reason", "field"),
    [pytest.param(*cell[1:], id=cell[0]) for cell in BODY_REJECTIONS],
)
async def test_body_rejection(
    stack: Stack,
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
    field: str | None,
) -> None:
    before = len(stack.recorder.calls)
    response = await stack.http.request(method, url, content=body, headers=headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["details"][0]["reason"] == reason
    if field is not None:
        bad_request = next(d for d in payload["details"] if d["@type"].endswith("BadRequest"))
        assert bad_request["field_violations"][0]["field"] == field
    assert len(stack.recorder.calls) == before, "a rejected request must not reach the backend"


async def test_rpc_without_http_rule_is_not_routed(stack: Stack) -> None:
    operations = (await stack.http.get("/openapi.json")).json()
    grpc_methods = {op["x-grpc-method"] for path in operations["paths"].values() for op in path.values()}
    assert "/gatewaytest.v1.KitchenService/Internal" not in grpc_methods
    assert "/gatewaytest.v1.KitchenService/EchoKitchen" in grpc_methods
