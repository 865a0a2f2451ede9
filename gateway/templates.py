"""HTTP path templates of `google.api.http` rules: parse, match, expand.

Grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

Escaping follows the spec: a variable that spans exactly one segment (`{id}`, `{id=*}`) is fully
percent-decoded, so `%2F` in an id yields a `/`; a variable that spans several segments
(`{name=merchants/*}`, `{path=**}`) is decoded except `%2F`/`%2f`, which stay escaped so the value's
segment structure survives the round trip. Matching runs on the raw (still escaped) request path.
"""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import quote

# A template longer than this is a mistake in a proto, not a real route.
TEMPLATE_SEGMENTS_MAX = 64
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERAL = re.compile(r"[^/{}*:=]+")
_HEX = frozenset("0123456789abcdefABCDEF")


class TemplateError(ValueError):
    """A path template in a `google.api.http` rule does not follow the grammar."""


class PathEscapeError(ValueError):
    """A request path holds a malformed percent-escape or invalid UTF-8."""


@dataclasses.dataclass(frozen=True, slots=True)
class Variable:
    """A field bound by the template: segments [start, end) of the path (end None = to the end)."""

    field_path: tuple[str, ...]
    start: int
    end: int | None
    # The sub-template as written, e.g. "*" or "merchants/*/x/*".
    pattern: str

    @property
    def single_segment(self) -> bool:
        """True when the variable covers exactly one `*` segment (fully decoded)."""
        return self.pattern == "*"

    @property
    def dotted(self) -> str:
        """The field path joined with dots."""
        return ".".join(self.field_path)


