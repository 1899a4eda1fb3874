"""Conjunctions that can never hold and disjunctions that always do, read off their comparisons.

A deny rule `account.id == "president" && account.id != "president"` reads as protecting
@president and matches nothing; an `approvers` condition `"trust-safety" in approver.groups &&
(approver.id != "c-1001" || approver.id != "c-3004")` reads as keeping two contractors out and
admits both (attack pol7-F2). `foureyes.policy.comparisons` reads each `&&` and `||` chain of a
new text's conditions as constraints on field paths (`Constraint`) and asks here whether the
chain is decided by them alone:

- a conjunction never holds when, for one path, the values it must equal (`==`, `in [..]`) are
  all values it must not (`!=`, `!(.. in [..])`) or disjoint from each other; when one list
  field must both hold and lack a value (`"g" in f && !("g" in f)`); or when its numeric bounds
  leave no number (`n <= 2 && n > 2`);
- a disjunction always holds when, for one path, the values its `!=` parts all admit are
  admitted by its `==` parts (`a != "x" || a != "y"`, `a == "x" || a != "x"`); when a list field
  must hold or lack the same value; or when its numeric bounds cover every number of a number
  every request has (`context.hour`, `days_left`).

Deliberately syntactic: constraints of one path within one chain, not what a chain means
through other fields or nested macros (the invariant prover enumerates those where it must).
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["UNKNOWN", "Atom", "Constraint", "Expr", "always", "decided", "never"]

Path = tuple[str, ...]
_LOWER = frozenset({">", ">="})
# Numbers every request has: elsewhere `n >= 0 || n < 0` says "n is a number" (an attribute a
# connector or the policy declares may be missing or of another type, and the condition errs).
_ALWAYS_NUMBERS = frozenset(
    {("context", "hour")} | {(who, "days_left") for who in ("staff", "approver", "requester")}
)
_UPPER = frozenset({"<", "<="})


@dataclass(frozen=True)
class Constraint:
    """What one part of a chain asks of `path`: equal one of `values` (`eq`), none of them
    (`ne`), hold (`has`) or lack (`lacks`) each as a list, or a numeric bound (`num`: one
    value `(operator, number)`, operator one of `<`, `<=`, `>`, `>=`, `==`)."""

    path: Path
    kind: str
    values: frozenset[object]


def never(constraints: Iterable[Constraint]) -> str | None:
    """Why a conjunction of these constraints can never hold, or None."""
    for path, parts in _by_path(constraints).items():
        shown = ".".join(path)
        allowed: set[object] | None = None
        excluded: set[object] = set()
        for part in parts:
            if part.kind == "eq":
                allowed = set(part.values) if allowed is None else allowed & part.values
            elif part.kind == "ne":
                excluded |= part.values
        if allowed is not None and not allowed - excluded:
            return f"{shown} is required to be a value it is also required not to be"
        holds = _values(parts, "has")
        if holds & _values(parts, "lacks"):
            shown_value = sorted(map(str, holds & _values(parts, "lacks")))[0]
            return f"{shown} is required both to hold and to lack {shown_value!r}"
        low, high = _interval([p for p in parts if p.kind == "num"])
        if low[0] > high[0] or (low[0] == high[0] and not (low[1] and high[1])):
            return f"{shown} is required to be a number no number is"
    return None


def always(constraints: Iterable[Constraint]) -> str | None:
    """Why a disjunction of these constraints always holds, or None."""
    for path, parts in _by_path(constraints).items():
        shown = ".".join(path)
        unequal = [set(p.values) for p in parts if p.kind == "ne"]
        if unequal:
            admitted_by_all_but: set[object] = set.intersection(*unequal)
            if admitted_by_all_but <= _values(parts, "eq"):
                return f"{shown} is any value: one part or another admits each"
        if _values(parts, "has") & _values(parts, "lacks"):
            return f"{shown} either holds a value or lacks it: one part admits each"
        if path in _ALWAYS_NUMBERS and _covers_every_number([p for p in parts if p.kind == "num"]):
            return f"{shown} is any number: one part or another admits each"
    return None


def _by_path(constraints: Iterable[Constraint]) -> dict[Path, list[Constraint]]:
    found: dict[Path, list[Constraint]] = {}
    for constraint in constraints:
        found.setdefault(constraint.path, []).append(constraint)
    return found


def _values(parts: Sequence[Constraint], kind: str) -> set[object]:
    return {value for part in parts if part.kind == kind for value in part.values}


def _bounds(parts: Sequence[Constraint]) -> Iterable[tuple[str, float]]:
    for part in parts:
        yield from _numeric(part.values)


def _numeric(values: Iterable[object]) -> Iterable[tuple[str, float]]:
    """The `(operator, number)` bounds among a constraint's or an atom's `values`."""
    for bound in values:
        if isinstance(bound, tuple) and len(bound) == 2:
            yield str(bound[0]), float(bound[1])


def _interval(parts: Sequence[Constraint]) -> tuple[tuple[float, bool], tuple[float, bool]]:
    """The numbers all of `parts` admit: (lowest, inclusive), (highest, inclusive)."""
    low, high = (-math.inf, True), (math.inf, True)
    for op, number in _bounds(parts):
        if op in ("==", ">", ">="):
            candidate = (number, op != ">")
            if candidate[0] > low[0] or (candidate[0] == low[0] and not candidate[1]):
                low = candidate
        if op in ("==", "<", "<="):
            candidate = (number, op != "<")
            if candidate[0] < high[0] or (candidate[0] == high[0] and not candidate[1]):
                high = candidate
    return low, high


def _covers_every_number(parts: Sequence[Constraint]) -> bool:
    """Whether one part's upper half-line and another's lower one leave no number out."""
    bounds = list(_bounds(parts))
    for up_op, up in bounds:
        if up_op not in _UPPER:
            continue
        for low_op, low in bounds:
            if low_op in _LOWER and (low < up or (low == up and "=" in up_op + low_op)):
                return True
    return False


# --- whole expressions, by enumeration --------------------------------------------------------
#
# A chain read part by part misses what nests: `a != "x" || ["y"].all(c, a != c)` (an `&&`
# inside an `||`), `[x].exists(..) && [y].exists(..)` (attack pol9-F2). So an expression of
# such parts is also decided by trying every value that matters: for each path, each literal it
# is compared with and one value none names; for a list field, each literal present or not; for
# a number, each bound and the numbers either side. A part this reading does not know is a free
# truth value (tried both ways), so "never" and "always" are claimed only when they hold
# whatever that part is.

OTHER = "\x00other"
# Most cases one independent part is tried in, and in all the parts of one expression: past
# either the expression is "unknown" and refused (fail closed, as the prover is past its own).
_MOST_CASES = 20_000
_MOST_WORK = 200_000
UNKNOWN = "unknown"


class _TooMany(Exception):
    """More cases than the budget: the expression cannot be decided here."""


@dataclass(frozen=True)
class Atom:
    """One comparison of `path`: `eq` (equals one of `values`), `has` (the list holds the one
    value), `num` (one `(operator, number)`), `same` (equals the path in `values`)."""

    path: Path
    kind: str
    values: frozenset[object]


# An expression: ("and", parts), ("or", parts), ("not", part), ("atom", Atom), ("free", id),
# ("const", bool).
Expr = tuple[str, Any]


def decided(expr: Expr) -> str | None:
    """ "never" when no value of its paths (and no truth of its free parts) makes `expr` true,
    "always" when every one does, None when some do and some do not, and `UNKNOWN` when there
    are too many cases to try (the caller refuses: padding a vacuous part with ordinary ones
    must not make it pass, attack pol10-F1).

    Parts that share no variable are tried apart: an `&&` of parts reading disjoint fields can
    be true when each can (and false when one can), so a part no other part of the expression
    reads is replaced by one free truth value, or by a constant when it is decided (padding
    around `a != "x" || ["y"].all(c, a != c)` then costs nothing)."""
    atoms: list[Atom] = []
    frees: set[int] = set()
    _collect_atoms(expr, atoms, frees)
    if not atoms:
        return None
    budget = _Budget()
    try:
        truths = _truths(_reduce(expr, frozenset(), budget), budget)
    except _TooMany:
        return UNKNOWN
    if truths == {False}:
        return "never"
    return "always" if truths == {True} else None


@dataclass
class _Budget:
    """Cases tried so far in one `decided` call, and the free ids it has made up."""

    spent: int = 0
    next_free: int = -1

    def free(self) -> int:
        self.next_free -= 1
        return self.next_free

    def spend(self, cases: int) -> None:
        self.spent += cases
        if cases > _MOST_CASES or self.spent > _MOST_WORK:
            raise _TooMany


Var = tuple[object, ...]


def _variables(expr: Expr) -> frozenset[Var]:
    """What the truth of `expr` depends on: each compared path (a list field's each value
    apart: holding one value says nothing of another), each free part."""
    kind, body = expr
    if kind in ("and", "or"):
        return frozenset().union(*(_variables(part) for part in body))
    if kind == "not":
        return _variables(body)
    if kind == "free":
        return frozenset({("free", body)})
    if kind == "const":
        return frozenset()
    atom: Atom = body
    if atom.kind == "has":
        return frozenset({("has", atom.path, value) for value in atom.values})
    if atom.kind == "num":
        return frozenset({("num", atom.path)})
    if atom.kind == "same":
        (other,) = atom.values
        return frozenset({("eq", atom.path), ("eq", other)})
    return frozenset({("eq", atom.path)})


def _reduce(expr: Expr, outside: frozenset[Var], budget: _Budget) -> Expr:
    """`expr` with every group of an `&&`/`||`'s parts that reads nothing read `outside` it
    (nor by the other parts) replaced by what the group can be: a constant, or a free truth
    value. Equivalent for `decided`: such a group takes each of its truths whatever the rest
    of the expression's variables are."""
    kind, body = expr
    if kind == "not":
        return ("not", _reduce(body, outside, budget))
    if kind not in ("and", "or"):
        return expr
    seen = [_variables(part) for part in body]
    parts = [
        _reduce(part, outside.union(*(v for j, v in enumerate(seen) if j != i)), budget)
        for i, part in enumerate(body)
    ]
    groups = _groups([_variables(part) for part in parts])
    apart: list[set[bool]] = []
    kept: list[Expr] = []
    for members, variables in groups:
        chosen = [parts[i] for i in members]
        if variables & outside:
            kept += chosen
            continue
        group: Expr = chosen[0] if len(chosen) == 1 else (kind, chosen)
        apart.append(_truths(group, budget))
    if not apart:
        return (kind, parts)
    if kind == "and":
        can = {True} if all(True in t for t in apart) else set()
        can |= {False} if any(False in t for t in apart) else set()
    else:
        can = {True} if any(True in t for t in apart) else set()
        can |= {False} if all(False in t for t in apart) else set()
    summary: Expr = ("const", can == {True}) if len(can) == 1 else ("free", budget.free())
    if not kept:
        return summary
    return (kind, [summary, *kept])


