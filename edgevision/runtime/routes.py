"""IoT Edge routes: `FROM <source> [WHERE <condition>] INTO <sink>`, parsed once and evaluated per message.

The condition language is IoT Hub's message-routing query language: application properties by name,
system properties as `$contentType`, `$connectionModuleId`, ..., JSON body fields as `$body.a.b` (only for
`application/json` + UTF-8 messages), literals, comparisons, `AND`/`OR`/`NOT`, arithmetic and the usual
functions. Like IoT Hub it is three-valued: a missing property or a comparison of mismatched types is
*undefined*, and a route whose condition is not exactly `true` does not take the message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from edgevision.errors import EdgeVisionError


class RouteError(EdgeVisionError, ValueError):
    """A route does not parse; `position` is the 1-based character where the problem is."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.reason = message
        self.position = position


class _Undefined:
    """IoT Hub's `undefined`: a missing property or a meaningless comparison."""

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()


@dataclass(frozen=True)
class Message:
    """What a route sees of a message."""

    module: str
    output: str
    body: bytes
    properties: Mapping[str, str] = field(default_factory=dict)
    system: Mapping[str, str] = field(default_factory=dict)  # contentType, contentEncoding, messageId, ...

    def json_body(self) -> Any:
        """The body as JSON when the message says it is UTF-8 JSON, else UNDEFINED (as IoT Hub does);
        parsed once per message, however many routes look at it."""
        return self._json

    @cached_property
    def _json(self) -> Any:
        content_type = self.system.get("contentType", "").split(";")[0].strip().lower()
        encoding = self.system.get("contentEncoding", "").strip().lower().replace("-", "")
        if content_type != "application/json" or encoding != "utf8":
            return UNDEFINED
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            return UNDEFINED


# -- sources and sinks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """`/messages/*`, `/messages/modules/<m>/*` or `/messages/modules/<m>/outputs/<o|*>` (module None = any)."""

    module: str | None
    output: str | None

    def matches(self, module: str, output: str) -> bool:
        return (self.module is None or self.module == module) and (self.output is None or self.output == output)


@dataclass(frozen=True)
class Sink:
    """`$upstream` (module None) or `BrokeredEndpoint("/modules/<m>/inputs/<i>")`."""

    module: str | None
    input: str | None = None

    @property
    def upstream(self) -> bool:
        return self.module is None

    def __str__(self) -> str:
        return "$upstream" if self.upstream else f"{self.module}/inputs/{self.input}"


Node = Callable[[Message], Any]


@dataclass(frozen=True)
class Route:
    name: str
    text: str
    source: Source
    sink: Sink
    condition: Node | None = None
    priority: int = 0
    time_to_live: int | None = None

    def accepts(self, message: Message) -> bool:
        if not self.source.matches(message.module, message.output):
            return False
        if self.condition is None:
            return True
        try:
            return self.condition(message) is True
        except (ArithmeticError, TypeError, ValueError):
            return False  # IoT Hub: an evaluation error is `undefined`, i.e. not routed

    def modules(self) -> set[str]:
        """Modules this route names (to check them against the manifest)."""
        return {m for m in (self.source.module, self.sink.module) if m}


_SOURCE = re.compile(
    r"^/messages(?:/\*|/modules/\*|/modules/(?P<module>[^/\s]+)(?:/\*|/outputs/(?P<output>[^/\s]+))?)?$"
)
_SOURCE_ALL = {"/*", "/messages", "/messages/*"}
_BROKERED = re.compile(r'^BrokeredEndpoint\s*\(\s*"(?P<path>[^"]*)"\s*\)$', re.IGNORECASE)
_ENDPOINT = re.compile(r"^/modules/(?P<module>[^/\s]+)/inputs/(?P<input>[^/\s]+)$")
_KEYWORD = re.compile(r"\b(FROM|WHERE|INTO)\b", re.IGNORECASE)


