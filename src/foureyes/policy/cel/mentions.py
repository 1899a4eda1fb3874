"""Which attribute paths a condition reads, and which literal values it compares them with.

Policy analysis enumerates combinations of attribute values; the interesting values of an
attribute are the ones the policy talks about. For `account.tier == "vit"` that is "vit"; for
`staff.days_left < 7` it is 6, 7 and 8 (either side of the boundary); for a bool attribute it is
true and false. Inside a macro, the variable stands for the elements of the list it ranges over,
so `staff.groups.exists(g, g in ["a", "b"])` mentions "a" and "b" for ("staff", "groups").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from foureyes.policy.cel.ast import (
    Binary,
    Call,
    Comp,
    Ident,
    Index,
    ListLit,
    Lit,
    Node,
    Select,
    Unary,
    children,
)
from foureyes.policy.cel.checker import strip
from foureyes.policy.celtypes import BOOL, DOUBLE, INT, CelType

Path = tuple[str, ...]
_NONE = object()
_SECOND = timedelta(seconds=1)
_LITERAL_KINDS = frozenset({"int", "double", "string", "bool", "null"})


class _Collector:
    def __init__(
        self,
        variables: Mapping[str, CelType],
        types: Mapping[Node, CelType],
        constants: Mapping[Node, object],
    ) -> None:
        self.variables = variables
        self.types = types
        self.constants = constants
        self.paths: set[Path] = set()
        self.mentions: dict[Path, set[object]] = {}

    def path(self, node: Node, env: Mapping[str, Path | None]) -> Path | None:
        if isinstance(node, Ident):
            if node.name in env:
                return env[node.name]
            return (node.name,) if node.name in self.variables else None
        if isinstance(node, Select):
            base = self.path(node.operand, env)
            return None if base is None else (*base, node.field)
        if isinstance(node, Index) and isinstance(node.index, Lit) and node.index.kind == "string":
            base = self.path(node.operand, env)
            return None if base is None else (*base, str(node.index.value))
        return None

    def constant(self, node: Node) -> Any:
        if isinstance(node, Lit):
            return node.value if node.kind in _LITERAL_KINDS else _NONE
        if isinstance(node, Unary) and node.op == "-":
            value = self.constant(node.operand)
            if type(value) in (int, float):
                return -value
            return _NONE
        if isinstance(node, Call) and node in self.constants:
            return self.constants[node]
        if isinstance(node, ListLit):
            items = [self.constant(item) for item in node.items]
            return _NONE if any(item is _NONE for item in items) else items
        return _NONE

    def mention(self, path: Path, *values: object) -> None:
        bucket = self.mentions.setdefault(path, set())
        for value in values:
            try:
                hash(value)
            except TypeError:
                continue
            bucket.add(value)

    def visit(self, node: Node, env: Mapping[str, Path | None]) -> None:
        path = self.path(node, env)
        if path is not None:
            self.paths.add(path)
            if strip(self.types.get(node, INT)) == BOOL:
                self.mention(path, True, False)
            return
        if isinstance(node, Comp):
            self.visit(node.range, env)
            inner = {**env, node.var: self.path(node.range, env)}
            for part in (node.pred, node.transform):
                if part is not None:
                    self.visit(part, inner)
            return
        if isinstance(node, Binary):
            self.binary(node, env)
        elif isinstance(node, Call) and node.target is not None and len(node.args) == 1:
            target = self.path(node.target, env)
            value = self.constant(node.args[0])
            if (
                target is not None
                and node.function in ("startsWith", "endsWith", "contains")
                and isinstance(value, str)
            ):
                self.mention(target, value)  # a value that satisfies the test
        for child in children(node):
            self.visit(child, env)

    def binary(self, node: Binary, env: Mapping[str, Path | None]) -> None:
        op = node.op
        left = self.path(node.left, env)
        right = self.path(node.right, env)
        if op in ("==", "!="):
            for path, other in ((left, node.right), (right, node.left)):
                value = self.constant(other)
                if path is not None and value is not _NONE:
                    self.mention(path, value)
        elif op in ("<", "<=", ">", ">="):
            for path, side, other in (
                (left, node.left, node.right),
                (right, node.right, node.left),
            ):
                value = self.constant(other)
                if path is not None and value is not _NONE:
                    self.mention(path, *_boundary(strip(self.types.get(side, INT)), value))
        elif op == "in":
            items = self.constant(node.right)
            if left is not None and isinstance(items, list):
                self.mention(left, *items)
            element = self.constant(node.left)
            if right is not None and element is not _NONE:
                self.mention(right, element)


def _boundary(t: CelType, value: object) -> tuple[object, ...]:
    """The literal of an ordering comparison and its neighbours on either side."""
    if isinstance(value, bool):
        return (value,)
    if isinstance(value, int | float) and t == INT:
        low, high = math.floor(value), math.ceil(value)
        return tuple(sorted({low - 1, low, high, high + 1}))
    if isinstance(value, int | float) and t == DOUBLE:
        number = float(value)
        return (math.nextafter(number, -math.inf), value, math.nextafter(number, math.inf))
    if isinstance(value, int):
        return (value - 1, value, value + 1)
    if isinstance(value, float):
        return (math.nextafter(value, -math.inf), value, math.nextafter(value, math.inf))
    if isinstance(value, datetime | timedelta):
        try:
            return (value - _SECOND, value, value + _SECOND)
        except OverflowError:
            return (value,)
    return (value,)


def collect(
    root: Node,
    variables: Mapping[str, CelType],
    types: Mapping[Node, CelType],
    constants: Mapping[Node, object],
) -> tuple[frozenset[Path], dict[Path, frozenset[object]]]:
    """The attribute paths `root` reads and the literal values it compares each with."""
    collector = _Collector(variables, types, constants)
    collector.visit(root, {})
    mentions = {path: frozenset(values) for path, values in collector.mentions.items() if values}
    return frozenset(collector.paths), mentions
