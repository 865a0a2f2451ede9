"""The route table, read from the `google.api.http` options of compiled service descriptors.

Nothing here knows a particular service: `load_services(packages)` imports every `*_pb2` module
of the named Python packages and collects their services; `build_bindings` turns each HTTP rule
(and its additional bindings) into a `Binding` with everything a request needs precomputed —
the path template, which fields come from the path, the body and the query string, the message
codecs and the gRPC method path. `Router` finds the binding of a request, telling a path that
exists under another method (405 with `Allow`) from one that does not exist at all (404).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Iterable, Sequence

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor
from google.protobuf.message import Message

from gateway import protojson, templates

FieldDescriptor = descriptor.FieldDescriptor
HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")
# Query parameters may address nested fields (`a.b.c`) up to this depth.
QUERY_DEPTH_MAX = 4
# Message types that a query parameter or path variable sets from one string.
_STRING_SETTABLE_MESSAGES = frozenset(
    {protojson.TIMESTAMP, protojson.DURATION, protojson.FIELD_MASK} | protojson._WRAPPERS
)


class RouteConfigError(ValueError):
    """An HTTP rule cannot be served (unknown field, bad template, duplicate route)."""


@dataclasses.dataclass(frozen=True, slots=True)
class LeafField:
    """A field settable from one string (query parameter or path variable)."""

    name: str
    # Fields from the request root down to the leaf.
    chain: tuple[FieldDescriptor, ...]
    repeated: bool
    # Merges the converted value(s) into the leaf's parent message.
    filler: protojson.Filler

    @property
    def leaf(self) -> FieldDescriptor:
        """The field that receives the value."""
        return self.chain[-1]

    def scalar_field(self) -> FieldDescriptor:
        """The field whose scalar type interprets the string (a wrapper's `value`)."""
        leaf = self.leaf
        if leaf.message_type is not None and leaf.message_type.full_name in protojson._WRAPPERS:
            return leaf.message_type.fields_by_name["value"]  # type: ignore[no-any-return]
        return leaf


@dataclasses.dataclass(slots=True)
class Binding:
    """One HTTP route of one RPC."""

    http_method: str
    template: templates.PathTemplate
    # "" (no body), "*" (the whole request) or a top-level field name.
    body: str
    response_body: str
    service: descriptor.ServiceDescriptor
    method: descriptor.MethodDescriptor
    request_codec: protojson.MessageCodec
    response_codec: protojson.MessageCodec
    path_fields: tuple[tuple[templates.Variable, LeafField], ...]
    query_fields: dict[str, LeafField]
    body_field: FieldDescriptor | None
    body_is_http_body: bool
    response_field: FieldDescriptor | None
    response_is_http_body: bool
    # Merges the JSON body into the request (named body field only).
    body_filler: protojson.Filler | None
    # Prints the response (or its response_body field) as a JSON value.
    response_printer: protojson.Printer
    # Position among the RPC's bindings (0 = the main rule), for unique operation ids.
    index: int

    @property
    def grpc_path(self) -> str:
        """`/package.Service/Method`."""
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def rpc_attributes(self) -> dict[str, str]:
        """Attributes of the gRPC client span (OpenTelemetry semantic conventions)."""
        return {"rpc.system": "grpc", "rpc.service": self.service.full_name, "rpc.method": self.method.name}

    @property
    def route(self) -> str:
        """The template as written in the proto (`http.route` of the server span)."""
        return self.template.source

    @property
    def operation_id(self) -> str:
        """Unique per binding: `Service_Method`, `Service_Method_2` for additional bindings."""
        base = f"{self.service.name}_{self.method.name}"
        return base if self.index == 0 else f"{base}_{self.index + 1}"

    @property
    def request_class(self) -> type[Message]:
        """Generated class of the request."""
        return self.request_codec.message_class

    @property
    def response_class(self) -> type[Message]:
        """Generated class of the response."""
        return self.response_codec.message_class


def load_services(packages: Iterable[str]) -> list[descriptor.ServiceDescriptor]:
    """Every service declared in the `*_pb2` modules of the given Python packages."""
    services: list[descriptor.ServiceDescriptor] = []
    for package_name in packages:
        package = importlib.import_module(package_name)
        modules = sorted(
            info.name for info in pkgutil.iter_modules(package.__path__) if info.name.endswith("_pb2")
        )
        for module_name in modules:
            module = importlib.import_module(f"{package_name}.{module_name}")
            file_descriptor: descriptor.FileDescriptor = module.DESCRIPTOR
            services.extend(file_descriptor.services_by_name.values())
    return services


def http_rule(method: descriptor.MethodDescriptor) -> http_pb2.HttpRule | None:
    """The `google.api.http` option of an RPC, if any."""
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    return rule


def _rule_method_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise RouteConfigError("HTTP rule without a pattern")
    if pattern == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return pattern.upper(), str(getattr(rule, pattern))


def _resolve_chain(message: descriptor.Descriptor, dotted: Sequence[str]) -> tuple[FieldDescriptor, ...]:
    chain: list[FieldDescriptor] = []
    current = message
    for index, name in enumerate(dotted):
        field = current.fields_by_name.get(name)
        if field is None:
            raise RouteConfigError(f"{message.full_name} has no field {'.'.join(dotted[: index + 1])}")
        chain.append(field)
        if index < len(dotted) - 1:
            if field.message_type is None or field.is_repeated:
                raise RouteConfigError(f"{'.'.join(dotted)}: {name} is not a singular message field")
            current = field.message_type
    return tuple(chain)


def _string_settable(field: FieldDescriptor) -> bool:
    if field.message_type is None:
        return True
    return bool(field.message_type.full_name in _STRING_SETTABLE_MESSAGES)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def _query_leaves(
    message: descriptor.Descriptor, excluded: set[str], body_field: str, registry: protojson.CodecRegistry
) -> dict[str, LeafField]:
    """Query parameter name → field, for every string-settable field not bound elsewhere.

    Both the proto name and the JSON name of each field are accepted (`starting_after` and
    `startingAfter`), as the mapping spec says for parsers.
    """
    leaves: dict[str, LeafField] = {}

    def walk(current: descriptor.Descriptor, prefix: tuple[FieldDescriptor, ...]) -> None:
        for field in current.fields:
            chain = (*prefix, field)
            dotted = ".".join(f.name for f in chain)
            if dotted in excluded or (not prefix and field.name == body_field):
                continue
            if _is_map(field):
                continue
            if _string_settable(field):
                leaf = LeafField(dotted, chain, field.is_repeated, registry.filler(field))
                for name in _name_variants(chain):
                    leaves[name] = leaf
            elif (
                field.message_type is not None
                and not field.is_repeated
                and len(chain) < QUERY_DEPTH_MAX
                and field.message_type.full_name not in protojson.SPECIAL_TYPES
            ):
                # Recursive types are walked too, bounded by the depth limit.
                walk(field.message_type, chain)

    walk(message, ())
    return leaves


def _name_variants(chain: Sequence[FieldDescriptor]) -> list[str]:
    variants = [""]
    for field in chain:
        names = {field.name, field.json_name}
        variants = [f"{v}.{n}" if v else n for v in variants for n in names]
    return variants


def build_bindings(
    services: Iterable[descriptor.ServiceDescriptor], registry: protojson.CodecRegistry
) -> list[Binding]:
    """A binding for every HTTP rule (and additional binding) of every method."""
    bindings: list[Binding] = []
    seen: dict[tuple[str, str], str] = {}
    for service in services:
        for method in service.methods:
            rule = http_rule(method)
            if rule is None:
                continue
            if method.client_streaming or method.server_streaming:
                raise RouteConfigError(f"{method.full_name}: streaming RPCs are not transcoded")
            rules = [rule, *rule.additional_bindings]
            for index, current in enumerate(rules):
                binding = _build_binding(service, method, current, index, registry)
                key = (
                    binding.http_method,
                    "/".join(binding.template.segments) + ":" + str(binding.template.verb),
                )
                if key in seen:
                    raise RouteConfigError(
                        f"{binding.http_method} {binding.route} of {method.full_name} duplicates {seen[key]}"
                    )
                seen[key] = method.full_name
                bindings.append(binding)
    return bindings


def _build_binding(
    service: descriptor.ServiceDescriptor,
    method: descriptor.MethodDescriptor,
    rule: http_pb2.HttpRule,
    index: int,
    registry: protojson.CodecRegistry,
) -> Binding:
    where = f"{method.full_name} ({'additional binding' if index else 'rule'})"
    try:
        http_method, path = _rule_method_and_path(rule)
        template = templates.parse(path)
    except (RouteConfigError, templates.TemplateError) as error:
        raise RouteConfigError(f"{where}: {error}") from None
    request = method.input_type
    response = method.output_type
    path_fields = []
    for variable in template.variables:
        chain = _resolve_chain(request, variable.field_path)
        leaf = chain[-1]
        if leaf.is_repeated or not _string_settable(leaf):
            raise RouteConfigError(f"{where}: path variable {variable.dotted} must be a singular scalar")
        path_fields.append((variable, LeafField(variable.dotted, chain, False, registry.filler(leaf))))
    body_field: FieldDescriptor | None = None
    body_is_http_body = False
    if rule.body == "*":
        body_is_http_body = request.full_name == protojson.HTTP_BODY
    elif rule.body:
        body_field = request.fields_by_name.get(rule.body)
        if body_field is None:
            raise RouteConfigError(f"{where}: body field {rule.body!r} does not exist")
        for variable in template.variables:
            if variable.field_path == (rule.body,):
                raise RouteConfigError(f"{where}: {rule.body} is bound by both the path and the body")
        body_is_http_body = (
            body_field.message_type is not None and body_field.message_type.full_name == protojson.HTTP_BODY
        )
    response_field: FieldDescriptor | None = None
    if rule.response_body:
        response_field = response.fields_by_name.get(rule.response_body)
        if response_field is None:
            raise RouteConfigError(f"{where}: response_body field {rule.response_body!r} does not exist")
    response_is_http_body = (
        response_field.message_type is not None
        and response_field.message_type.full_name == protojson.HTTP_BODY
        if response_field is not None
        else response.full_name == protojson.HTTP_BODY
    )
    excluded = {variable.dotted for variable in template.variables}
    query_fields = {} if rule.body == "*" else _query_leaves(request, excluded, rule.body, registry)
    # A query name under a path-bound field is ambiguous; drop it (the path wins).
    query_fields = {
        name: leaf
        for name, leaf in query_fields.items()
        if not any(leaf.name.startswith(bound + ".") for bound in excluded)
    }
    return Binding(
        http_method=http_method,
        template=template,
        body=rule.body,
        response_body=rule.response_body,
        service=service,
        method=method,
        request_codec=registry.codec(request),
        response_codec=registry.codec(response),
        path_fields=tuple(path_fields),
        query_fields=query_fields,
        body_field=body_field,
        body_is_http_body=body_is_http_body,
        response_field=response_field,
        response_is_http_body=response_is_http_body,
        body_filler=registry.filler(body_field) if body_field is not None and not body_is_http_body else None,
        response_printer=(
            registry.printer(response_field) if response_field is not None else registry.codec(response).print
        ),
        index=index,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Match:
    """A resolved request: its binding and the raw variable values from the path."""

    binding: Binding
    values: dict[str, str]


class Router:
    """Finds the binding for (method, raw path); most specific template first."""

    def __init__(self, bindings: Sequence[Binding]) -> None:
        self.bindings = list(bindings)
        # (method, segment count, verb) → bindings; templates ending in ** are scanned separately.
        self._exact: dict[tuple[str, int, str | None], list[Binding]] = {}
        self._deep: dict[str, list[Binding]] = {}
        ordered = sorted(
            self.bindings,
            key=lambda b: (-b.template.literal_count, b.template.has_deep_wildcard),
        )
        for binding in ordered:
            template = binding.template
            if template.has_deep_wildcard:
                self._deep.setdefault(binding.http_method, []).append(binding)
            else:
                key = (binding.http_method, len(template.segments), template.verb)
                self._exact.setdefault(key, []).append(binding)

    def _candidates(self, method: str, raw_path: str) -> Iterable[Binding]:
        count = raw_path.count("/")
        last = raw_path.rsplit("/", 1)[-1]
        if ":" in last:
            yield from self._exact.get((method, count, last.rsplit(":", 1)[1]), ())
        yield from self._exact.get((method, count, None), ())
        yield from self._deep.get(method, ())

    def match(self, method: str, raw_path: str) -> Match | None:
        """The binding of `method raw_path`, or None. Raises PathEscapeError on a bad escape."""
        for binding in self._candidates(method, raw_path):
            values = binding.template.match(raw_path)
            if values is not None:
                return Match(binding, values)
        return None

    def allowed_methods(self, raw_path: str) -> list[str]:
        """HTTP methods that do have a route for `raw_path` (for 405 and `Allow`)."""
        methods = {b.http_method for b in self.bindings}
        allowed = []
        for method in sorted(methods):
            try:
                if self.match(method, raw_path) is not None:
                    allowed.append(method)
            except templates.PathEscapeError:
                allowed.append(method)
        return allowed
