"""Which conditions the policy analysis can enumerate exactly, and the literals each reads.

The prover (`foureyes.policy.analysis`) is sound only for conditions that are a boolean
combination (`&&`, `||`, `!`, `?:`, `true`, `false`) of atoms whose outcome (true, false or an
error) depends on one attribute alone and changes only where a literal cuts that attribute's
values:

- `attr == lit`, `attr != lit` (string, int, double, bool, null);
- `attr < lit` (and `<=`, `>`, `>=`) on an int or double attribute;
- `attr in [lit, ...]`, `lit in listattr`, and a bool attribute alone;
- `account.tier` compared with a string (the tier follows from the tier conditions), and
  `action.*` (the action is enumerated itself).

`classify` returns those literals per attribute path, or raises `NotEnumerable` naming what it
cannot model: a comparison of two attributes, a function or macro (`matches`, `size`, `has`,
`exists`, ...), arithmetic, indexing, string ordering, dates and times (`staff.starts`,
`context.now`). Anything not in the grammar is refused, never approximated.
"""

from __future__ import annotations

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
from foureyes.policy.cel.checker import CelTypeError, check, strip
from foureyes.policy.cel.lexer import CelSyntaxError
from foureyes.policy.cel.parser import parse
from foureyes.policy.celtypes import (
    BOOL,
    DOUBLE,
    DYN,
    INT,
    STRING,
    CelType,
    ListType,
)

Path = tuple[str, ...]
# A literal with its kind, so that 1, 1.0 and true stay distinct in a set.
Literal = tuple[str, object]

_SCALARS = (STRING, INT, DOUBLE, BOOL)
_NUMBERS = (INT, DOUBLE)
# Paths the analysis does not enumerate at all, whatever they are compared with.
_UNMODELLED: Mapping[Path, str] = {
    ("staff", "starts"): "staff.starts (a date)",
    ("staff", "ends"): "staff.ends (a date)",
    ("context", "now"): "context.now (a timestamp)",
}


class NotEnumerable(Exception):
    """A condition the analysis cannot enumerate exactly; the message says what part."""


@dataclass
class Atoms:
    """What the enumerable conditions read: per attribute path, the literals it is compared
    with (for a list attribute: the literals tested for membership)."""

    literals: dict[Path, set[Literal]] = field(default_factory=dict)

    def add(self, path: Path, *values: Literal) -> None:
        self.literals.setdefault(path, set()).update(values)

    def merge(self, other: Atoms) -> None:
        for path, values in other.literals.items():
            self.add(path, *values)


def classify(source: str, variables: Mapping[str, CelType], atoms: Atoms) -> None:
    """Add the literals `source` compares attributes with to `atoms`, or raise NotEnumerable."""
    try:
        tree = parse(source)
        types = check(tree, variables, source).types
    except (CelSyntaxError, CelTypeError, RecursionError):
        raise NotEnumerable("uses CEL the analysis does not read") from None
    _Classifier(source, types, atoms).formula(tree)


def _literal(node: Node) -> Literal | None:
    """The value of a literal (`"x"`, `3`, `-2.5`, `true`, `null`), or None."""
    if isinstance(node, Lit) and node.kind in ("string", "int", "double", "bool", "null"):
        return (node.kind, node.value)
    if isinstance(node, Unary) and node.op == "-":
        inner = _literal(node.operand)
        if inner is not None and inner[0] in ("int", "double"):
            value = inner[1]
            assert isinstance(value, int | float)
            return (inner[0], -value)
    return None


def _path(node: Node) -> Path | None:
    if isinstance(node, Ident):
        return (node.name,)
    if isinstance(node, Select):
        base = _path(node.operand)
        return None if base is None else (*base, node.field)
    if isinstance(node, Index) and isinstance(node.index, Lit) and node.index.kind == "string":
        base = _path(node.operand)
        return None if base is None else (*base, str(node.index.value))
    return None