def parse_route(name: str, text: str, *, priority: int = 0, time_to_live: int | None = None) -> Route:
    """Parse one route; RouteError names the problem and its 1-based position in `text`."""
    marks = {m.group(1).upper(): m for m in _KEYWORD.finditer(_blank_strings(text))}
    start = len(text) - len(text.lstrip())
    if "FROM" not in marks or marks["FROM"].start() != start:
        raise RouteError("a route starts with FROM", start + 1)
    if "INTO" not in marks:
        raise RouteError("missing INTO", len(text.rstrip()) + 1)
    into = marks["INTO"]
    where = marks.get("WHERE")
    if where is not None and where.start() > into.start():
        raise RouteError("WHERE must come before INTO", where.start() + 1)
    source_end = where.start() if where else into.start()
    source = _parse_source(text, marks["FROM"].end(), source_end)
    condition = None
    if where is not None:
        condition = _Parser(text, where.end(), into.start()).parse()
    sink = _parse_sink(text, into.end())
    return Route(name, text, source, sink, condition, priority, time_to_live)


def _blank_strings(text: str) -> str:
    """`text` with quoted strings blanked out, so keywords inside literals are not taken for clauses."""
    return re.sub(r"'(?:[^']|'')*'|\"[^\"]*\"", lambda m: " " * len(m.group()), text)


def _parse_source(text: str, start: int, end: int) -> Source:
    raw = text[start:end].strip()
    position = start + len(text[start:end]) - len(text[start:end].lstrip()) + 1
    if not raw:
        raise RouteError("missing source after FROM", position)
    if raw in _SOURCE_ALL:
        return Source(None, None)
    match = _SOURCE.match(raw)
    if not match:
        raise RouteError(
            f"unsupported source {raw!r} (use /messages/*, /messages/modules/<module>/* or"
            " /messages/modules/<module>/outputs/<output|*>)",
            position,
        )
    output = match.group("output")
    return Source(match.group("module"), None if output in (None, "*") else output)


def _parse_sink(text: str, start: int) -> Sink:
    raw = text[start:].strip()
    position = start + len(text[start:]) - len(text[start:].lstrip()) + 1
    if raw.lower() == "$upstream":
        return Sink(None)
    match = _BROKERED.match(raw)
    if not match:
        raise RouteError(
            f'unsupported sink {raw!r} (use $upstream or BrokeredEndpoint("/modules/<m>/inputs/<i>"))', position
        )
    endpoint = _ENDPOINT.match(match.group("path"))
    if not endpoint:
        raise RouteError(f"endpoint {match.group('path')!r} is not /modules/<module>/inputs/<input>", position)
    return Sink(endpoint.group("module"), endpoint.group("input"))


