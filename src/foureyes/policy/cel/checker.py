"""Static type checking of a condition against the declared variable types.

The checker refuses what can never work (an unknown variable or attribute, comparing a number
with a string, a function that does not exist) and notes each construct the native compiler does
not handle, so that the condition falls back to the reference implementation. `dyn` values, and
maps whose values are `dyn`, are checked only at run time.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from foureyes.policy.cel.ast import (
    Binary,
    Call,
    Comp,
    Cond,
    Has,
    Ident,
    Index,
    ListLit,
    Lit,
    MapLit,
    Node,
    Select,
    Unary,
)
from foureyes.policy.cel.runtime import delegate, portable_regex
from foureyes.policy.celtypes import (
    BOOL,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    NULL,
    STRING,
    TIMESTAMP,
    CelType,
    ListType,
    MapType,
    Nullable,
    ObjectType,
)
from foureyes.policy.regex import RegexError, compile_re2


class CelTypeError(Exception):
    """A condition that can never evaluate correctly. `pos` is a 0-based character offset."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass
class Checked:
    types: dict[Node, CelType]
    # Values computed while checking: timestamp()/duration() literals, compiled regexes.
    constants: dict[Node, object] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)  # why the binding must evaluate it
    # Whether it reads data whose shape the types do not fix: a dyn value, a map entry, a list
    # element by index. Sample values cannot stand for such data.
    dynamic: bool = False


_LITERAL_TYPES: Mapping[str, CelType] = {
    "int": INT,
    "double": DOUBLE,
    "string": STRING,
    "bool": BOOL,
    "null": NULL,
}
_NUMERIC = (INT, DOUBLE)
_ORDERED = (INT, DOUBLE, STRING, BOOL, TIMESTAMP, DURATION)
# Functions the binding has that the native compiler leaves to it, with their result types.
_BINDING_ONLY: Mapping[str, CelType] = {
    "getFullYear": INT,
    "getMonth": INT,
    "getDayOfYear": INT,
    "getDayOfMonth": INT,
    "getDate": INT,
    "getDayOfWeek": INT,
    "getHours": INT,
    "getMinutes": INT,
    "getSeconds": INT,
    "getMilliseconds": INT,
    "uint": DYN,
    "bytes": DYN,
    "type": DYN,
}
_STRING_METHODS = frozenset({"startsWith", "endsWith", "contains", "matches"})
_CONVERSIONS: Mapping[str, tuple[CelType, tuple[CelType, ...]]] = {
    # name: (result, accepted argument types) — as far as the binding defines them
    "int": (INT, (INT, DOUBLE, STRING)),
    "double": (DOUBLE, (INT, DOUBLE, STRING)),
    "string": (STRING, (STRING, INT, DOUBLE, TIMESTAMP, DURATION)),
}


def strip(t: CelType) -> CelType:
    """The type without its nullability."""
    while isinstance(t, Nullable):
        t = t.inner
    return t


def is_nullable(t: CelType) -> bool:
    return isinstance(t, Nullable)


def comparable(a: CelType, b: CelType) -> bool:
    """Whether values of these types can ever be equal (CEL `==` is false across types)."""
    a_null = is_nullable(a)
    b_null = is_nullable(b)
    a = strip(a)
    b = strip(b)
    if DYN in (a, b):
        return True
    if a == NULL:
        return b_null or b == NULL
    if b == NULL:
        return a_null
    if a in _NUMERIC and b in _NUMERIC:
        return True
    if isinstance(a, ListType) and isinstance(b, ListType):
        return comparable(a.elem, b.elem)
    if isinstance(a, MapType | ObjectType) and isinstance(b, MapType | ObjectType):
        return _map_view_comparable(a, b)
    return a == b


def _map_view_comparable(a: MapType | ObjectType, b: MapType | ObjectType) -> bool:
    if isinstance(a, MapType) and isinstance(b, MapType):
        return comparable(a.key, b.key) and comparable(a.value, b.value)
    if isinstance(a, ObjectType) and isinstance(b, ObjectType):
        return True
    mapping = a if isinstance(a, MapType) else b
    assert isinstance(mapping, MapType)
    return comparable(mapping.key, STRING)


