"""The proto3 JSON mapping, strict on input, compiled once per message type.

Why not `google.protobuf.json_format`: it reports errors as prose (the gateway must name the field
in a `google.rpc.BadRequest`), walks the descriptor on every call, and accepts input that has no
business near money: non-ASCII digits (fullwidth or Arabic-Indic digits parse as numbers),
underscores (`"1_000"`), exponent strings (`"1e3"` for an int64), `true` as an enum number, and
timestamps without zero-padding (`2020-1-1T…`); see protobuf's
conformance/failure_lists/python_upb_json.txt. This module builds, per message descriptor, a
table of field readers and writers, and rejects those.

Output follows the spec with field names as declared (snake_case), 64-bit integers as strings,
enums by name, every field without presence emitted (zero values included, so `"has_more": false`
is always there) and fields with presence (messages, `optional`, oneof members) only when set.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import math
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor, json_format, message_factory
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

FieldDescriptor = descriptor.FieldDescriptor

# Nesting beyond this is refused (recursive messages, Struct) instead of exhausting the stack.
NESTING_DEPTH_MAX = 32
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_MAX = 2**32 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1
# Integers above 2**53 cannot travel through a JSON float without losing digits.
EXACT_FLOAT_INTEGER_MAX = 2**53
FLOAT32_MAX = 3.4028234663852886e38
# Timestamp range allowed by the spec: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
TIMESTAMP_SECONDS_MIN = -62135596800
TIMESTAMP_SECONDS_MAX = 253402300799
DURATION_SECONDS_MAX = 315576000000

_ASCII_INTEGER = re.compile(r"-?[0-9]{1,20}")
_ASCII_FLOAT = re.compile(r"-?[0-9]{1,400}(\.[0-9]{1,400})?([eE][+-]?[0-9]{1,4})?")
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})", re.ASCII
)
_DURATION = re.compile(r"(-)?(\d+)(?:\.(\d{1,9}))?s", re.ASCII)
_FIELD_MASK_PATH = re.compile(r"[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)*", re.ASCII)

_INT_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_SINT32: (INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_SFIXED32: (INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_UINT32: (0, UINT32_MAX),
    FieldDescriptor.TYPE_FIXED32: (0, UINT32_MAX),
    FieldDescriptor.TYPE_INT64: (INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_SINT64: (INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_SFIXED64: (INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_UINT64: (0, UINT64_MAX),
    FieldDescriptor.TYPE_FIXED64: (0, UINT64_MAX),
}
_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)
_WRAPPERS = frozenset(
    {
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)
TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
FIELD_MASK = "google.protobuf.FieldMask"
STRUCT = "google.protobuf.Struct"
VALUE = "google.protobuf.Value"
LIST_VALUE = "google.protobuf.ListValue"
ANY = "google.protobuf.Any"
EMPTY = "google.protobuf.Empty"
HTTP_BODY = "google.api.HttpBody"
# Well-known types whose JSON form is not an object of their fields.
SPECIAL_TYPES = frozenset({TIMESTAMP, DURATION, FIELD_MASK, STRUCT, VALUE, LIST_VALUE, ANY, *_WRAPPERS})


class JsonFieldError(ValueError):
    """A value does not fit its field; `field` is the dotted path from the request root."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --------------------------------------------------------------------------------------------
# Scalar readers: JSON value (or query/path string) → Python value for the field.
# --------------------------------------------------------------------------------------------

ScalarReader = Callable[[object, str], object]


def _int_reader(field_type: int) -> ScalarReader:
    low, high = _INT_RANGES[field_type]

    def read(value: object, path: str) -> int:
        if isinstance(value, bool):
            raise JsonFieldError(path, "expected an integer, got a boolean")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float):
            if not value.is_integer() or abs(value) > EXACT_FLOAT_INTEGER_MAX:
                raise JsonFieldError(path, f"expected an integer, got {value!r}")
            number = int(value)
        elif isinstance(value, str):
            # ASCII digits only: int() would take fullwidth digits, "1_000" and " 12".
            if not _ASCII_INTEGER.fullmatch(value):
                raise JsonFieldError(path, f"expected an integer, got the string {value!r}")
            number = int(value)
        else:
            raise JsonFieldError(path, f"expected an integer, got {_type_name(value)}")
        if not low <= number <= high:
            raise JsonFieldError(path, f"integer {number} is out of range [{low}, {high}]")
        return number

    return read