def _groups(variables: Sequence[frozenset[Var]]) -> list[tuple[list[int], frozenset[Var]]]:
    """The parts (by index) joined by the variables they share, with each group's variables."""
    groups: list[tuple[list[int], frozenset[Var]]] = []
    for index, own in enumerate(variables):
        joined, merged = [index], own
        rest = []
        for members, shared in groups:
            if shared & own:
                joined += members
                merged |= shared
            else:
                rest.append((members, shared))
        groups = [*rest, (sorted(joined), merged)]
    return groups


def _truths(expr: Expr, budget: _Budget) -> set[bool]:
    """The truth values `expr` takes over every value that matters of its paths and every
    truth of its free parts (`_TooMany` past the budget)."""
    kind, body = expr
    if kind == "const":
        return {bool(body)}
    if kind == "free":
        return {False, True}
    atoms: list[Atom] = []
    frees: set[int] = set()
    _collect_atoms(expr, atoms, frees)
    axes = _candidates(atoms)
    names = sorted(axes)
    cases = 2 ** len(frees)
    for name in names:
        cases *= len(axes[name])
        if cases > _MOST_CASES:
            raise _TooMany
    budget.spend(cases)
    seen: set[bool] = set()
    free_list = sorted(frees)
    for values in itertools.product(*(axes[name] for name in names)):
        world = dict(zip(names, values, strict=True))
        for truths in itertools.product((False, True), repeat=len(free_list)):
            seen.add(_value(expr, world, dict(zip(free_list, truths, strict=True))))
            if len(seen) == 2:
                return seen
    return seen


