"""The syntax tree of a condition. Nodes compare by identity, so they can key side tables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(eq=False, slots=True)
class Node:
    pos: int  # 0-based character offset of the first character
    end: int  # offset just past the last character


@dataclass(eq=False, slots=True)
class Lit(Node):
    value: object
    kind: str  # "int", "uint", "double", "string", "bytes", "bool", "null"


@dataclass(eq=False, slots=True)
class Ident(Node):
    name: str


@dataclass(eq=False, slots=True)
class Select(Node):
    operand: Node
    field: str


@dataclass(eq=False, slots=True)
class Index(Node):
    operand: Node
    index: Node


@dataclass(eq=False, slots=True)
class Call(Node):
    function: str
    target: Node | None  # the receiver of `x.f(...)`, None for `f(...)`
    args: list[Node]


@dataclass(eq=False, slots=True)
class Unary(Node):
    op: str  # "!" or "-"
    operand: Node


@dataclass(eq=False, slots=True)
class Binary(Node):
    op: str
    left: Node
    right: Node
    op_pos: int = -1  # offset of the operator, for messages


@dataclass(eq=False, slots=True)
class Cond(Node):
    cond: Node
    then: Node
    orelse: Node


@dataclass(eq=False, slots=True)
class ListLit(Node):
    items: list[Node]


@dataclass(eq=False, slots=True)
class MapLit(Node):
    entries: list[tuple[Node, Node]]


@dataclass(eq=False, slots=True)
class Has(Node):
    operand: Select


@dataclass(eq=False, slots=True)
class Comp(Node):
    """A comprehension macro: exists, all, exists_one, map (with optional filter), filter."""

    kind: str
    range: Node
    var: str
    pred: Node | None  # the predicate (exists/all/exists_one/filter) or map's filter
    transform: Node | None  # map's result expression


MACROS = frozenset({"exists", "all", "exists_one", "map", "filter"})


def children(node: Node) -> list[Node]:
    """The direct sub-expressions of `node`, in source order."""
    if isinstance(node, Select):
        return [node.operand]
    if isinstance(node, Index):
        return [node.operand, node.index]
    if isinstance(node, Call):
        return ([node.target] if node.target is not None else []) + list(node.args)
    if isinstance(node, Unary):
        return [node.operand]
    if isinstance(node, Binary):
        return [node.left, node.right]
    if isinstance(node, Cond):
        return [node.cond, node.then, node.orelse]
    if isinstance(node, ListLit):
        return list(node.items)
    if isinstance(node, MapLit):
        return [part for entry in node.entries for part in entry]
    if isinstance(node, Has):
        return [node.operand]
    if isinstance(node, Comp):
        return [n for n in (node.range, node.pred, node.transform) if n is not None]
    return []
