"""OpenAPI 3.1 document generated from the route table and the proto comments.

The same `Binding` objects that serve requests describe them here, so the document cannot drift
from what the gateway does: one operation per binding (`Service_Method`, additional bindings
`Service_Method_2`…), path variables as parameters (with a pattern for multi-segment variables),
every query-settable field as a query parameter, request and response schemas in the proto3 JSON
form the gateway speaks (int64 as string or integer, enums by name, RFC 3339 timestamps), one
error schema (`google.rpc.Status`) and a bearer security scheme.

Generated `_pb2` modules do not carry comments, so the descriptions come from compiling the
.proto sources once with protoc's `--include_source_info` (grpc_tools, already a dependency).
"""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import grpc_tools
from google.protobuf import descriptor, descriptor_pb2
from grpc_tools import protoc

from chassis import __version__
from gateway import protojson, routes, templates
from gateway.settings import GatewaySettings

FieldDescriptor = descriptor.FieldDescriptor
OPENAPI_METHODS = frozenset({"get", "put", "post", "delete", "patch"})
_INT64_SCHEMA = {"type": ["string", "integer"], "format": "int64", "pattern": "^-?[0-9]+$"}
_UINT64_SCHEMA = {"type": ["string", "integer"], "format": "uint64", "pattern": "^[0-9]+$", "minimum": 0}
_INT32_SCHEMA = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32_SCHEMA = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
_SCALAR_SCHEMAS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_INT64: _INT64_SCHEMA,
    FieldDescriptor.TYPE_SINT64: _INT64_SCHEMA,
    FieldDescriptor.TYPE_SFIXED64: _INT64_SCHEMA,
    FieldDescriptor.TYPE_UINT64: _UINT64_SCHEMA,
    FieldDescriptor.TYPE_FIXED64: _UINT64_SCHEMA,
    FieldDescriptor.TYPE_INT32: _INT32_SCHEMA,
    FieldDescriptor.TYPE_SINT32: _INT32_SCHEMA,
    FieldDescriptor.TYPE_SFIXED32: _INT32_SCHEMA,
    FieldDescriptor.TYPE_UINT32: _UINT32_SCHEMA,
    FieldDescriptor.TYPE_FIXED32: _UINT32_SCHEMA,
    FieldDescriptor.TYPE_DOUBLE: {"type": ["number", "string"], "format": "double", "enum_strings": True},
    FieldDescriptor.TYPE_FLOAT: {"type": ["number", "string"], "format": "float", "enum_strings": True},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_WKT_SCHEMAS: dict[str, dict[str, Any]] = {
    protojson.TIMESTAMP: {"type": "string", "format": "date-time"},
    protojson.DURATION: {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"},
    protojson.FIELD_MASK: {"type": "string"},
    protojson.STRUCT: {"type": "object", "additionalProperties": True},
    protojson.VALUE: {},
    protojson.LIST_VALUE: {"type": "array"},
    protojson.ANY: {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
}
STATUS_SCHEMA = {
    "type": "object",
    "description": "google.rpc.Status: every non-2xx response has this shape.",
    "properties": {
        "code": {"type": "integer", "format": "int32", "description": "gRPC status code."},
        "message": {"type": "string", "description": "Developer-facing message."},
        "details": {
            "type": "array",
            "description": "google.rpc details: ErrorInfo (reason), BadRequest, RetryInfo, …",
            "items": _WKT_SCHEMAS[protojson.ANY],
        },
    },
    "required": ["code", "message", "details"],
}


def load_comments(file_names: Iterable[str], source_dirs: Sequence[pathlib.Path]) -> dict[str, str]:
    """Leading comments of every element of the given .proto files, by full name."""
    names = sorted({name for name in file_names if any((d / name).exists() for d in source_dirs)})
    if not names:
        return {}
    import google.api  # noqa: PLC0415 - located at run time, like scripts/gen_protos.py

    googleapis = pathlib.Path(next(iter(google.api.__path__))).parent.parent
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as folder:
        out = pathlib.Path(folder) / "descriptors.pb"
        args = [
            "grpc_tools.protoc",
            *(f"-I{d}" for d in source_dirs if d.exists()),
            f"-I{googleapis}",
            f"-I{well_known}",
            f"--descriptor_set_out={out}",
            "--include_source_info",
            *names,
        ]
        if protoc.main(args) != 0 or not out.exists():
            return {}
        descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    comments: dict[str, str] = {}
    for file in descriptor_set.file:
        index = _path_index(file)
        for location in file.source_code_info.location:
            name = index.get(tuple(location.path))
            text = location.leading_comments.strip()
            if name and text:
                comments[name] = " ".join(line.strip() for line in text.splitlines())
    return comments


def _path_index(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    index: dict[tuple[int, ...], str] = {}
    prefix = file.package + "." if file.package else ""

    def enum(proto: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str) -> None:
        name = scope + proto.name
        index[path] = name
        for i, value in enumerate(proto.value):
            index[(*path, 2, i)] = f"{name}.{value.name}"

    def message(proto: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str) -> None:
        name = scope + proto.name
        index[path] = name
        for i, field in enumerate(proto.field):
            index[(*path, 2, i)] = f"{name}.{field.name}"
        for i, nested in enumerate(proto.nested_type):
            message(nested, (*path, 3, i), name + ".")
        for i, nested_enum in enumerate(proto.enum_type):
            enum(nested_enum, (*path, 4, i), name + ".")

    for i, proto in enumerate(file.message_type):
        message(proto, (4, i), prefix)
    for i, proto_enum in enumerate(file.enum_type):
        enum(proto_enum, (5, i), prefix)
    for i, service in enumerate(file.service):
        index[(6, i)] = prefix + service.name
        for j, method in enumerate(service.method):
            index[(6, i, 2, j)] = f"{prefix}{service.name}.{method.name}"
    return index


class _Builder:
    def __init__(self, comments: dict[str, str]) -> None:
        self.comments = comments
        self.schemas: dict[str, dict[str, Any]] = {"google.rpc.Status": STATUS_SCHEMA}

    def describe(self, schema: dict[str, Any], full_name: str) -> dict[str, Any]:
        text = self.comments.get(full_name)
        if text:
            if "$ref" in schema:
                return {"allOf": [schema], "description": text}
            return {**schema, "description": text}
        return schema

    def message_ref(self, message: descriptor.Descriptor) -> dict[str, Any]:
        full_name = message.full_name
        if full_name in _WKT_SCHEMAS:
            return dict(_WKT_SCHEMAS[full_name])
        if full_name in protojson._WRAPPERS:
            inner = self.scalar(message.fields_by_name["value"])
            return {**inner, "type": [*_types(inner), "null"]}
        if full_name not in self.schemas:
            self.schemas[full_name] = {}  # placeholder: recursive types refer to it
            properties = {field.name: self.field(field) for field in message.fields}
            schema: dict[str, Any] = {
                "type": "object",
                "properties": properties,
                "additionalProperties": False,
            }
            oneofs = [o for o in message.oneofs if not (len(o.fields) == 1 and o.name.startswith("_"))]
            text = self.comments.get(full_name, "")
            if oneofs:
                groups = "; ".join(f"at most one of {', '.join(f.name for f in o.fields)}" for o in oneofs)
                text = f"{text} ({groups})".strip()
            if text:
                schema["description"] = text
            self.schemas[full_name] = schema
        return {"$ref": f"#/components/schemas/{full_name}"}

    def scalar(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            return {"type": "string", "enum": [value.name for value in field.enum_type.values]}
        schema = dict(_SCALAR_SCHEMAS[field.type])
        if schema.pop("enum_strings", False):
            schema["pattern"] = "^(NaN|-?Infinity)$"
        return schema

    def single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None:
            return self.message_ref(field.message_type)
        return self.scalar(field)

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = self.single(field.message_type.fields_by_name["value"])
            schema: dict[str, Any] = {"type": "object", "additionalProperties": value}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.single(field)}
        else:
            schema = self.single(field)
        return self.describe(schema, field.full_name)

    def body_schema(self, binding: routes.Binding) -> dict[str, Any]:
        request = binding.method.input_type
        if binding.body != "*":
            assert binding.body_field is not None
            return self.field(binding.body_field)
        reference = self.message_ref(request)
        bound = {
            variable.field_path[0] for variable, _ in binding.path_fields if len(variable.field_path) == 1
        }
        if not bound:
            return reference
        full = self.schemas[request.full_name]
        properties = {k: v for k, v in full["properties"].items() if k not in bound}
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def response_schema(self, binding: routes.Binding) -> dict[str, Any]:
        if binding.response_field is not None:
            return self.field(binding.response_field)
        return self.message_ref(binding.method.output_type)


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", [])
    return list(kind) if isinstance(kind, list) else [kind]


def _parameter_schema(builder: _Builder, leaf: routes.LeafField) -> dict[str, Any]:
    field = leaf.leaf
    single = builder.single(field)
    if "$ref" in single:
        single = {"type": "string"}
    return {"type": "array", "items": single} if leaf.repeated else single


def document(
    bindings: Sequence[routes.Binding], source_dirs: Sequence[pathlib.Path], settings: GatewaySettings
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `bindings`."""
    files = {binding.service.file.name for binding in bindings}
    comments = load_comments(files, source_dirs)
    builder = _Builder(comments)
    paths: dict[str, dict[str, Any]] = {}
    for binding in bindings:
        verb = binding.http_method.lower()
        if verb not in OPENAPI_METHODS:
            continue
        path, path_parameters = binding.template.openapi_path()
        operation = _operation(builder, binding, path_parameters)
        paths.setdefault(path, {})[verb] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Clearhouse API",
            "version": __version__,
            "description": (
                "REST surface of Clearhouse, transcoded from the gRPC contracts. Field names are "
                "snake_case as declared; 64-bit integers are emitted as strings and accepted as "
                "numbers or strings; enums by name (lower case accepted on input); timestamps RFC "
                "3339. Unknown fields and query parameters are rejected. Every error is a "
                "google.rpc.Status."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": builder.schemas,
            "responses": {
                "Error": {
                    "description": "Any error: a google.rpc.Status with its details.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}
                    },
                }
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A merchant's secret key (sk_…) or the platform admin key.",
                }
            },
        },
        "security": [{"bearerAuth": []}],
    }


def _operation(
    builder: _Builder, binding: routes.Binding, path_parameters: list[tuple[str, templates.Variable, str]]
) -> dict[str, Any]:
    method_name = binding.method.full_name
    text = builder.comments.get(method_name, "")
    parameters: list[dict[str, Any]] = []
    leaves = {variable.dotted: leaf for variable, leaf in binding.path_fields}
    for name, variable, segment in path_parameters:
        leaf = leaves[variable.dotted]
        description = builder.comments.get(leaf.leaf.full_name, "")
        if variable.single_segment:
            schema = _parameter_schema(builder, leaf)
            if schema.get("type") == "string":
                schema = {**schema, "minLength": 1}
        else:
            schema = {"type": "string", "minLength": 1}
            where = f"one segment ({segment}) of {variable.dotted}, whose pattern is {variable.pattern!r}"
            description = f"{description} ({where})".strip()
        parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    seen: set[str] = set()
    for leaf in binding.query_fields.values():
        if leaf.name in seen:
            continue
        seen.add(leaf.name)
        query: dict[str, Any] = {"name": leaf.name, "in": "query", "schema": _parameter_schema(builder, leaf)}
        if leaf.repeated:
            query.update(style="form", explode=True)
        if leaf.leaf.full_name in builder.comments:
            query["description"] = builder.comments[leaf.leaf.full_name]
        parameters.append(query)
    if binding.http_method != "GET":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "description": "Makes a retry safe: the same key and request return the stored outcome.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[\\x21-\\x7e][\\x20-\\x7e]*$",
                },
            }
        )
    operation: dict[str, Any] = {
        "operationId": binding.operation_id,
        "tags": [binding.service.name],
        "summary": text.split(". ")[0].rstrip(".") if text else binding.method.name,
        "description": text,
        "x-grpc-method": binding.grpc_path,
        "parameters": parameters,
        "responses": {"default": {"$ref": "#/components/responses/Error"}},
    }
    if binding.body_is_http_body:
        operation["security"] = []
        parameters.append(
            {
                "name": "Provider-Signature",
                "in": "header",
                "required": True,
                "description": 't=<unix>,v1=<hex HMAC-SHA256 of "t.body">',
                "schema": {"type": "string"},
            }
        )
        operation["requestBody"] = {
            "required": True,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    elif binding.body:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": builder.body_schema(binding)}},
        }
    if binding.response_is_http_body:
        ok = {
            "description": "Raw body.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    else:
        ok = {
            "description": "OK",
            "content": {"application/json": {"schema": builder.response_schema(binding)}},
        }
    operation["responses"] = {"200": ok, **operation["responses"]}
    return operation