def _float_reader(single: bool) -> ScalarReader:
    def read(value: object, path: str) -> float:
        if isinstance(value, bool):
            raise JsonFieldError(path, "expected a number, got a boolean")
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            if value == "NaN":
                return math.nan
            if value == "Infinity":
                return math.inf
            if value == "-Infinity":
                return -math.inf
            if not _ASCII_FLOAT.fullmatch(value):
                raise JsonFieldError(path, f"expected a number, got the string {value!r}")
            number = float(value)
        else:
            raise JsonFieldError(path, f"expected a number, got {_type_name(value)}")
        if math.isinf(number) or (single and abs(number) > FLOAT32_MAX):
            raise JsonFieldError(path, "number is out of range")
        return number

    return read


def _read_bool(value: object, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise JsonFieldError(path, f"expected true or false, got {_type_name(value)}")


def _read_string(value: object, path: str) -> str:
    if isinstance(value, str):
        return value
    raise JsonFieldError(path, f"expected a string, got {_type_name(value)}")


def _read_bytes(value: object, path: str) -> bytes:
    if not isinstance(value, str):
        raise JsonFieldError(path, f"expected a base64 string, got {_type_name(value)}")
    text = value.rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9+/_-]*", text, re.ASCII):
        raise JsonFieldError(path, "expected a base64 string")
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise JsonFieldError(path, "expected a base64 string") from None


def _enum_reader(enum: descriptor.EnumDescriptor) -> ScalarReader:
    by_name = {value.name: value.number for value in enum.values}
    by_upper = {value.name.upper(): value.number for value in enum.values}
    numbers = frozenset(by_name.values())
    choices = ", ".join(v.name for v in enum.values if v.number != 0) or ", ".join(by_name)

    def read(value: object, path: str) -> int:
        if isinstance(value, str):
            number = by_name.get(value)
            if number is None:
                # Lower-case names are accepted on input ("manual" for MANUAL).
                number = by_upper.get(value.upper()) if value.isascii() else None
            if number is None:
                raise JsonFieldError(path, f"unknown value {value!r}; expected one of {choices}")
            return number
        if isinstance(value, int) and not isinstance(value, bool):
            if value not in numbers:
                raise JsonFieldError(path, f"unknown enum number {value}")
            return value
        raise JsonFieldError(path, f"expected an enum name, got {_type_name(value)}")

    return read


def scalar_reader(field: FieldDescriptor) -> ScalarReader:
    """The reader of a scalar or enum field's JSON value."""
    field_type = field.type
    if field_type in _INT_RANGES:
        return _int_reader(field_type)
    if field_type == FieldDescriptor.TYPE_DOUBLE:
        return _float_reader(single=False)
    if field_type == FieldDescriptor.TYPE_FLOAT:
        return _float_reader(single=True)
    if field_type == FieldDescriptor.TYPE_BOOL:
        return _read_bool
    if field_type == FieldDescriptor.TYPE_STRING:
        return _read_string
    if field_type == FieldDescriptor.TYPE_BYTES:
        return _read_bytes
    if field_type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return _enum_reader(field.enum_type)
    raise TypeError(f"{field.full_name} is not a scalar field")


def string_to_json(field: FieldDescriptor, text: str, path: str) -> object:
    """Turn a query/path string into the JSON value its field's reader expects."""
    field_type = field.type
    if field_type == FieldDescriptor.TYPE_BOOL:
        if text in {"true", "1"}:
            return True
        if text in {"false", "0"}:
            return False
        raise JsonFieldError(path, f"expected true or false, got {text!r}")
    if field_type == FieldDescriptor.TYPE_ENUM and _ASCII_INTEGER.fullmatch(text):
        return int(text)
    return text


# --------------------------------------------------------------------------------------------
# Well-known types.
# --------------------------------------------------------------------------------------------


def parse_timestamp(value: object, path: str) -> tuple[int, int]:
    """RFC 3339 with upper-case T and Z, zero-padded fields, at most 9 fractional digits."""
    if not isinstance(value, str):
        raise JsonFieldError(path, f"expected an RFC 3339 timestamp string, got {_type_name(value)}")
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise JsonFieldError(path, f"expected an RFC 3339 timestamp like 2026-01-31T12:00:00Z, got {value!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=datetime.UTC
        )
    except ValueError as error:
        raise JsonFieldError(path, f"invalid timestamp {value!r}: {error}") from None
    offset = 0
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
        if zone_hours > 23 or zone_minutes > 59:
            raise JsonFieldError(path, f"invalid time zone offset in {value!r}")
        offset = sign * (zone_hours * 3600 + zone_minutes * 60)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    seconds = int((moment - epoch).total_seconds()) - offset
    nanos = int((fraction or "").ljust(9, "0")) if fraction else 0
    if not TIMESTAMP_SECONDS_MIN <= seconds <= TIMESTAMP_SECONDS_MAX:
        raise JsonFieldError(path, "timestamp is outside 0001-01-01 to 9999-12-31")
    return seconds, nanos


