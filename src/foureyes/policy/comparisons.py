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
  they are recorded (`Found.searched`) for `param_domains` to hold;
- a comparison of two literals (`"a" == "a"`), a part that reads nothing of the request
  (`1 + 1 == 3`, `!true`), a literal `true`/`false` inside a chain, a ternary between booleans,
  and an `&&`/`||` chain (a macro over literals read as the chain it stands for) that
  `vacuity` finds can never hold or always holds are refused (R6-2, attacks pol7-F2, pol8-F1,
  F2): each reads as deciding and decides nothing;
- a literal in a list beside fields or joined to a list field (`approver.id in
  [requester.manager, "lee"]`, `requester.identities + ["lee"]`) is compared as any other.

`read` returns the comparisons (`(path, literal)`) and every string literal of a condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from foureyes.policy.cel.ast import (
    Binary,
    Call,
    Comp,
    Cond,
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
from foureyes.policy.vacuity import UNKNOWN, Atom, Constraint, Expr, always, decided, never

__all__ = ["VARIABLES", "Found", "Path", "read"]

Path = tuple[str, ...]
# The variables of a condition whose fields are attributed by name: an index on one is refused.
VARIABLES = frozenset({"staff", "approver", "requester", "account", "context", "action"})
_STRING_FUNCTIONS = frozenset({"startsWith", "endsWith", "contains", "matches"})
_ORDERINGS = frozenset({"<", "<=", ">", ">="})
_BOUNDS = _ORDERINGS | {"=="}
# What a macro over literals stands for: `exists` an `||` of its predicate, `all` an `&&`.
_MACRO_CHAIN = {"exists": "||", "all": "&&"}
# A field a constraint names as its value (`a != b.c`): no literal reads like it.
_FIELD = "\x00field:"
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}
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
    # `params.pin.startsWith("x")`: a field searched for a literal by a string function (on
    # `params` only: elsewhere the form is refused), as (path, function, literal).
    searched: list[tuple[Path, str, str]] = field(default_factory=list)


def read(source: str) -> Found:
    """The comparisons, literals and shape problem of `source` (CelSyntaxError,
    RecursionError from the parser propagate: the caller refuses what it cannot read)."""
    walker = _Walker(source)
    tree = parse(source)
    if isinstance(tree, Lit) and tree.kind == "bool":
        return walker.found  # `true` (the last tier) or `false`: reads as what it decides
    walker.visit(tree, {})
    return walker.found


