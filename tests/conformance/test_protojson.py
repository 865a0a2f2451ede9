"""ProtoJSON strictness: what the proto3 JSON spec rejects, the gateway rejects (with the field named).

Several of these are accepted by `google.protobuf.json_format` (protobuf's conformance failure list
for Python names them); for each such case the test also shows json_format's behaviour, so that a
protobuf upgrade that fixes it is noticed and the note in docs/gateway.md can be updated.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.protojson import JsonFieldError, default_registry
from tests.conformance.conftest import Stack
from tests.conformance.support import kitchen_pb2 as k


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"child": value}
    return value


def deep_list(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


# (cell, JSON body, field named in the BadRequest)
REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("int-boolean", {"f_int64": True}, "f_int64"),
    ("int-non-ascii-digits", {"f_int64": "\uff11\uff12\uff13"}, "f_int64"),
    ("int-arabic-indic-digits", {"f_int32": "\u0663"}, "f_int32"),
    ("int-underscores", {"f_int64": "1_000"}, "f_int64"),
    ("int-whitespace", {"f_int64": " 12"}, "f_int64"),
    ("int-exponent-string", {"f_int64": "1e3"}, "f_int64"),
    ("int-fraction", {"f_int64": 1.5}, "f_int64"),
    ("int-float-beyond-2-53", {"f_int64": 1e19}, "f_int64"),
    ("int32-overflow", {"f_int32": 2147483648}, "f_int32"),
    ("uint32-negative", {"f_uint32": -1}, "f_uint32"),
    ("uint64-negative-string", {"f_uint64": "-1"}, "f_uint64"),
    ("int64-overflow-string", {"f_int64": "9223372036854775808"}, "f_int64"),
    ("int-object", {"f_int64": {}}, "f_int64"),
    ("enum-boolean", {"color": True}, "color"),
    ("enum-unknown-name", {"color": "PURPLE"}, "color"),
    ("enum-unknown-number", {"color": 99}, "color"),
    ("string-number", {"f_string": 5}, "f_string"),
    ("bool-string", {"f_bool": "true"}, "f_bool"),
    ("bool-number", {"f_bool": 1}, "f_bool"),
    ("double-boolean", {"f_double": False}, "f_double"),
    ("double-word", {"f_double": "1.5x"}, "f_double"),
    ("float-overflow", {"f_float": 1e39}, "f_float"),
    ("bytes-not-base64", {"f_bytes": "!!!"}, "f_bytes"),
    ("timestamp-lower-case", {"ts": "2026-01-31t12:00:00z"}, "ts"),
    ("timestamp-unpadded", {"ts": "2026-1-31T12:00:00Z"}, "ts"),
    ("timestamp-no-zone", {"ts": "2026-01-31T12:00:00"}, "ts"),
    ("timestamp-ten-fraction-digits", {"ts": "2026-01-31T12:00:00.1234567891Z"}, "ts"),
    ("timestamp-impossible-date", {"ts": "2026-02-30T12:00:00Z"}, "ts"),
    ("timestamp-year-zero", {"ts": "0000-01-01T00:00:00Z"}, "ts"),
    ("timestamp-number", {"ts": 1769860800}, "ts"),
    ("timestamp-non-ascii-digits", {"ts": "\uff12026-01-31T12:00:00Z"}, "ts"),
    ("duration-no-unit", {"dur": "1.5"}, "dur"),
    ("duration-ten-fraction-digits", {"dur": "1.0000000001s"}, "dur"),
    ("duration-too-long", {"dur": "315576000001s"}, "dur"),
    ("field-mask-snake-case", {"mask": "f_string"}, "mask"),
    ("field-mask-empty-part", {"mask": "a,,b"}, "mask"),
    ("struct-not-object", {"st": [1]}, "st"),
    ("list-value-not-array", {"lv": {}}, "lv"),
    ("wrapper-wrong-type", {"w_bool": "true"}, "w_bool"),
    ("wrapper-int64-fraction", {"w_int64": 1.5}, "w_int64"),
    ("any-without-type", {"any": {"name": "x"}}, "any"),
    ("repeated-not-array", {"r_int64": 1}, "r_int64"),
    ("repeated-bad-element", {"r_int64": [1, "x"]}, "r_int64[1]"),
    ("map-not-object", {"m_string": ["a"]}, "m_string"),
    ("message-not-object", {"nested": "x"}, "nested"),
    ("recursion-too-deep", {"nested": deep(40)}, "nested" + ".child" * 32),
    ("value-too-deep", {"val": deep_list(40)}, "val[0][0][0]"),
    ("oneof-message-and-scalar", {"choice_nested": {}, "choice_text": "x"}, "choice_text"),
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("body", "field"), [pytest.param(b, f, id=c) for c, b, f in REJECTED])
async def test_spec_rejections(stack: Stack, body: dict[str, Any], field: str) -> None:
    before = len(stack.recorder.calls)
    response = await stack.http.post("/v1/kitchens/k1:echo", json=body)
    assert response.status_code == 400, response.text
    details = response.json()["details"]
    assert details[0]["reason"] == "INVALID_REQUEST_FIELD"
    violation = next(d for d in details if d["@type"].endswith("BadRequest"))["field_violations"][0]
    assert violation["field"].startswith(field), violation
    assert len(stack.recorder.calls) == before


# Inputs json_format takes but the spec (or money) does not: the reason this codec exists.
JSON_FORMAT_ACCEPTS: list[tuple[str, dict[str, Any]]] = [
    ("non-ascii-digits", {"f_int64": "\uff11\uff12\uff13"}),
    ("underscores", {"f_int64": "1_000"}),
    ("exponent-string-for-int", {"f_int64": "1e3"}),
    ("boolean-as-enum", {"color": True}),
    ("unpadded-timestamp", {"ts": "2026-1-31T12:00:00Z"}),
]


@pytest.mark.parametrize("body", [pytest.param(b, id=c) for c, b in JSON_FORMAT_ACCEPTS])
def test_json_format_is_lenient_where_the_gateway_is_strict(body: dict[str, Any]) -> None:
    json_format.ParseDict(body, k.Kitchen())  # accepted by the reference parser (documented gap)
    codec = default_registry.codec(k.Kitchen.DESCRIPTOR)
    with pytest.raises(JsonFieldError):
        codec.parse(body)


# ---- Round trip against the reference implementation (an independent oracle) ----------------

int64s = st.integers(-(2**63), 2**63 - 1)
nested = st.builds(k.Nested, name=st.text(max_size=5), amount=int64s)
kitchens = st.builds(
    k.Kitchen,
    id=st.text(max_size=8),
    f_double=st.floats(allow_nan=False, allow_infinity=True),
    f_int32=st.integers(-(2**31), 2**31 - 1),
    f_int64=int64s,
    f_uint64=st.integers(0, 2**64 - 1),
    f_sint64=int64s,
    f_fixed32=st.integers(0, 2**32 - 1),
    f_bool=st.booleans(),
    f_string=st.text(max_size=10),
    f_bytes=st.binary(max_size=10),
    color=st.sampled_from([0, 1, 2]),
    nested=st.one_of(st.none(), nested),
    r_int64=st.lists(int64s, max_size=3),
    r_nested=st.lists(nested, max_size=2),
    m_string=st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3),
    m_nested=st.dictionaries(st.integers(-(2**31), 2**31 - 1), nested, max_size=2),
    m_bool=st.dictionaries(st.booleans(), int64s, max_size=2),
    choice_text=st.one_of(st.none(), st.text(max_size=3)),
    opt_int64=st.one_of(st.none(), int64s),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kitchens)
def test_round_trip_agrees_with_json_format(message: k.Kitchen) -> None:
    codec = default_registry.codec(k.Kitchen.DESCRIPTOR)
    printed = codec.print(message)
    # What the gateway prints, the reference parser reads back to the same message…
    assert json_format.ParseDict(printed, k.Kitchen()) == message
    # …and what the reference printer writes, the gateway reads back to the same message.
    reference = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert codec.parse(reference) == message