def parse_duration(value: object, path: str) -> tuple[int, int]:
    """`<seconds>[.<fraction>]s`, at most ±315,576,000,000 s."""
    if not isinstance(value, str):
        raise JsonFieldError(path, f'expected a duration string like "1.5s", got {_type_name(value)}')
    match = _DURATION.fullmatch(value)
    if match is None:
        raise JsonFieldError(path, f'expected a duration like "1.5s", got {value!r}')
    negative, whole, fraction = match.groups()
    seconds = int(whole)
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    if seconds > DURATION_SECONDS_MAX:
        raise JsonFieldError(path, "duration is out of range")
    if negative:
        seconds, nanos = -seconds, -nanos
    return seconds, nanos


def _camel_to_snake(path: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), path)


def _snake_to_camel(path: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), path)


def parse_field_mask(value: object, path: str) -> list[str]:
    """Comma-separated lowerCamel paths → snake_case paths."""
    if not isinstance(value, str):
        raise JsonFieldError(path, f"expected a field mask string, got {_type_name(value)}")
    if not value:
        return []
    paths = []
    for item in value.split(","):
        if not _FIELD_MASK_PATH.fullmatch(item):
            raise JsonFieldError(path, f"invalid field mask path {item!r} (lowerCamelCase, dot-separated)")
        paths.append(_camel_to_snake(item))
    return paths


def _fill_value(target: Message, value: object, path: str, depth: int) -> None:
    if depth > NESTING_DEPTH_MAX:
        raise JsonFieldError(path, f"nested deeper than {NESTING_DEPTH_MAX} levels")
    if value is None:
        target.null_value = 0  # type: ignore[attr-defined]
    elif isinstance(value, bool):
        target.bool_value = value  # type: ignore[attr-defined]
    elif isinstance(value, (int, float)):
        target.number_value = float(value)  # type: ignore[attr-defined]
    elif isinstance(value, str):
        target.string_value = value  # type: ignore[attr-defined]
    elif isinstance(value, list):
        _fill_list(target.list_value, value, path, depth + 1)  # type: ignore[attr-defined]
    elif isinstance(value, dict):
        _fill_struct(target.struct_value, value, path, depth + 1)  # type: ignore[attr-defined]
    else:
        raise JsonFieldError(path, f"unsupported JSON value {_type_name(value)}")


def _fill_struct(target: Message, value: object, path: str, depth: int) -> None:
    if not isinstance(value, dict):
        raise JsonFieldError(path, f"expected an object, got {_type_name(value)}")
    if depth > NESTING_DEPTH_MAX:
        raise JsonFieldError(path, f"nested deeper than {NESTING_DEPTH_MAX} levels")
    target.SetInParent()
    fields = target.fields  # type: ignore[attr-defined]
    for key, item in value.items():
        _fill_value(fields[key], item, _join(path, key), depth + 1)


def _fill_list(target: Message, value: object, path: str, depth: int) -> None:
    if not isinstance(value, list):
        raise JsonFieldError(path, f"expected an array, got {_type_name(value)}")
    if depth > NESTING_DEPTH_MAX:
        raise JsonFieldError(path, f"nested deeper than {NESTING_DEPTH_MAX} levels")
    target.SetInParent()
    values = target.values  # type: ignore[attr-defined]
    for index, item in enumerate(value):
        _fill_value(values.add(), item, f"{path}[{index}]", depth + 1)


def _value_to_json(value: Message) -> object:
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "struct_value":
        return _struct_to_json(value.struct_value)  # type: ignore[attr-defined]
    if kind == "list_value":
        return [_value_to_json(item) for item in value.list_value.values]  # type: ignore[attr-defined]
    number = getattr(value, kind)
    if kind == "number_value" and (math.isnan(number) or math.isinf(number)):
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    return number


def _struct_to_json(struct: Message) -> dict[str, object]:
    return {key: _value_to_json(item) for key, item in struct.fields.items()}  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Compiled codecs.
# --------------------------------------------------------------------------------------------

Filler = Callable[[Message, object, str, int], None]
Printer = Callable[[Any], object]