def _orderable(a: CelType, b: CelType) -> bool:
    a = strip(a)
    b = strip(b)
    if DYN in (a, b):
        return a in _ORDERED or b in _ORDERED or a == b == DYN
    if a in _NUMERIC and b in _NUMERIC:
        return True
    return a == b and a in _ORDERED


def _join(a: CelType, b: CelType) -> CelType:
    if a == b:
        return a
    if strip(a) == NULL and strip(b) != NULL:
        return b if is_nullable(b) else Nullable(b)
    if strip(b) == NULL and strip(a) != NULL:
        return a if is_nullable(a) else Nullable(a)
    if strip(a) == strip(b):
        return Nullable(strip(a))
    return DYN


def check(
    node: Node, variables: Mapping[str, CelType], source: str, *, require_bool: bool = True
) -> Checked:
    """Type `node` (the whole condition), raising `CelTypeError` on a type error."""
    checker = _Checker(variables, source)
    result = checker.type_of(node, {})
    t = strip(result)
    if require_bool and t not in (BOOL, DYN):
        raise CelTypeError(
            f"a condition must be true or false, but this expression is {result}", node.pos
        )
    return Checked(checker.types, checker.constants, checker.fallback, checker.dynamic)


class _Checker:
    def __init__(self, variables: Mapping[str, CelType], source: str) -> None:
        self.variables = variables
        self.source = source
        self.types: dict[Node, CelType] = {}
        self.constants: dict[Node, object] = {}
        self.fallback: list[str] = []
        self.dynamic = False

    def text(self, node: Node) -> str:
        snippet = " ".join(self.source[node.pos : node.end].split())
        return snippet if len(snippet) <= 40 else snippet[:37] + "..."

    def type_of(self, node: Node, scope: Mapping[str, CelType]) -> CelType:
        t = self._type(node, scope)
        self.types[node] = t
        if strip(t) == DYN and isinstance(node, Ident | Select | Index):
            self.dynamic = True
        return t

    def _type(self, node: Node, scope: Mapping[str, CelType]) -> CelType:
        if isinstance(node, Lit):
            if node.kind in _LITERAL_TYPES:
                return _LITERAL_TYPES[node.kind]
            self.fallback.append(f"{node.kind} literal")
            return DYN
        if isinstance(node, Ident):
            return self._ident(node, scope)
        if isinstance(node, Select):
            return self._select(node, scope)
        if isinstance(node, Index):
            return self._index(node, scope)
        if isinstance(node, Has):
            self._select(node.operand, scope, presence=True)
            return BOOL
        if isinstance(node, Unary):
            return self._unary(node, scope)
        if isinstance(node, Binary):
            return self._binary(node, scope)
        if isinstance(node, Cond):
            self._expect_bool(node.cond, scope, "the condition of '?:'")
            return _join(self.type_of(node.then, scope), self.type_of(node.orelse, scope))
        if isinstance(node, ListLit):
            elem: CelType | None = None
            for item in node.items:
                t = self.type_of(item, scope)
                elem = t if elem is None else _join(elem, t)
            return ListType(elem or DYN)
        if isinstance(node, MapLit):
            return self._map_literal(node, scope)
        if isinstance(node, Call):
            return self._call(node, scope)
        if isinstance(node, Comp):
            return self._comprehension(node, scope)
        raise CelTypeError("unsupported expression", node.pos)  # pragma: no cover

    def _ident(self, node: Ident, scope: Mapping[str, CelType]) -> CelType:
        if node.name in scope:
            return scope[node.name]
        if node.name in self.variables:
            return self.variables[node.name]
        raise CelTypeError(
            _unknown(f"unknown variable '{node.name}'", node.name, self.variables), node.pos
        )

    def _select(
        self, node: Select, scope: Mapping[str, CelType], *, presence: bool = False
    ) -> CelType:
        operand = self.type_of(node.operand, scope)
        return self._attribute(node.operand, operand, node.field, node, presence=presence)

    def _attribute(
        self, operand: Node, t: CelType, name: str, node: Node, *, presence: bool = False
    ) -> CelType:
        base = strip(t)
        what = self.text(operand)
        if isinstance(base, ObjectType):
            if name in base.fields:
                return base.fields[name]
            message = _unknown(f"{what} has no attribute '{name}'", name, base.fields)
            at = node.pos if isinstance(node, Lit) else node.end - len(name)
            raise CelTypeError(message, at)
        if isinstance(base, MapType):
            if strip(base.key) not in (STRING, DYN):
                raise CelTypeError(
                    f"{what} is a {base} (its keys are not strings), so .{name} is never there",
                    node.pos,
                )
            self.dynamic = True
            return base.value
        if base == DYN:
            return DYN
        access = "test has() on" if presence else "select"
        raise CelTypeError(f"cannot {access} '{name}' on {what}, which is {t}", node.pos)

    def _index(self, node: Index, scope: Mapping[str, CelType]) -> CelType:
        t = self.type_of(node.operand, scope)
        key = self.type_of(node.index, scope)
        base = strip(t)
        what = self.text(node.operand)
        if isinstance(base, ListType):
            if strip(key) not in (INT, DYN):
                raise CelTypeError(f"a list index must be an int, not {key}", node.index.pos)
            self.dynamic = True
            return base.elem
        if isinstance(base, MapType):
            if not comparable(key, base.key) or strip(key) == NULL:
                raise CelTypeError(
                    f"{what} is a {base}, so a {key} key is never in it", node.index.pos
                )
            self.dynamic = True
            return base.value
        if isinstance(base, ObjectType):
            if isinstance(node.index, Lit) and node.index.kind == "string":
                return self._attribute(node.operand, t, str(node.index.value), node.index)
            if strip(key) not in (STRING, DYN):
                raise CelTypeError(f"{what} is an object, index it with a string", node.pos)
            return DYN
        if base == DYN:
            return DYN
        raise CelTypeError(f"cannot index {what}, which is {t}", node.pos)

    def _unary(self, node: Unary, scope: Mapping[str, CelType]) -> CelType:
        if node.op == "!":
            self._expect_bool(node.operand, scope, "the operand of '!'")
            return BOOL
        t = self.type_of(node.operand, scope)
        base = strip(t)
        if base in (INT, DOUBLE, DYN):
            return base
        raise CelTypeError(f"cannot negate {self.text(node.operand)}, which is {t}", node.pos)

    def _expect_bool(self, node: Node, scope: Mapping[str, CelType], role: str) -> None:
        t = self.type_of(node, scope)
        if strip(t) not in (BOOL, DYN):
            raise CelTypeError(
                f"{role} must be true or false, but {self.text(node)} is {t}", node.pos
            )

    def _binary(self, node: Binary, scope: Mapping[str, CelType]) -> CelType:
        op = node.op
        if op in ("&&", "||"):
            self._expect_bool(node.left, scope, f"each operand of '{op}'")
            self._expect_bool(node.right, scope, f"each operand of '{op}'")
            return BOOL
        left = self.type_of(node.left, scope)
        right = self.type_of(node.right, scope)
        if op in ("==", "!="):
            if not comparable(left, right):
                raise CelTypeError(
                    f"'{op}' compares {self.text(node.left)} ({left}) with "
                    f"{self.text(node.right)} ({right}); values of these types are never equal",
                    node.op_pos,
                )
            return BOOL
        if op in ("<", "<=", ">", ">="):
            if not _orderable(left, right):
                raise CelTypeError(
                    f"'{op}' cannot order {self.text(node.left)} ({left}) and "
                    f"{self.text(node.right)} ({right})",
                    node.op_pos,
                )
            return BOOL
        if op == "in":
            self._membership(node, left, right)
            return BOOL
        return self._arithmetic(node, left, right)

    def _membership(self, node: Binary, left: CelType, right: CelType) -> None:
        base = strip(right)
        what = self.text(node.right)
        if isinstance(base, ListType):
            if not comparable(left, base.elem):
                raise CelTypeError(
                    f"{what} is a {right}, so {self.text(node.left)} ({left}) is never in it",
                    node.op_pos,
                )
        elif isinstance(base, MapType | ObjectType):
            key = base.key if isinstance(base, MapType) else STRING
            if not comparable(left, key) or strip(left) == NULL:
                raise CelTypeError(
                    f"{what} is a {right}, so {self.text(node.left)} ({left}) is never a key of it",
                    node.op_pos,
                )
        elif base != DYN:
            raise CelTypeError(
                f"'in' needs a list or a map on the right, but {what} is {right}", node.op_pos
            )

    def _arithmetic(self, node: Binary, left: CelType, right: CelType) -> CelType:
        op = node.op
        a = strip(left)
        b = strip(right)
        if DYN in (a, b):
            known = b if a == DYN else a
            allowed = {
                "+": (INT, DOUBLE, STRING, TIMESTAMP, DURATION),
                "-": (INT, DOUBLE, TIMESTAMP, DURATION),
                "*": (INT, DOUBLE),
                "/": (INT, DOUBLE),
                "%": (INT,),
            }[op]
            if known == DYN or known in allowed or (op == "+" and isinstance(known, ListType)):
                return DYN
        result = _arithmetic_result(op, a, b)
        if result is not None:
            return result
        hint = ""
        if {a, b} == {INT, DOUBLE}:
            hint = " (CEL does not mix int and double: convert with double() or int())"
        raise CelTypeError(
            f"'{op}' is not defined for {self.text(node.left)} ({left}) and "
            f"{self.text(node.right)} ({right}){hint}",
            node.op_pos,
        )

    def _map_literal(self, node: MapLit, scope: Mapping[str, CelType]) -> CelType:
        key: CelType | None = None
        value: CelType | None = None
        for k, v in node.entries:
            kt = self.type_of(k, scope)
            vt = self.type_of(v, scope)
            if strip(kt) in (DYN, BOOL):
                self.fallback.append("map literal with bool or dyn keys")
            elif kt not in (STRING, INT):
                raise CelTypeError(f"a map key must be a string, int or bool, not {kt}", k.pos)
            key = kt if key is None else _join(key, kt)
            value = vt if value is None else _join(value, vt)
        return MapType(key or DYN, value or DYN)

    def _call(self, node: Call, scope: Mapping[str, CelType]) -> CelType:
        name = node.function
        if name in ("exists", "all", "exists_one", "filter", "map"):
            form = (
                "x.map(v, expr) or x.map(v, filter, expr)" if name == "map" else f"x.{name}(v, p)"
            )
            raise CelTypeError(f"{name}() is written {form}", node.pos)
        args = [self.type_of(arg, scope) for arg in node.args]
        target = None if node.target is None else self.type_of(node.target, scope)
        if name == "size":
            if (target is None) == (len(args) == 1) and len(args) <= 1:
                subject = node.args[0] if target is None else node.target
                assert subject is not None
                t = args[0] if target is None else target
                base = strip(t)
                if base in (STRING, DYN) or isinstance(base, ListType | MapType | ObjectType):
                    return INT
                raise CelTypeError(
                    f"size() is not defined for {self.text(subject)} ({t})", node.pos
                )
            raise CelTypeError("size() takes one value: size(x) or x.size()", node.pos)
        if name in _STRING_METHODS:
            if target is None or len(args) != 1:
                raise CelTypeError(f"{name}() is called as a method: text.{name}(other)", node.pos)
            for part, t in ((node.target, target), (node.args[0], args[0])):
                assert part is not None
                if strip(t) not in (STRING, DYN):
                    raise CelTypeError(
                        f"{name}() works on strings, but {self.text(part)} is {t}", part.pos
                    )
            if name == "matches":
                self._regex(node.args[0])
            return BOOL
        if name in _CONVERSIONS and target is None and len(args) == 1:
            result, accepted = _CONVERSIONS[name]
            base = strip(args[0])
            if base == DYN or base in accepted:
                return result
            raise CelTypeError(f"{name}() is not defined for {args[0]}", node.pos)
        if name in ("timestamp", "duration") and target is None and len(args) == 1:
            if strip(args[0]) not in (STRING, DYN):
                raise CelTypeError(f"{name}() takes a string, not {args[0]}", node.pos)
            literal = node.args[0]
            if isinstance(literal, Lit) and literal.kind == "string":
                self._time_literal(node, name, str(literal.value))
            else:
                self.fallback.append(f"{name}() of a computed string")
            return TIMESTAMP if name == "timestamp" else DURATION
        if name == "dyn" and target is None and len(args) == 1:
            return DYN
        if name in _BINDING_ONLY:
            self.fallback.append(f"{name}()")
            return _BINDING_ONLY[name]
        if name in ("int", "double", "string", "timestamp", "duration", "dyn"):
            raise CelTypeError(f"{name}() takes exactly one argument: {name}(x)", node.pos)
        raise CelTypeError(f"unknown function '{name}'", node.pos)

    def _regex(self, pattern: Node) -> None:
        """A literal pattern must be one RE2 accepts (and the binding too); a computed one is
        checked when it is used (`runtime.regex_matches`)."""
        if not (isinstance(pattern, Lit) and pattern.kind == "string"):
            return
        text = str(pattern.value)
        try:
            compile_re2(text)
        except RegexError as exc:
            raise CelTypeError(f"invalid regular expression: {exc}", pattern.pos) from None
        try:
            delegate("x.matches(y)", x="", y=text)
        except Exception as exc:
            reason = str(exc).split("\n", 1)[0]
            raise CelTypeError(f"invalid regular expression: {reason}", pattern.pos) from None
        compiled = portable_regex(text)
        if compiled is None:
            self.fallback.append("a regular expression outside the portable subset")
        else:
            self.constants[pattern] = compiled

    def _time_literal(self, node: Call, name: str, text: str) -> None:
        try:
            value = delegate(f"{name}(x)", x=text)
        except Exception as exc:
            reason = str(exc).split("\n", 1)[0]
            raise CelTypeError(f"invalid {name} {text!r}: {reason}", node.pos) from None
        # Python keeps microseconds; the binding nanoseconds. Fold only what survives the trip.
        if delegate(f"{name}(x) == y", x=text, y=value) is True:
            self.constants[node] = value
        else:
            self.fallback.append(f"{name}() below microsecond precision")

    def _comprehension(self, node: Comp, scope: Mapping[str, CelType]) -> CelType:
        t = self.type_of(node.range, scope)
        base = strip(t)
        if isinstance(base, ListType):
            elem = base.elem
        elif isinstance(base, MapType):
            elem = base.key
        elif isinstance(base, ObjectType):
            elem = STRING
        elif base == DYN:
            elem = DYN
        else:
            raise CelTypeError(
                f"{node.kind}() iterates over a list or map, but {self.text(node.range)} is {t}",
                node.pos,
            )
        inner = {**scope, node.var: elem}
        if node.pred is not None:
            role = (
                "the filter of map()" if node.kind == "map" else f"the predicate of {node.kind}()"
            )
            self._expect_bool(node.pred, inner, role)
        if node.kind == "map":
            assert node.transform is not None
            return ListType(self.type_of(node.transform, inner))
        if node.kind == "filter":
            return ListType(elem)
        return BOOL


def _arithmetic_result(op: str, a: CelType, b: CelType) -> CelType | None:
    if a == b and a in (INT, DOUBLE) and (op != "%" or a == INT):
        return a
    if op == "+":
        if a == b and a in (STRING, DURATION):
            return a
        if isinstance(a, ListType) and isinstance(b, ListType):
            return ListType(a.elem if a.elem == b.elem else DYN)
        if a == TIMESTAMP and b == DURATION:
            return TIMESTAMP
    if op == "-":
        if a == TIMESTAMP and b == TIMESTAMP:
            return DURATION
        if a == TIMESTAMP and b == DURATION:
            return TIMESTAMP
        if a == b == DURATION:
            return DURATION
    return None


def _unknown(message: str, name: str, known: Mapping[str, object]) -> str:
    names = sorted(known)
    text = f"{message} (known: {', '.join(names)})"
    close = difflib.get_close_matches(name, names, n=1)
    return f"{text}; did you mean '{close[0]}'?" if close else text