@dataclasses.dataclass(frozen=True, slots=True)
class PathTemplate:
    """A compiled template: segment kinds, variables and the optional verb."""

    source: str
    # Each segment: a literal string, "*" or "**" (a literal never equals "*" or "**").
    segments: tuple[str, ...]
    variables: tuple[Variable, ...]
    verb: str | None

    @property
    def has_deep_wildcard(self) -> bool:
        """True when the template ends in `**` (matches zero or more segments)."""
        return bool(self.segments) and self.segments[-1] == "**"

    @property
    def literal_count(self) -> int:
        """How many literal segments (more literals = more specific)."""
        return sum(1 for s in self.segments if s not in {"*", "**"})

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Variables extracted from `raw_path` (still percent-encoded), or None if it does not match.

        Raises PathEscapeError on a malformed escape inside a bound variable.
        """
        if not raw_path.startswith("/"):
            return None
        parts = raw_path[1:].split("/")
        if self.verb is not None:
            last = parts[-1]
            suffix = ":" + self.verb
            if not last.endswith(suffix) or len(last) == len(suffix):
                return None
            parts[-1] = last[: -len(suffix)]
        segments = self.segments
        if self.has_deep_wildcard:
            if len(parts) < len(segments) - 1:
                return None
        elif len(parts) != len(segments):
            return None
        for segment, part in zip(segments, parts, strict=False):
            if segment == "**":
                break
            if segment == "*":
                if not part:
                    return None
            elif segment != part:
                return None
        values: dict[str, str] = {}
        for variable in self.variables:
            chosen = parts[variable.start :] if variable.end is None else parts[variable.start : variable.end]
            if variable.single_segment:
                values[variable.dotted] = percent_decode(chosen[0], keep_slash=False)
            else:
                values[variable.dotted] = percent_decode("/".join(chosen), keep_slash=True)
        return values

    def expand(self, values: dict[str, str]) -> str:
        """The path for `values` (the client side of the escaping rules)."""
        out: list[str] = []
        index = 0
        for variable in self.variables:
            out.extend(self.segments[index : variable.start])
            value = values[variable.dotted]
            safe = "-_.~" if variable.single_segment else "-_.~/"
            out.append(quote(value, safe=safe))
            index = len(self.segments) if variable.end is None else variable.end
        out.extend(self.segments[index:])
        path = "/" + "/".join(out)
        return path + (":" + self.verb if self.verb else "")

    def openapi_path(self) -> tuple[str, list[tuple[str, Variable, str]]]:
        """The template in OpenAPI form and its parameters (name, variable, segment pattern).

        A single-segment variable is one parameter named by its field path; a multi-segment
        variable keeps its literal segments in the path and turns each wildcard into its own
        parameter (`{name_1}`, `{name_2}`…), since an OpenAPI path parameter cannot span a `/`.
        """
        out: list[str] = []
        parameters: list[tuple[str, Variable, str]] = []
        index = 0
        for variable in self.variables:
            out.extend(self.segments[index : variable.start])
            if variable.single_segment:
                out.append("{" + variable.dotted + "}")
                parameters.append((variable.dotted, variable, "*"))
            else:
                wildcard = 0
                for segment in variable.pattern.split("/"):
                    if segment in {"*", "**"}:
                        wildcard += 1
                        name = f"{variable.dotted}_{wildcard}"
                        out.append("{" + name + "}")
                        parameters.append((name, variable, segment))
                    else:
                        out.append(segment)
            index = len(self.segments) if variable.end is None else variable.end
        out.extend(self.segments[index:])
        return "/" + "/".join(out) + (":" + self.verb if self.verb else ""), parameters


def percent_decode(text: str, *, keep_slash: bool) -> str:
    """Decode %XX escapes as UTF-8; with keep_slash, `%2F`/`%2f` stay escaped."""
    if "%" not in text:
        return text
    raw = bytearray()
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == "%":
            pair = text[index + 1 : index + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise PathEscapeError(f"malformed percent-escape {text[index : index + 3]!r}")
            if keep_slash and pair in {"2F", "2f"}:
                raw.extend(b"%2F")
            else:
                raw.append(int(pair, 16))
            index += 3
        else:
            raw.extend(char.encode("utf-8"))
            index += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PathEscapeError("percent-escapes do not decode as UTF-8") from None


def parse(source: str) -> PathTemplate:
    """Compile a template; raises TemplateError on anything outside the grammar."""
    if not source.startswith("/"):
        raise TemplateError(f"template {source!r} must start with '/'")
    body = source[1:]
    verb: str | None = None
    # The verb is a ':' after the last '/' that is outside any variable braces.
    depth = 0
    colon = -1
    for index, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == ":" and depth == 0:
            colon = index
    if colon >= 0:
        verb = body[colon + 1 :]
        body = body[:colon]
        if not _LITERAL.fullmatch(verb):
            raise TemplateError(f"template {source!r} has an invalid verb {verb!r}")
    segments: list[str] = []
    variables: list[Variable] = []
    tokens = _split_top_level(body, source)
    for token in tokens:
        if token.startswith("{"):
            if not token.endswith("}"):
                raise TemplateError(f"template {source!r}: unterminated variable {token!r}")
            inner = token[1:-1]
            field, _, pattern = inner.partition("=")
            pattern = pattern or "*"
            field_path = tuple(field.split("."))
            if not all(_IDENT.fullmatch(part) for part in field_path):
                raise TemplateError(f"template {source!r}: invalid field path {field!r}")
            start = len(segments)
            for sub in pattern.split("/"):
                _check_plain_segment(sub, source)
                segments.append(sub)
            end: int | None = None if segments[-1] == "**" else len(segments)
            variables.append(Variable(field_path, start, end, pattern))
        else:
            _check_plain_segment(token, source)
            segments.append(token)
    if "**" in segments[:-1]:
        raise TemplateError(f"template {source!r}: '**' must be the last segment")
    if len(segments) > TEMPLATE_SEGMENTS_MAX:
        raise TemplateError(f"template {source!r} has more than {TEMPLATE_SEGMENTS_MAX} segments")
    seen: set[tuple[str, ...]] = set()
    for variable in variables:
        if variable.field_path in seen:
            raise TemplateError(f"template {source!r} binds {variable.dotted} twice")
        seen.add(variable.field_path)
    return PathTemplate(source, tuple(segments), tuple(variables), verb)


def _split_top_level(body: str, source: str) -> list[str]:
    """Split on '/' outside braces, so `{name=a/*}` stays one token."""
    tokens: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        if char == "{":
            if depth:
                raise TemplateError(f"template {source!r}: nested variables")
            depth = 1
        elif char == "}":
            if not depth:
                raise TemplateError(f"template {source!r}: unbalanced '}}'")
            depth = 0
        if char == "/" and not depth:
            tokens.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise TemplateError(f"template {source!r}: unbalanced '{{'")
    tokens.append("".join(current))
    return tokens


def _check_plain_segment(segment: str, source: str) -> None:
    if segment in {"*", "**"}:
        return
    if not segment or not _LITERAL.fullmatch(segment):
        raise TemplateError(f"template {source!r}: invalid segment {segment!r}")