class MessageCodec:
    """Reads JSON into, and prints JSON from, one message type; built once and cached."""

    def __init__(self, message_descriptor: descriptor.Descriptor, registry: CodecRegistry) -> None:
        self.descriptor = message_descriptor
        self.full_name = message_descriptor.full_name
        self.message_class: type[Message] = message_factory.GetMessageClass(message_descriptor)
        self._registry = registry
        self._fields: dict[str, tuple[FieldDescriptor, Filler]] = {}
        # JSON of the fields without presence at their zero value; print() starts from a copy and
        # overwrites what ListFields() reports as set (C-fast, and a typical message sets few).
        self._defaults: dict[str, object] = {}
        self._printers: dict[int, tuple[str, Printer]] = {}
        self._special: Printer | None = None
        self._compiled = False

    def _compile(self) -> None:
        # Compiled lazily so recursive message types refer to each other's codecs without looping.
        if self._compiled:
            return
        self._compiled = True
        self._special = self._registry.special_printer(self.full_name)
        for field in self.descriptor.fields:
            filler = self._registry.filler(field)
            self._fields[field.name] = (field, filler)
            if field.json_name != field.name:
                self._fields[field.json_name] = (field, filler)
            printer = self._registry.printer(field)
            self._printers[field.number] = (field.name, printer)
            if field.has_presence:
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                self._defaults[field.name] = {}
            elif field.is_repeated:
                self._defaults[field.name] = []
            else:
                self._defaults[field.name] = printer(field.default_value)

    def field(self, name: str) -> FieldDescriptor | None:
        """The field called `name` (proto name or JSON name)."""
        self._compile()
        entry = self._fields.get(name)
        return entry[0] if entry else None

    def fill(self, target: Message, value: object, path: str = "", depth: int = 0) -> None:
        """Merge the JSON object `value` into `target`; raises JsonFieldError naming the field."""
        self._compile()
        special = self._registry.special_filler(self.full_name)
        if special is not None:
            special(target, value, path, depth)
            return
        if not isinstance(value, dict):
            raise JsonFieldError(path or "body", f"expected an object, got {_type_name(value)}")
        if depth > NESTING_DEPTH_MAX:
            raise JsonFieldError(path, f"nested deeper than {NESTING_DEPTH_MAX} levels")
        target.SetInParent()
        seen: dict[int, str] = {}
        oneofs: dict[str, str] = {}
        fields = self._fields
        for key, item in value.items():
            entry = fields.get(key)
            field_path = _join(path, key)
            if entry is None:
                raise JsonFieldError(field_path, "unknown field")
            field, filler = entry
            if field.number in seen:
                raise JsonFieldError(field_path, f"set twice (also as {seen[field.number]!r})")
            seen[field.number] = key
            if item is None and not (
                field.message_type is not None and field.message_type.full_name == VALUE
            ):
                # null means "unset" for every field except google.protobuf.Value.
                continue
            oneof = field.containing_oneof
            if oneof is not None:
                if oneof.name in oneofs:
                    raise JsonFieldError(
                        field_path,
                        f"only one of the '{oneof.name}' fields may be set (also {oneofs[oneof.name]})",
                    )
                oneofs[oneof.name] = key
            filler(target, item, field_path, depth + 1)

    def parse(self, value: object) -> Message:
        """A new message from the JSON object `value`."""
        target = self.message_class()
        self.fill(target, value)
        return target

    def print(self, message: Message) -> object:
        """The JSON value (dict for ordinary messages) of `message`."""
        if not self._compiled:
            self._compile()
        if self._special is not None:
            return self._special(message)
        out = self._defaults.copy()
        printers = self._printers
        for field, value in message.ListFields():
            name, printer = printers[field.number]
            out[name] = printer(value)
        return out