class _Walker:
    def __init__(self, source: str) -> None:
        self.source = source
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
        if isinstance(node, Cond):
            # `account.id in (c ? ["President"] : [..])`: what a field is compared with is
            # chosen by a condition; its literals went unchecked once a branch read a field
            # (attack pol9-F1). No condition needs one: its cases are written with && and ||.
            self.refuse(
                f"`{self._shown(node)}` chooses between values by a condition: write the cases "
                f"with && and || and {_DIRECTLY}"
            )
        if isinstance(node, Index) and isinstance(node.operand, ListLit):
            self.refuse(f"`{self._shown(node)}` indexes a list literal: {_DIRECTLY}")
        if isinstance(node, Comp) and node.kind == "exists_one":
            # `["c-3004", "c-1001", "c-3004"].exists_one(c, approver.id == c)` excludes nobody
            # it lists twice (attack pol9-F3): "exactly one" reads as "any".
            self.refuse(
                f"exists_one() holds when exactly one element does, which reads as exists(): "
                f"write exists() or all() ({self._shown(node)})"
            )
        if isinstance(node, Comp):
            self._comp(node, env)
            return
        # The parts first: a form refused for what it is (an index, a map) is named so.
        for child in children(node):
            self.visit(child, env)
        if isinstance(node, Binary) and node.op in ("==", "!=", "in"):
            self._compare(node, env)
        if isinstance(node, Binary) and node.op in ("&&", "||"):
            self._chain(node, env)
            for operand in (node.left, node.right):
                if isinstance(operand, Lit):  # `x && true`, `x || false`: the chain is one part
                    self.refuse(
                        f"`{self._shown(node)}` holds the literal {self._shown(operand)}: "
                        "the chain does not read as it decides"
                    )
        self._constant(node, env)
        reaching = _reaching(node)
        if reaching is not None and self._field_in(node, env) and self._meets_literal(node, env):
            self.refuse(
                f"a literal reaches a field through {reaching}, which no check can read "
                f"(a prefix or a pattern names no one): {_DIRECTLY}"
            )
        if isinstance(node, Call) and node.function in _STRING_FUNCTIONS:
            self._searched(node, env)

    def _searched(self, node: Call, env: Mapping[str, _Bound]) -> None:
        parts = list(node.args) if node.target is None else [node.target, *node.args]
        if len(parts) == 2:
            path, values = self._path(parts[0], env), self._values(parts[1], env)
            if path is not None and values is not None:
                self.found.searched.extend((path, node.function, value) for value in values)

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
        # A macro over literals is the chain it stands for: `["c-3004", "c-1001"].exists(c,
        # approver.id != c)` is always true, and read as excluding both (attack pol8-F1).
        expanded = self._expanded(node, env)
        chain = _MACRO_CHAIN.get(node.kind)
        found = (never if chain == "&&" else always)(expanded) if expanded else None
        if found is not None:
            verdict = "can never be true" if chain == "&&" else "is always true"
            self.refuse(f"{found}: `{self._shown(node)}` {verdict}")
        self._decided(node, env)

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
            not _constant(part) and not self._reads_a_variable(part, env) for part in children(node)
        )

    def _reads_a_variable(self, node: Node, env: Mapping[str, _Bound]) -> bool:
        """Whether `node` reads anything of the request (a variable, a macro variable that
        does not range over literals)."""
        if isinstance(node, Ident):
            return not isinstance(env.get(node.name), list)
        if isinstance(node, Comp):
            inner = self._bind(node, env)
            return self._reads_a_variable(node.range, env) or any(
                self._reads_a_variable(part, inner) for part in (node.pred, node.transform) if part
            )
        return any(self._reads_a_variable(child, env) for child in children(node))

    def _literal_in(self, node: Node, env: Mapping[str, _Bound]) -> bool:
        """Whether `node` holds a string or bytes literal (a time written as one aside), or a
        macro variable ranging over literals or over something computed."""
        if isinstance(node, Lit):
            return node.kind in ("string", "bytes")
        if isinstance(node, Ident):
            # A variable over literals holds strings when its list does (numbers bind to []).
            bound = env.get(node.name, ())
            return bound is None or (isinstance(bound, list) and bool(bound))
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
        if node.op == "in" and self._path(node.left, env) is not None:
            self._mixed_list(self._path(node.left, env) or (), node.right, env)
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if (
                self._path(side, env) is not None
                and self._values(other, env) is None
                and self._path(other, env) is None
                and not _constant(other)
                and not self._field_in(other, env)
            ):
                self.refuse(f"a field is compared with a value built from literals: {_DIRECTLY}")

    def _mixed_list(self, path: Path, listed: Node, env: Mapping[str, _Bound]) -> None:
        """`path in [other.field, "lee"]` (or a `+` of lists and list fields): each literal of
        the list is compared with `path` (attacks pol7-F8, pol8-F4: the list skipped every
        check); an element that is neither a literal nor a field is refused."""
        if self._values(listed, env) is not None:
            return
        operands = _chained(listed, "+")
        if len(operands) == 1 and not isinstance(listed, ListLit):
            return
        items: list[Node] = []
        for operand in operands:
            if isinstance(operand, ListLit):
                items += operand.items
            elif self._path(operand, env) is None:
                items.append(operand)  # refused below unless it is a constant
        # `requester.identities + ["lee"]`: a list field joined to literals (attack pol8-F4).
        for item in items:
            values = self._values(item, env)
            if values is not None:
                self.found.compared.extend((path, value) for value in values)
            elif self._path(item, env) is None and not _constant(item):
                self.refuse(f"an element of a list compared with a field is computed: {_DIRECTLY}")

    def _chain(self, node: Binary, env: Mapping[str, _Bound]) -> None:
        """An `&&` chain that can never hold, or an `||` chain that always does, read off its
        comparisons (`vacuity`: `a == "x" && a != "x"`, `a != "x" || a != "y"`): refused, as
        a deny rule so written protects no one and an exclude so written excludes no one."""
        parts = _chained(node, node.op)
        constraints = [c for part in parts for c in self._constraints(part, env, node.op)]
        found = never(constraints) if node.op == "&&" else always(constraints)
        if found is not None:
            verdict = "can never be true" if node.op == "&&" else "is always true"
            self.refuse(f"{found}: `{self._shown(node)}` {verdict}")
        self._decided(node, env)

    def _decided(self, node: Node, env: Mapping[str, _Bound]) -> None:
        """`node` refused when trying every value that matters finds it never or always true
        (`vacuity.decided`: what nests, `a != "x" || ["y"].all(c, a != c)`; attack pol9-F2)."""
        verdict = decided(self._expr(node, env))
        if verdict == UNKNOWN:
            # Too many cases to tell: refused, never passed (padding a refused form with
            # ordinary parts made it pass, attack pol10-F1).
            self.refuse(
                f"cannot decide whether `{self._shown(node)}` decides anything: its parts that "
                "read the same fields have too many cases to try; rewrite it as smaller "
                "conditions (fewer distinct values, or parts joined by && and || that read "
                "different fields)"
            )
        elif verdict is not None:
            said = "can never be true" if verdict == "never" else "is always true"
            self.refuse(
                f"`{self._shown(node)}` {said}, whatever the request: it reads as deciding and "
                "decides nothing"
            )

    def _constraints(self, part: Node, env: Mapping[str, _Bound], chain: str) -> list[Constraint]:
        """What `part` of a `chain` ("&&" or "||") asks of field paths, as `vacuity` reads it,
        whichever side the literal stands on (none: it asks nothing this reading knows). A
        macro over literals is read as the chain it stands for (`exists` an `||`, `all` an
        `&&`) where that is the chain's own kind."""
        if isinstance(part, Comp):
            return self._expanded(part, env) if _MACRO_CHAIN.get(part.kind) == chain else []
        negated = isinstance(part, Unary) and part.op == "!"
        if isinstance(part, Unary) and negated:
            part = part.operand
        if not isinstance(part, Binary):
            return []
        found: list[Constraint] = []
        for side, other, mirrored in (
            (part.left, part.right, False),
            (part.right, part.left, True),
        ):
            path = self._path(side, env)
            if path is None:
                continue
            values, number = self._values(other, env), _number(other)
            if part.op in ("==", "!=") and values is not None:
                kind = "eq" if (part.op == "==") != negated else "ne"
                found.append(Constraint(path, kind, frozenset(values)))
            elif part.op in ("==", "!=") and (part.op == "!=") != negated:
                # Unequal to another field: a value the chain cannot name, never one of its
                # literals for sure (`a != b.c || a != "x"` admits everyone but where b.c is x).
                other_path = self._path(other, env)
                if other_path is not None:
                    found.append(Constraint(path, "ne", frozenset({_FIELD + ".".join(other_path)})))
            elif part.op == "in" and not mirrored and values is not None:
                found.append(Constraint(path, "ne" if negated else "eq", frozenset(values)))
            elif part.op == "in" and mirrored and values is not None and len(values) == 1:
                kind = "lacks" if negated else "has"
                found.append(Constraint(path, kind, frozenset(values)))
            elif number is not None and not negated and part.op in _BOUNDS:
                bound = part.op if not mirrored else _MIRRORED[part.op]
                found.append(Constraint(path, "num", frozenset({(bound, number)})))
        return found

    def _expr(self, node: Node, env: Mapping[str, _Bound]) -> Expr:
        """`node` as `vacuity.decided` reads it: `&&`, `||`, `!`, comparisons of a path with
        literals, a number or another path, macros over literals as their chains; anything
        else a free truth value."""
        if isinstance(node, Binary) and node.op in ("&&", "||"):
            kind = "and" if node.op == "&&" else "or"
            return (kind, [self._expr(node.left, env), self._expr(node.right, env)])
        if isinstance(node, Unary) and node.op == "!":
            return ("not", self._expr(node.operand, env))
        if isinstance(node, Lit) and node.kind == "bool":
            return ("const", bool(node.value))
        if isinstance(node, Comp) and node.kind in _MACRO_CHAIN and node.pred is not None:
            values = self._values(node.range, env)
            if values:
                kind = "or" if node.kind == "exists" else "and"
                pred = node.pred
                return (kind, [self._expr(pred, {**env, node.var: [v]}) for v in values])
        if isinstance(node, Binary):
            atom = self._atom(node, env)
            if atom is not None:
                return ("not", ("atom", atom)) if node.op == "!=" else ("atom", atom)
        return ("free", id(node))

    def _atom(self, node: Binary, env: Mapping[str, _Bound]) -> Atom | None:
        """The comparison `node` as one `Atom` (`!=` as the `==` it negates), else None."""
        for side, other, mirrored in (
            (node.left, node.right, False),
            (node.right, node.left, True),
        ):
            path = self._path(side, env)
            if path is None:
                continue
            values, number = self._values(other, env), _number(other)
            if node.op in ("==", "!=") and values is not None and len(values) == 1:
                return Atom(path, "eq", frozenset(values))
            if node.op in ("==", "!=") and not mirrored and self._path(other, env) is not None:
                return Atom(path, "same", frozenset({self._path(other, env)}))
            if node.op == "in" and not mirrored and values is not None:
                return Atom(path, "eq", frozenset(values))
            if node.op == "in" and mirrored and values is not None and len(values) == 1:
                return Atom(path, "has", frozenset(values))
            if number is not None and node.op in _BOUNDS:
                bound = _MIRRORED[node.op] if mirrored else node.op
                return Atom(path, "num", frozenset({(bound, number)}))
        return None

    def _expanded(self, node: Comp, env: Mapping[str, _Bound]) -> list[Constraint]:
        """The constraints of `node`'s predicate for each literal its range holds (`["a",
        "b"].exists(c, x != c)` is `x != "a" || x != "b"`); none unless it ranges over string
        literals and is `exists` or `all`."""
        chain = _MACRO_CHAIN.get(node.kind)
        values = self._values(node.range, env)
        if chain is None or node.pred is None or not values:
            return []
        found: list[Constraint] = []
        for value in values:
            found += self._constraints(node.pred, {**env, node.var: [value]}, chain)
        return found

    def _constant(self, node: Node, env: Mapping[str, _Bound]) -> None:
        """A part that reads nothing of the request (`1 + 1 == 3`, `!true`, `size("ab") > 1`,
        `[1, 2].all(n, n > 0)`) is always true or always false: refused (attack pol7-F2). A
        literal, a list of them, a number, a time written as one and a condition that is only
        `true` or `false` are values, not such parts."""
        if isinstance(node, Lit | ListLit) or _constant(node) or _time_literal(node):
            return
        if self._values(node, env) is not None or self._reads_a_variable(node, env):
            return
        self.refuse(
            f"`{self._shown(node)}` reads nothing of the request: it is always the same; "
            f"{_DIRECTLY}"
        )

    def _shown(self, node: Node) -> str:
        text = " ".join(self.source[node.pos : node.end].split())
        return text + ")" * max(0, text.count("(") - text.count(")"))  # a node ends at its last

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


def _chained(node: Node, op: str) -> list[Node]:
    """The parts of an `op` chain (`a && b && c`: a, b, c)."""
    if isinstance(node, Binary) and node.op == op:
        return _chained(node.left, op) + _chained(node.right, op)
    return [node]


def _number(node: Node) -> float | None:
    """The number `node` is written as (`3`, `-1`, `2.5`), else None."""
    if isinstance(node, Unary) and node.op == "-":
        inner = _number(node.operand)
        return None if inner is None else -inner
    if isinstance(node, Lit) and node.kind in ("int", "uint", "double"):
        return float(node.value)  # type: ignore[arg-type]
    return None


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