# -- the condition language ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<number>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<op><>|!=|<=|>=|=|<|>|\+|-|\*|/|%|\(|\)|,|\.|\[|\])
  | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<bad>\S)
)""",
    re.VERBOSE,
)

SYSTEM_PROPERTIES = {
    "$contenttype": "contentType",
    "$contentencoding": "contentEncoding",
    "$messageid": "messageId",
    "$correlationid": "correlationId",
    "$userid": "userId",
    "$connectiondeviceid": "connectionDeviceId",
    "$connectionmoduleid": "connectionModuleId",
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fn(check: Callable[..., bool], compute: Callable[..., Any]) -> Callable[..., Any]:
    """A function that is undefined unless its arguments pass `check`."""

    def call(*args: Any) -> Any:
        return compute(*args) if check(*args) else UNDEFINED

    return call


_STR = lambda *a: all(isinstance(x, str) for x in a)  # noqa: E731
_NUM = lambda *a: all(_number(x) for x in a)  # noqa: E731
FUNCTIONS: dict[str, tuple[int, int, Callable[..., Any]]] = {  # name: (min args, max args, function)
    "is_defined": (1, 1, lambda x: x is not UNDEFINED),
    "is_null": (1, 1, lambda x: x is None),
    "is_bool": (1, 1, lambda x: isinstance(x, bool)),
    "is_number": (1, 1, _number),
    "is_string": (1, 1, lambda x: isinstance(x, str)),
    "is_array": (1, 1, lambda x: isinstance(x, list)),
    "is_object": (1, 1, lambda x: isinstance(x, dict)),
    "is_primitive": (1, 1, lambda x: x is None or isinstance(x, bool | int | float | str)),
    "abs": (1, 1, _fn(_NUM, abs)),
    "ceiling": (1, 1, _fn(_NUM, math.ceil)),
    "floor": (1, 1, _fn(_NUM, math.floor)),
    "sign": (1, 1, _fn(_NUM, lambda x: (x > 0) - (x < 0))),
    "square": (1, 1, _fn(_NUM, lambda x: x * x)),
    "power": (2, 2, _fn(_NUM, lambda x, y: x**y)),
    "exp": (1, 1, _fn(_NUM, math.exp)),
    "lower": (1, 1, _fn(_STR, str.lower)),
    "upper": (1, 1, _fn(_STR, str.upper)),
    "length": (1, 1, _fn(_STR, len)),
    "concat": (2, 99, _fn(_STR, lambda *a: "".join(a))),
    "contains": (2, 2, _fn(_STR, lambda s, t: t in s)),
    "startswith": (2, 2, _fn(_STR, str.startswith)),
    "endswith": (2, 2, _fn(_STR, str.endswith)),
    "index_of": (2, 2, _fn(_STR, str.find)),
    "substring": (
        2,
        3,
        lambda s, i, n=None: (
            UNDEFINED if not (_STR(s) and _NUM(i)) else s[int(i) : None if n is None else int(i) + int(n)]
        ),
    ),
}


def _compare(op: str, left: Any, right: Any) -> Any:
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    if op in ("=", "!=", "<>"):
        if not (_number(left) and _number(right)) and type(left) is not type(right):
            return UNDEFINED  # IoT Hub does not coerce: '5' = 5 is undefined, not false
        equal = left == right
        return equal if op == "=" else not equal
    if not ((_number(left) and _number(right)) or (isinstance(left, str) and isinstance(right, str))):
        return UNDEFINED
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    if not (_number(left) and _number(right)):
        return UNDEFINED
    if op in "/%" and right == 0:
        return UNDEFINED
    if op == "%":  # truncated remainder, as in C# (IoT Hub): -3 % 2 = -1
        remainder = math.fmod(left, right)
        return int(remainder) if isinstance(left, int) and isinstance(right, int) else remainder
    return {"+": left + right, "-": left - right, "*": left * right, "/": left / right}[op]


def _and(left: Any, right: Any) -> Any:
    if left is False or right is False:
        return False
    if left is True and right is True:
        return True
    return UNDEFINED


def _or(left: Any, right: Any) -> Any:
    if left is True or right is True:
        return True
    if left is False and right is False:
        return False
    return UNDEFINED


class _Parser:
    """Recursive descent over tokens of `text[start:end]`; builds closures evaluated per message."""

    def __init__(self, text: str, start: int, end: int) -> None:
        self.text = text
        self.end = end
        self.tokens: list[tuple[str, str, int]] = []  # (kind, value, 0-based position)
        pos = start
        while pos < end:
            match = _TOKEN.match(text, pos, end)
            if not match or match.end() == pos:
                break
            kind = match.lastgroup or ""
            if kind == "bad":
                raise RouteError(f"unexpected character {match.group(kind)!r}", match.start(kind) + 1)
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.i = 0

    # token helpers
    def _peek(self) -> tuple[str, str, int]:
        if self.i < len(self.tokens):
            return self.tokens[self.i]
        return ("end", "", len(self.text[: self.end].rstrip()))

    def _accept(self, *values: str) -> str | None:
        kind, value, _ = self._peek()
        if kind in ("op", "name") and value.upper() in values:
            self.i += 1
            return value.upper()
        return None

    def _expect(self, value: str) -> None:
        if self._accept(value) is None:
            _, got, pos = self._peek()
            raise RouteError(f"expected {value!r} but found {got or 'the end of the condition'!r}", pos + 1)

    def parse(self) -> Node:
        if not self.tokens:
            raise RouteError("empty WHERE condition", self._peek()[2] + 1)
        node = self._or()
        kind, value, pos = self._peek()
        if kind != "end":
            raise RouteError(f"unexpected {value!r}", pos + 1)
        return node

    # grammar, lowest precedence first
    def _or(self) -> Node:
        node = self._and()
        while self._accept("OR"):
            left, right = node, self._and()
            node = lambda m, a=left, b=right: _or(a(m), b(m))  # noqa: E731
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._accept("AND"):
            left, right = node, self._not()
            node = lambda m, a=left, b=right: _and(a(m), b(m))  # noqa: E731
        return node

    def _not(self) -> Node:
        if self._accept("NOT"):
            inner = self._not()
            return lambda m: (not v) if isinstance(v := inner(m), bool) else UNDEFINED
        return self._comparison()

    def _comparison(self) -> Node:
        node = self._additive()
        op = self._accept("=", "!=", "<>", "<", "<=", ">", ">=")
        if op:
            left, right = node, self._additive()
            node = lambda m, a=left, b=right, o=op: _compare(o, a(m), b(m))  # noqa: E731
        return node

    def _additive(self) -> Node:
        node = self._multiplicative()
        while op := self._accept("+", "-"):
            left, right = node, self._multiplicative()
            node = lambda m, a=left, b=right, o=op: _arithmetic(o, a(m), b(m))  # noqa: E731
        return node

    def _multiplicative(self) -> Node:
        node = self._unary()
        while op := self._accept("*", "/", "%"):
            left, right = node, self._unary()
            node = lambda m, a=left, b=right, o=op: _arithmetic(o, a(m), b(m))  # noqa: E731
        return node

    def _unary(self) -> Node:
        if self._accept("-"):
            inner = self._unary()
            return lambda m: -v if _number(v := inner(m)) else UNDEFINED
        return self._primary()

    def _primary(self) -> Node:
        kind, value, pos = self._peek()
        if kind == "end":
            raise RouteError("the condition ends too early", pos + 1)
        self.i += 1
        if kind == "number":
            number = float(value) if any(c in value for c in ".eE") else int(value)
            return lambda m: number
        if kind == "string":
            text = value[1:-1].replace("''", "'") if value[0] == "'" else json.loads(value)
            return lambda m: text
        if kind == "op" and value == "(":
            node = self._or()
            self._expect(")")
            return node
        if kind != "name":
            raise RouteError(f"unexpected {value!r}", pos + 1)
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lambda m: lowered == "true"
        if lowered == "null":
            return lambda m: None
        if lowered == "undefined":
            return lambda m: UNDEFINED
        if self._peek()[1] == "(":
            return self._call(value, pos)
        if lowered == "$body":
            return self._body_path()
        if value.startswith("$"):
            key = SYSTEM_PROPERTIES.get(lowered)
            if key is None:
                raise RouteError(f"unknown system property {value!r}", pos + 1)
            return lambda m: m.system.get(key, UNDEFINED)
        return lambda m: _property(m, value)

    def _call(self, name: str, pos: int) -> Node:
        spec = FUNCTIONS.get(name.lower())
        if spec is None:
            raise RouteError(f"unknown function {name!r}", pos + 1)
        low, high, function = spec
        self._expect("(")
        args: list[Node] = []
        if not self._accept(")"):
            args.append(self._or())
            while self._accept(","):
                args.append(self._or())
            self._expect(")")
        if not low <= len(args) <= high:
            raise RouteError(f"{name} takes {low if low == high else f'{low} to {high}'} argument(s)", pos + 1)
        checks_definedness = name.lower().startswith("is_")

        def call(m: Message) -> Any:
            values = [a(m) for a in args]
            if not checks_definedness and any(v is UNDEFINED for v in values):
                return UNDEFINED
            return function(*values)

        return call

    def _body_path(self) -> Node:
        path: list[str | int] = []
        while True:
            if self._accept("."):
                kind, value, pos = self._peek()
                if kind != "name" or value.startswith("$"):
                    raise RouteError("expected a field name after '.'", pos + 1)
                self.i += 1
                path.append(value)
            elif self._accept("["):
                kind, value, pos = self._peek()
                self.i += 1
                if kind == "string":
                    path.append(value[1:-1].replace("''", "'") if value[0] == "'" else json.loads(value))
                elif kind == "number" and value.isdigit():
                    path.append(int(value))
                else:
                    raise RouteError("expected a quoted field name or an index inside [ ]", pos + 1)
                self._expect("]")
            else:
                break
        return lambda m: _lookup(m.json_body(), path)


def _property(message: Message, name: str) -> Any:
    if name in message.properties:
        return message.properties[name]
    lowered = name.lower()  # IoT Hub property names are case-insensitive
    for key, value in message.properties.items():
        if key.lower() == lowered:
            return value
    return UNDEFINED


def _lookup(value: Any, path: list[str | int]) -> Any:
    for step in path:
        in_list = isinstance(step, int) and isinstance(value, list) and 0 <= step < len(value)
        if in_list or (isinstance(step, str) and isinstance(value, dict) and step in value):
            value = value[step]
        else:
            return UNDEFINED
    return value