class CodecRegistry:
    """Codecs by message full name; one per process is enough (see `default_registry`)."""

    def __init__(self) -> None:
        self._codecs: dict[str, MessageCodec] = {}
        self._special_fillers: dict[str, Filler] = {
            TIMESTAMP: self._fill_timestamp,
            DURATION: self._fill_duration,
            FIELD_MASK: self._fill_field_mask,
            STRUCT: _fill_struct,
            LIST_VALUE: _fill_list,
            VALUE: _fill_value,
            ANY: self._fill_any,
        }
        self._special_printers: dict[str, Printer] = {
            TIMESTAMP: lambda m: m.ToJsonString(),  # type: ignore[attr-defined]
            DURATION: lambda m: m.ToJsonString(),  # type: ignore[attr-defined]
            FIELD_MASK: lambda m: ",".join(_snake_to_camel(p) for p in m.paths),  # type: ignore[attr-defined]
            STRUCT: _struct_to_json,
            LIST_VALUE: lambda m: [_value_to_json(v) for v in m.values],  # type: ignore[attr-defined]
            VALUE: _value_to_json,
            ANY: any_to_json,
        }
        for wrapper in _WRAPPERS:
            self._special_fillers[wrapper] = self._wrapper_filler(wrapper)
            self._special_printers[wrapper] = self._wrapper_printer(wrapper)

    def codec(self, message_descriptor: descriptor.Descriptor) -> MessageCodec:
        """The codec of a message type (built on first use)."""
        codec = self._codecs.get(message_descriptor.full_name)
        if codec is None:
            codec = MessageCodec(message_descriptor, self)
            self._codecs[message_descriptor.full_name] = codec
        return codec

    def special_filler(self, full_name: str) -> Filler | None:
        """Reader of a well-known type with a non-object JSON form."""
        return self._special_fillers.get(full_name)

    def special_printer(self, full_name: str) -> Printer | None:
        """Printer of a well-known type with a non-object JSON form."""
        return self._special_printers.get(full_name)

    # Well-known type fillers -----------------------------------------------------------------

    @staticmethod
    def _fill_timestamp(target: Message, value: object, path: str, _depth: int) -> None:
        seconds, nanos = parse_timestamp(value, path)
        target.seconds = seconds  # type: ignore[attr-defined]
        target.nanos = nanos  # type: ignore[attr-defined]

    @staticmethod
    def _fill_duration(target: Message, value: object, path: str, _depth: int) -> None:
        seconds, nanos = parse_duration(value, path)
        target.seconds = seconds  # type: ignore[attr-defined]
        target.nanos = nanos  # type: ignore[attr-defined]

    @staticmethod
    def _fill_field_mask(target: Message, value: object, path: str, _depth: int) -> None:
        paths = parse_field_mask(value, path)
        target.SetInParent()
        target.paths.extend(paths)  # type: ignore[attr-defined]

    @staticmethod
    def _fill_any(target: Message, value: object, path: str, _depth: int) -> None:
        if not isinstance(value, dict) or "@type" not in value:
            raise JsonFieldError(path, "expected an object with '@type'")
        try:
            json_format.ParseDict(value, target)
        except json_format.ParseError as error:
            raise JsonFieldError(path, f"invalid Any: {error}") from None

    def _wrapper_filler(self, full_name: str) -> Filler:
        from google.protobuf import wrappers_pb2  # noqa: PLC0415 - only to find the wrapper types

        wrapper: descriptor.Descriptor = wrappers_pb2.DESCRIPTOR.message_types_by_name[
            full_name.rsplit(".", 1)[1]
        ]
        read = scalar_reader(wrapper.fields_by_name["value"])

        def fill(target: Message, value: object, path: str, _depth: int) -> None:
            target.value = read(value, path)  # type: ignore[attr-defined]
            target.SetInParent()

        return fill

    def _wrapper_printer(self, full_name: str) -> Printer:
        int64 = full_name in {"google.protobuf.Int64Value", "google.protobuf.UInt64Value"}
        as_bytes = full_name == "google.protobuf.BytesValue"
        single = full_name == "google.protobuf.FloatValue"
        double = full_name == "google.protobuf.DoubleValue"

        def print_wrapper(message: Message) -> object:
            value = message.value  # type: ignore[attr-defined]
            if int64:
                return str(value)
            if as_bytes:
                return base64.b64encode(value).decode("ascii")
            if single or double:
                return _float_to_json(value, single)
            return value

        return print_wrapper

    # Field fillers and printers --------------------------------------------------------------

    def filler(self, field: FieldDescriptor) -> Filler:
        """How to merge one field's JSON value into its parent message."""
        name = field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            return self._map_filler(field)
        if field.is_repeated:
            if field.message_type is not None:
                codec = self.codec(field.message_type)

                def fill_repeated_messages(target: Message, value: object, path: str, depth: int) -> None:
                    if not isinstance(value, list):
                        raise JsonFieldError(path, f"expected an array, got {_type_name(value)}")
                    container = getattr(target, name)
                    for index, item in enumerate(value):
                        if item is None:
                            raise JsonFieldError(f"{path}[{index}]", "null is not allowed in an array")
                        codec.fill(container.add(), item, f"{path}[{index}]", depth + 1)

                return fill_repeated_messages
            read = scalar_reader(field)

            def fill_repeated_scalars(target: Message, value: object, path: str, _depth: int) -> None:
                if not isinstance(value, list):
                    raise JsonFieldError(path, f"expected an array, got {_type_name(value)}")
                getattr(target, name).extend([read(item, f"{path}[{i}]") for i, item in enumerate(value)])

            return fill_repeated_scalars
        if field.message_type is not None:
            codec = self.codec(field.message_type)

            def fill_message(target: Message, value: object, path: str, depth: int) -> None:
                codec.fill(getattr(target, name), value, path, depth)

            return fill_message
        read = scalar_reader(field)

        def fill_scalar(target: Message, value: object, path: str, _depth: int) -> None:
            setattr(target, name, read(value, path))

        return fill_scalar

    def _map_filler(self, field: FieldDescriptor) -> Filler:
        name = field.name
        entry = field.message_type
        assert entry is not None
        key_field = entry.fields_by_name["key"]
        value_field = entry.fields_by_name["value"]
        key_type = key_field.type
        read_key = scalar_reader(key_field)
        value_codec = self.codec(value_field.message_type) if value_field.message_type is not None else None
        read_value = scalar_reader(value_field) if value_codec is None else None

        def convert_key(key: str, path: str) -> object:
            if key_type == FieldDescriptor.TYPE_BOOL:
                if key not in {"true", "false"}:
                    raise JsonFieldError(path, f'map key {key!r} must be "true" or "false"')
                return key == "true"
            return read_key(key, path)

        def fill_map(target: Message, value: object, path: str, depth: int) -> None:
            if not isinstance(value, dict):
                raise JsonFieldError(path, f"expected an object, got {_type_name(value)}")
            container = getattr(target, name)
            for key, item in value.items():
                item_path = f"{path}[{key}]"
                converted = convert_key(key, item_path)
                if item is None and not (value_codec is not None and value_codec.full_name == VALUE):
                    raise JsonFieldError(item_path, "null is not allowed as a map value")
                if value_codec is not None:
                    value_codec.fill(container[converted], item, item_path, depth + 1)
                else:
                    assert read_value is not None
                    container[converted] = read_value(item, item_path)

        return fill_map

    def printer(self, field: FieldDescriptor) -> Printer:
        """How to print one field's value (the container for repeated and map fields)."""
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field = field.message_type.fields_by_name["key"]
            value_printer = self._single_printer(field.message_type.fields_by_name["value"])
            bool_keys = key_field.type == FieldDescriptor.TYPE_BOOL

            def print_map(container: Any) -> object:
                if bool_keys:
                    return {("true" if k else "false"): value_printer(v) for k, v in container.items()}
                return {str(k): value_printer(v) for k, v in container.items()}

            return print_map
        single = self._single_printer(field)
        if field.is_repeated:
            return lambda container: [single(item) for item in container]
        return single

    def _single_printer(self, field: FieldDescriptor) -> Printer:
        field_type = field.type
        if field.message_type is not None:
            codec = self.codec(field.message_type)
            return codec.print
        if field_type in _INT64_TYPES:
            return str
        if field_type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            names = {value.number: value.name for value in field.enum_type.values}
            return lambda number: names.get(number, number)
        if field_type == FieldDescriptor.TYPE_BYTES:
            return lambda data: base64.b64encode(data).decode("ascii")
        if field_type == FieldDescriptor.TYPE_FLOAT:
            return lambda number: _float_to_json(number, True)
        if field_type == FieldDescriptor.TYPE_DOUBLE:
            return lambda number: _float_to_json(number, False)
        return _identity

    def message_codec(self, message_class: type[Message]) -> MessageCodec:
        """Shortcut: the codec of a generated class."""
        return self.codec(message_class.DESCRIPTOR)  # type: ignore[arg-type]


def _identity(value: object) -> object:
    return value


def _float_to_json(value: float, single: bool) -> object:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return type_checkers.ToShortestFloat(value) if single else value


def any_to_json(message: Message) -> dict[str, object]:
    """An Any as JSON; a type this process does not know keeps its bytes (never dropped)."""
    try:
        return json_format.MessageToDict(message, preserving_proto_field_name=True)  # type: ignore[no-any-return]
    except (TypeError, KeyError, json_format.Error):
        return {
            "@type": message.type_url,  # type: ignore[attr-defined]
            "value": base64.b64encode(message.value).decode("ascii"),  # type: ignore[attr-defined]
        }


default_registry = CodecRegistry()