class _Classifier:
    def __init__(self, source: str, types: Mapping[Node, CelType], atoms: Atoms) -> None:
        self.source = source
        self.types = types
        self.atoms = atoms

    def text(self, node: Node) -> str:
        snippet = " ".join(self.source[node.pos : node.end].split())
        return snippet if len(snippet) <= 50 else snippet[:47] + "..."

    def formula(self, node: Node) -> None:
        """A boolean combination of atoms."""
        if isinstance(node, Lit) and node.kind == "bool":
            return
        if isinstance(node, Unary) and node.op == "!":
            self.formula(node.operand)
            return
        if isinstance(node, Binary) and node.op in ("&&", "||"):
            self.formula(node.left)
            self.formula(node.right)
            return
        if isinstance(node, Cond):
            for part in (node.cond, node.then, node.orelse):
                self.formula(part)
            return
        if isinstance(node, Binary) and node.op in ("==", "!=", "<", "<=", ">", ">=", "in"):
            self.comparison(node)
            return
        path = _path(node)
        if path is not None:
            self.attribute(path, node, "used as true or false")
            kind = strip(self.types.get(node, DYN))
            if kind not in (BOOL, DYN):
                raise NotEnumerable(f"uses {self.text(node)} as a condition")
            self.atoms.add(path)
            return
        raise NotEnumerable(self.why(node))

    def attribute(self, path: Path, node: Node, how: str) -> None:
        """Refuse a path the enumeration does not cover."""
        root = path[0]
        if root == "action" and len(path) == 2:
            return  # the action is enumerated itself
        if len(path) != 2 or root not in ("staff", "account", "context", "params"):
            raise NotEnumerable(f"reads {self.text(node)}, which is not one attribute")
        if path in _UNMODELLED:
            raise NotEnumerable(f"depends on {_UNMODELLED[path]}")
        kind = strip(self.types.get(node, DYN))
        if root == "params":
            if kind != DYN:
                raise NotEnumerable(f"reads {self.text(node)} in a way it cannot enumerate")
            return
        if kind in _SCALARS or (isinstance(kind, ListType) and strip(kind.elem) in _SCALARS):
            return
        raise NotEnumerable(f"depends on {self.text(node)}, a {kind} attribute ({how})")

    def comparison(self, node: Binary) -> None:
        op = node.op
        left, right = _path(node.left), _path(node.right)
        left_lit, right_lit = _literal(node.left), _literal(node.right)
        if left is not None and right is not None:
            raise NotEnumerable(
                f"compares {self.text(node.left)} with {self.text(node.right)} (two attributes)"
            )
        if op == "in":
            self.membership(node, left, right, left_lit)
            return
        if left_lit is not None and right_lit is not None:
            return  # two literals: a constant
        path, side, value = (
            (left, node.left, right_lit) if left is not None else (right, node.right, left_lit)
        )
        if path is not None:
            self.attribute(path, side, f"compared with '{op}'")
        if path is None or value is None:
            raise NotEnumerable(self.why(node))
        kind = strip(self.types.get(side, DYN))
        if op not in ("==", "!="):
            if path[0] == "params" or kind not in _NUMBERS or value[0] not in ("int", "double"):
                what = "orders strings" if kind == STRING else "orders values"
                raise NotEnumerable(f"{what} ({self.text(node)})")
        elif isinstance(kind, ListType):
            raise NotEnumerable(f"compares the list {self.text(side)} with '{op}'")
        self.atoms.add(path, value)

    def membership(
        self, node: Binary, left: Path | None, right: Path | None, left_lit: Literal | None
    ) -> None:
        if right is not None and left_lit is not None:
            kind = strip(self.types.get(node.right, DYN))
            if right[0] == "params" or not isinstance(kind, ListType):
                raise NotEnumerable(f"tests membership in {self.text(node.right)}")
            self.attribute(right, node.right, "tested with 'in'")
            self.atoms.add(right, left_lit)
            return
        if left is not None and isinstance(node.right, ListLit):
            items = [_literal(item) for item in node.right.items]
            if any(item is None for item in items):
                raise NotEnumerable(f"tests membership in {self.text(node.right)}")
            self.attribute(left, node.left, "tested with 'in'")
            if isinstance(strip(self.types.get(node.left, DYN)), ListType):
                raise NotEnumerable(f"tests whether the list {self.text(node.left)} is in a list")
            self.atoms.add(left, *(item for item in items if item is not None))
            return
        if (
            left_lit is not None
            and isinstance(node.right, ListLit)
            and all(_literal(item) is not None for item in node.right.items)
        ):
            return  # a constant
        raise NotEnumerable(self.why(node))

    def why(self, node: Node) -> str:
        """What about `node` the enumeration cannot model."""
        text = self.text(node)
        if isinstance(node, Call):
            return f"calls {node.function}() ({text})"
        if isinstance(node, Has):
            return f"tests presence with has() ({text})"
        if isinstance(node, Comp):
            return f"uses the macro {node.kind}() ({text})"
        if isinstance(node, Index):
            return f"indexes a value ({text})"
        if isinstance(node, Binary) and node.op in ("+", "-", "*", "/", "%"):
            return f"computes with '{node.op}' ({text})"
        if isinstance(node, ListLit | MapLit):
            return f"builds a value ({text})"
        if isinstance(node, Binary):
            for part in (node.left, node.right):
                if _path(part) is None and _literal(part) is None:
                    return self.why(part)
        return f"uses {text}"