def _collect_atoms(expr: Expr, atoms: list[Atom], frees: set[int]) -> None:
    kind, body = expr
    if kind in ("and", "or"):
        for part in body:
            _collect_atoms(part, atoms, frees)
    elif kind == "not":
        _collect_atoms(body, atoms, frees)
    elif kind == "atom":
        atoms.append(body)
    elif kind == "free":
        frees.add(body)


def _candidates(atoms: Sequence[Atom]) -> dict[Path, list[Any]]:
    literals: dict[Path, set[object]] = {}
    members: dict[Path, set[object]] = {}
    numbers: dict[Path, set[float]] = {}
    for atom in atoms:
        if atom.kind == "eq":
            literals.setdefault(atom.path, set()).update(atom.values)
        elif atom.kind == "same":
            (other,) = atom.values
            literals.setdefault(atom.path, set())
            literals.setdefault(other, set())  # type: ignore[arg-type]
        elif atom.kind == "has":
            members.setdefault(atom.path, set()).update(atom.values)
        elif atom.kind == "num":
            for _, number in _numeric(atom.values):
                numbers.setdefault(atom.path, set()).add(number)
    # Paths compared with each other share their literals, so they can be equal or not.
    for atom in atoms:
        if atom.kind == "same":
            (other,) = atom.values
            shared = literals[atom.path] | literals[other]  # type: ignore[index]
            literals[atom.path] = literals[other] = shared  # type: ignore[index]
    axes: dict[Path, list[Any]] = {}
    for path, values in literals.items():
        axes[path] = [*sorted(values, key=str), OTHER + ".".join(path), OTHER]
    for path, values in members.items():
        ordered = sorted(values, key=str)
        axes[("has", *path)] = [
            frozenset(v for v, keep in zip(ordered, keeps, strict=True) if keep)
            for keeps in itertools.product((False, True), repeat=len(ordered))
        ]
    for path, found in numbers.items():
        tried = sorted({n + d for n in found for d in (-1.0, -0.5, 0.0, 0.5, 1.0)})
        axes[("num", *path)] = tried + ([] if path in _ALWAYS_NUMBERS else [None])
    return axes


def _value(expr: Expr, world: Mapping[Path, Any], truths: Mapping[int, bool]) -> bool:
    kind, body = expr
    if kind == "and":
        return all(_value(part, world, truths) for part in body)
    if kind == "or":
        return any(_value(part, world, truths) for part in body)
    if kind == "not":
        return not _value(body, world, truths)
    if kind == "free":
        return truths[body]
    if kind == "const":
        return bool(body)
    atom: Atom = body
    if atom.kind == "eq":
        return world[atom.path] in atom.values
    if atom.kind == "same":
        (other,) = atom.values
        return bool(world[atom.path] == world[other])  # type: ignore[index]
    if atom.kind == "has":
        return bool(atom.values <= world[("has", *atom.path)])
    number = world[("num", *atom.path)]
    if number is None:
        return False  # a missing or other-typed attribute: the comparison errs
    return all(_OPS[op](number, bound) for op, bound in _numeric(atom.values))


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
