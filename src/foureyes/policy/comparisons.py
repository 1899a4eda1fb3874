"""Which literals a condition compares with which fields, and the forms a new text may not use.

`foureyes.policy.literals` checks what a literal compared with a field names; that is only
worth anything if every comparison of a literal with a field is seen. A walker that knows some
node kinds missed `account["id"] in ["chirp", "President"]`, `account.id in {"President":
true}`, `[account.id].exists(a, a == "President")`, `account.id == ["President"][0]`,
`(true ? "President" : "chirp")`, `dyn(..)`, `.map(..)` (attack names R5-1). So a new text is
held to forms the walker attributes, deny by default (`shape_problem`):

- no index on a variable (`account["id"]`: write `account.id`), no map literal, no `dyn()`;
- a macro's range that is a list literal holds literals only (`[account.id].exists(..)` is
  refused);
- a comparison (`==`, `!=`, `in`) of a string literal (or a list of them) is with a plain field
  path (`account.id`, `params["x"]`, a macro variable ranging over a field or over literals):
  not with a call, an index into a list, a ternary, a concatenation holding a field, or a
  variable ranging over something computed;
- a comparison of a field with something built from literals only (a ternary, an index into a
  list literal, `string(b"..")`, `string(1234)`) is refused the same way: the value a field is
  compared with is a literal, a list of them, a number/bool/null, `timestamp("..")` or
  `duration("..")`, or something that reads another field;
- a literal never reaches a field of `staff`, `approver`, `requester`, `account`, `context` or
  `action` any other way: `startsWith`, `endsWith`, `contains`, `matches` and the orderings
  (`<`, `<=`, `>`, `>=`) are refused when they hold both (`account.id.matches("^President$")`
  in a deny rule matched nothing and no check saw its literal: attack r6 R6-1); on `params`
  they stay (a request's parameters are the requester's text, named by no directory);
- a comparison of two literals (`"a" == "a"`, always true or always false) is refused (R6-2).

`read` returns the comparisons (`(path, literal)`) and every string literal of a condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from foureyes.policy.cel.ast import (
    Binary,
    Call,
    Comp,
    Ident,
    Index,
    ListLit,
    Lit,
    MapLit,
    Node,
    Select,
    Unary,
    children,
)
from foureyes.policy.cel.parser import parse

__all__ = ["VARIABLES", "Found", "Path", "read"]

Path = tuple[str, ...]
# The variables of a condition whose fields are attributed by name: an index on one is refused.
VARIABLES = frozenset({"staff", "approver", "requester", "account", "context", "action"})
_STRING_FUNCTIONS = frozenset({"startsWith", "endsWith", "contains", "matches"})
_ORDERINGS = frozenset({"<", "<=", ">", ">="})
_DIRECTLY = 'compare a field with a literal directly (`account.id == "x"`, `staff.id in [..]`)'

# What a macro variable is bound to: a field path, literals, or something unattributable.
_Bound = Path | list[str] | None


@dataclass
class Found:
    """One condition's comparisons of a literal with a field path, its string literals, and
    the first form a new text may not use (None when it has none)."""

    compared: list[tuple[Path, str]] = field(default_factory=list)
    literals: list[str] = field(default_factory=list)
    problem: str | None = None


def read(source: str) -> Found:
    """The comparisons, literals and shape problem of `source` (CelSyntaxError,
    RecursionError from the parser propagate: the caller refuses what it cannot read)."""
    walker = _Walker()
    walker.visit(parse(source), {})
    return walker.found


class _Walker:
    def __init__(self) -> None:
        self.found = Found()

    def refuse(self, message: str) -> None:
        if self.found.problem is None:
            self.found.problem = message

    def visit(self, node: Node, env: Mapping[str, _Bound]) -> None:
        if isinstance(node, Lit) and node.kind == "string":
            self.found.literals.append(str(node.value))
        if isinstance(node, MapLit):
            self.refuse(f"a map literal cannot be read as a comparison: {_DIRECTLY}")
        if isinstance(node, Index) and _root(node) in VARIABLES and isinstance(node.operand, Ident):
            name = node.operand.name
            key = node.index
            shown = f".{key.value}" if isinstance(key, Lit) and key.kind == "string" else ".field"
            self.refuse(f"write {name}{shown}, not an index on {name} ({name}[...])")
        if isinstance(node, Call) and node.function == "dyn":
            self.refuse(f"dyn() hides what a value is compared with: {_DIRECTLY}")
        if isinstance(node, Comp):
            self._comp(node, env)
            return
        # The parts first: a form refused for what it is (an index, a map) is named so.
        for child in children(node):
            self.visit(child, env)
        if isinstance(node, Binary) and node.op in ("==", "!=", "in"):
            self._compare(node, env)
        if isinstance(node, Binary) and node.op == "&&":
            self._conjunction(node, env)
        reaching = _reaching(node)
        if reaching is not None and self._field_in(node, env) and self._meets_literal(node, env):
            self.refuse(
                f"a literal reaches a field through {reaching}, which no check can read "
                f"(a prefix or a pattern names no one): {_DIRECTLY}"
            )

    def _comp(self, node: Comp, env: Mapping[str, _Bound]) -> None:
        self.visit(node.range, env)
        if isinstance(node.range, ListLit) and any(
            self._values(item, env) is None and not _constant(item) for item in node.range.items
        ):
            self.refuse(
                f"a macro ({node.kind}) over a list literal holding a field cannot be read as a "
                f"comparison: {_DIRECTLY}"
            )
        inner = self._bind(node, env)
        for part in (node.pred, node.transform):
            if part is not None:
                self.visit(part, inner)

    def _bind(self, node: Comp, env: Mapping[str, _Bound]) -> Mapping[str, _Bound]:
        """`env` with the macro's variable bound to the field path or the literals it ranges
        over, else None (something computed: unattributed)."""
        ranged = self._path(node.range, env)
        inner = dict(env)
        inner[node.var] = ranged if ranged is not None else self._values(node.range, env)
        return inner

    def _field_in(self, node: Node, env: Mapping[str, _Bound]) -> bool:
        """Whether `node` reads a field of an attributed variable (a macro variable ranging
        over something computed counts: deny by default)."""
        if isinstance(node, Ident):
            if node.name in env:
                bound = env[node.name]
                return bound is None or (isinstance(bound, tuple) and bound[0] in VARIABLES)
            return node.name in VARIABLES
        if isinstance(node, Comp):
            inner = self._bind(node, env)
            return self._field_in(node.range, env) or any(
                self._field_in(part, inner) for part in (node.pred, node.transform) if part
            )
        return any(self._field_in(child, env) for child in children(node))

    def _meets_literal(self, node: Node, env: Mapping[str, _Bound]) -> bool:
        """Whether a string function or an ordering holds a string literal, or has a part
        built from literals alone other than a number or a time (`string(1)`)."""
        return self._literal_in(node, env) or any(
            not _constant(part) and not _reads_a_variable(part, env) for part in children(node)
        )

    def _literal_in(self, node: Node, env: Mapping[str, _Bound]) -> bool:
        """Whether `node` holds a string or bytes literal (a time written as one aside), or a
        macro variable ranging over literals or over something computed."""
        if isinstance(node, Lit):
            return node.kind in ("string", "bytes")
        if isinstance(node, Ident):
            return node.name in env and not isinstance(env[node.name], tuple)
        if _time_literal(node):
            return False
        if isinstance(node, Comp):
            inner = self._bind(node, env)
            return self._literal_in(node.range, env) or any(
                self._literal_in(part, inner) for part in (node.pred, node.transform) if part
            )
        return any(self._literal_in(child, env) for child in children(node))

    def _compare(self, node: Binary, env: Mapping[str, _Bound]) -> None:
        if all(
            self._values(side, env) is not None or _constant(side)
            for side in (node.left, node.right)
        ):
            self.refuse(
                f"two literals are compared ('{node.op}'): it is always true or always false; "
                "compare a field with a literal"
            )
        for side, other in ((node.left, node.right), (node.right, node.left)):
            values = self._values(other, env)
            if values is None:
                continue
            path = self._path(side, env)
            if path is not None:
                self.found.compared.extend((path, value) for value in values)
            elif self._values(side, env) is None and not _constant(side):
                self.refuse(f"a literal is compared with a value that is not a field: {_DIRECTLY}")
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if (
                self._path(side, env) is not None
                and self._values(other, env) is None
                and self._path(other, env) is None
                and not _constant(other)
                and not self._field_in(other, env)
            ):
                self.refuse(f"a field is compared with a value built from literals: {_DIRECTLY}")

    def _conjunction(self, node: Binary, env: Mapping[str, _Bound]) -> None:
        """`a == "x" && a == "y"` can never hold: refused (R6-2), as a deny rule so written
        protects no one."""
        held: dict[Path, str] = {}
        for part in _conjuncts(node):
            if not (isinstance(part, Binary) and part.op == "=="):
                continue
            for side, other in ((part.left, part.right), (part.right, part.left)):
                path, values = self._path(side, env), self._values(other, env)
                if path is None or values is None or len(values) != 1:
                    continue
                if held.setdefault(path, values[0]) != values[0]:
                    self.refuse(
                        f"{'.'.join(path)} is required to equal both {held[path]!r} and "
                        f"{values[0]!r}: the condition can never be true"
                    )

    def _path(self, node: Node, env: Mapping[str, _Bound]) -> Path | None:
        if isinstance(node, Ident):
            if node.name in env:
                bound = env[node.name]
                return bound if isinstance(bound, tuple) else None
            return (node.name,)
        if isinstance(node, Select):
            base = self._path(node.operand, env)
            return None if base is None else (*base, node.field)
        if isinstance(node, Index) and isinstance(node.index, Lit) and node.index.kind == "string":
            # `params["reason"]`: a map's key by name (on a variable it is refused above).
            base = self._path(node.operand, env)
            return None if base is None else (*base, str(node.index.value))
        return None

    def _values(self, node: Node, env: Mapping[str, _Bound]) -> list[str] | None:
        """The strings `node` is or holds when it is written as literals, else None."""
        if isinstance(node, Lit):
            return [str(node.value)] if node.kind == "string" else None
        if isinstance(node, Ident):
            bound = env.get(node.name)
            return bound if isinstance(bound, list) else None
        if isinstance(node, ListLit):
            out: list[str] = []
            for item in node.items:
                values = self._values(item, env)
                if values is None and not _constant(item):
                    return None
                out.extend(values or [])
            return out
        if isinstance(node, Binary) and node.op == "+":
            left, right = self._values(node.left, env), self._values(node.right, env)
            if left is None or right is None:
                return None
            if isinstance(node.left, ListLit) or isinstance(node.right, ListLit):
                return left + right
            if len(left) == 1 and len(right) == 1:
                return [left[0] + right[0]]
        return None


def _root(node: Node) -> str | None:
    while isinstance(node, (Select, Index)):
        node = node.operand
    return node.name if isinstance(node, Ident) else None


def _constant(node: Node) -> bool:
    """A literal that is neither a string nor bytes (a number, bool, null, a negated number),
    or a time written as one (`timestamp("..")`, `duration("..")`): compared freely."""
    if isinstance(node, Unary) and node.op == "-":
        return _constant(node.operand)
    if isinstance(node, Lit):
        return node.kind not in ("string", "bytes")
    return _time_literal(node)


def _reads_a_variable(node: Node, env: Mapping[str, _Bound]) -> bool:
    """Whether `node` reads anything of the request (a variable, a macro variable that does not
    range over literals)."""
    if isinstance(node, Ident):
        return not isinstance(env.get(node.name), list)
    return any(_reads_a_variable(child, env) for child in children(node))


def _conjuncts(node: Node) -> list[Node]:
    if isinstance(node, Binary) and node.op == "&&":
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _time_literal(node: Node) -> bool:
    return (
        isinstance(node, Call)
        and node.function in ("timestamp", "duration")
        and node.target is None
        and len(node.args) == 1
        and isinstance(node.args[0], Lit)
        and node.args[0].kind == "string"
    )


def _reaching(node: Node) -> str | None:
    """How `node` relates its parts other than by ==, != and in: a string function or an
    ordering (None when it does not)."""
    if isinstance(node, Call) and node.function in _STRING_FUNCTIONS:
        return f"{node.function}()"
    if isinstance(node, Binary) and node.op in _ORDERINGS:
        return f"an ordering ('{node.op}')"
    return None
