"""Compile a type-checked condition to nested Python closures.

Each node becomes a function of the activation (a mapping of variable names to values). The
static types pick the closure: where both sides of `==` are known to be strings it is Python's
`==`; where a side is `dyn` it is the full CEL operation from `runtime`. Attribute paths are
resolved to direct item lookups (`a["staff"]["groups"]`) fused into the comparison that uses
them, literals are folded, and `&&`/`||` rely on try/except, which costs nothing unless an
operand fails.

Activations are trusted to hold values of the declared types (a `string` attribute holds a str or,
when nullable, None); `dyn` values may be anything.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from foureyes.policy.cel import runtime as rt
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
    children,
)
from foureyes.policy.cel.checker import Checked, strip
from foureyes.policy.cel.closures import (
    COMPREHENSIONS,
    SCOPED_PREDICATES,
    and2,
    eq_number,
    fuse,
    fuse2,
    fuse_in,
    getter,
    in_reversed,
    iteration_items,
    logical_n,
    ne_number,
    not_contains,
    not_in,
    not_in_reversed,
    or2,
    raise_not_bool,
    scoped_filter,
    scoped_map,
)
from foureyes.policy.celtypes import (
    BOOL,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    CelType,
    ListType,
    MapType,
    ObjectType,
)
from foureyes.policy.regex import Regex

Fn = Callable[[Any], Any]

_NOTHING = object()
_UNKNOWN = object()
_EXACT = 2**53  # below this magnitude int and double compare the same exactly or via double
_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_CEL_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": rt.cel_lt,
    "<=": rt.cel_le,
    ">": rt.cel_gt,
    ">=": rt.cel_ge,
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": rt.cel_add,
    "-": rt.cel_sub,
    "*": rt.cel_mul,
    "/": rt.cel_div,
    "%": rt.cel_mod,
}
# Types whose Python `==` and ordering are CEL's when both sides are known to have them.
_PLAIN_EQ = (STRING, INT, DOUBLE, BOOL, DURATION)
_PLAIN_ORDER = (STRING, INT, BOOL, DURATION)


def compile_native(node: Node, checked: Checked) -> Fn:
    return _Compiler(checked).compile(node)


class _Compiler:
    def __init__(self, checked: Checked) -> None:
        self.types = checked.types
        self.constants = checked.constants
        self.closed: dict[Node, bool] = {}
        self.folded: dict[Node, Any] = {}  # values of closed nodes (_NOTHING: it fails)
        self.compiled: dict[tuple[Node, str | None], Fn] = {}
        # While compiling the body of a comprehension over its element alone, the variable name:
        # the body then receives the element itself instead of the activation.
        self.element_var: str | None = None

    # ------------------------------------------------------------ helpers

    def type(self, node: Node) -> CelType:
        return strip(self.types.get(node, DYN))

    def is_closed(self, node: Node) -> bool:
        """Whether `node` reads no variable (so it is a constant, or always fails)."""
        known = self.closed.get(node)
        if known is None:
            known = not isinstance(node, Ident | Comp) and all(
                self.is_closed(child) for child in children(node)
            )
            self.closed[node] = known
        return known

    def constant(self, node: Node) -> Any:
        """The value of a closed node, or _NOTHING (not closed, or it fails)."""
        if isinstance(node, Lit):
            return node.value
        if node in self.constants and isinstance(node, Call):
            return self.constants[node]
        if not self.is_closed(node):
            return _NOTHING
        known = self.folded.get(node, _UNKNOWN)
        if known is _UNKNOWN:
            try:
                known = self._compile(node)({})
            except Exception:
                known = _NOTHING
            self.folded[node] = known
        return known

    def path(self, node: Node) -> tuple[str, ...] | None:
        """The attribute path `node` reads (relative to the element in element mode)."""
        if isinstance(node, Ident):
            if self.element_var is not None:
                return () if node.name == self.element_var else None
            return (node.name,)
        if isinstance(node, Select):
            base = self.path(node.operand)
            return None if base is None else (*base, node.field)
        if (
            isinstance(node, Index)
            and isinstance(node.index, Lit)
            and node.index.kind == "string"
            and isinstance(self.type(node.operand), MapType | ObjectType)
        ):
            base = self.path(node.operand)
            return None if base is None else (*base, str(node.index.value))
        return None

    def apply(self, node: Node, test: Callable[[Any], Any]) -> Fn:
        """`test(value of node)`, fused with the path lookup when node is a path."""
        path = self.path(node)
        if path is not None:
            return fuse(path, test)
        fn = self.compile(node)
        return lambda a: test(fn(a))

    def apply2(self, node: Node, op: Callable[[Any, Any], Any], const: object) -> Fn:
        path = self.path(node)
        if path is not None:
            return fuse2(path, op, const)
        fn = self.compile(node)
        return lambda a: op(fn(a), const)

    def strict_bool(self, node: Node) -> bool:
        """Whether `node` evaluates to a Python bool whenever it does not raise."""
        if isinstance(node, Binary | Has):
            return not isinstance(node, Binary) or node.op not in _ARITHMETIC
        if isinstance(node, Unary):
            return node.op == "!"
        if isinstance(node, Comp):
            return node.kind in ("exists", "all", "exists_one")
        if isinstance(node, Call):
            return node.function in ("startsWith", "endsWith", "contains", "matches")
        return isinstance(node, Lit) and node.kind == "bool"

    def checked_bool(self, node: Node) -> Fn:
        """`node`, failing unless it is a bool."""
        fn = self.compile(node)
        if self.strict_bool(node):
            return fn
        path = self.path(node)
        if path is not None and len(path) == 2:
            k0, k1 = path

            def boolean_attribute(a: Any) -> bool:
                value = a[k0][k1]
                if value is True or value is False:
                    return value
                return raise_not_bool(value)

            return boolean_attribute

        def boolean(a: Any) -> bool:
            value = fn(a)
            if value is True or value is False:
                return value
            return raise_not_bool(value)

        return boolean

    # ------------------------------------------------------------ dispatch

    def compile(self, node: Node) -> Fn:
        value = self.constant(node)
        if value is not _NOTHING:
            return lambda a: value
        key = (node, self.element_var)
        fn = self.compiled.get(key)
        if fn is None:
            fn = self.compiled[key] = self._compile(node)
        return fn

    def _compile(self, node: Node) -> Fn:
        if isinstance(node, Lit):
            value = node.value
            return lambda a: value
        path = self.path(node)
        if path is not None:
            return getter(path)
        if isinstance(node, Select):
            operand = self.compile(node.operand)
            field = node.field
            return lambda a: operand(a)[field]
        if isinstance(node, Index):
            return self._index(node)
        if isinstance(node, Has):
            return self._has(node)
        if isinstance(node, Unary):
            return self._unary(node)
        if isinstance(node, Binary):
            return self._binary(node)
        if isinstance(node, Cond):
            return self._conditional(node)
        if isinstance(node, ListLit):
            items = [self.compile(item) for item in node.items]
            return lambda a: [item(a) for item in items]
        if isinstance(node, MapLit):
            entries = [(self.compile(k), self.compile(v)) for k, v in node.entries]
            return lambda a: {k(a): v(a) for k, v in entries}
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, Comp):
            return self._comprehension(node)
        if isinstance(node, Ident):  # pragma: no cover - handled as a path
            return operator.itemgetter(node.name)
        raise AssertionError(f"cannot compile {type(node).__name__}")  # pragma: no cover

    # ------------------------------------------------------------ nodes

    def _index(self, node: Index) -> Fn:
        container = self.compile(node.operand)
        key_const = self.constant(node.index)
        ctype = self.type(node.operand)
        if isinstance(ctype, MapType) and self.type(node.index) == STRING:
            if key_const is not _NOTHING:
                return lambda a: container(a)[key_const]
            key = self.compile(node.index)
            return lambda a: container(a)[key(a)]
        if key_const is not _NOTHING:
            return lambda a: rt.cel_index(container(a), key_const)
        key = self.compile(node.index)
        return lambda a: rt.cel_index(container(a), key(a))

    def _has(self, node: Has) -> Fn:
        field = node.operand.field
        operand = node.operand.operand
        if isinstance(self.type(operand), MapType | ObjectType):
            return self.apply2(operand, operator.contains, field)
        return self.apply(operand, lambda value: rt.cel_has(value, field))

    def _unary(self, node: Unary) -> Fn:
        inner = node.operand
        if node.op == "!" and isinstance(inner, Binary) and inner.op in ("==", "!=", "in"):
            # !(x == y) is x != y, and !(x in y) fails exactly when x in y does.
            if inner.op == "in":
                return self._membership(inner, negate=True)
            return self._equality(inner, negate=True)
        operand = self.compile(inner)
        if node.op == "-":
            return lambda a: rt.cel_neg(operand(a))
        if self.strict_bool(node.operand):
            return lambda a: not operand(a)
        return lambda a: rt.cel_not(operand(a))

    def _conditional(self, node: Cond) -> Fn:
        cond = self.compile(node.cond)
        then = self.compile(node.then)
        orelse = self.compile(node.orelse)

        def conditional(a: Any) -> Any:
            choice = cond(a)
            if choice is True:
                return then(a)
            if choice is False:
                return orelse(a)
            return raise_not_bool(choice)

        return conditional

    def _binary(self, node: Binary) -> Fn:
        op = node.op
        if op in ("&&", "||"):
            return self._logical(node)
        if op in ("==", "!="):
            return self._equality(node)
        if op in _ORDER_OPS:
            return self._order(node)
        if op == "in":
            return self._membership(node)
        return self._arithmetic(node)

    def _logical(self, node: Binary) -> Fn:
        op = node.op
        operands: list[Node] = []

        def flatten(n: Node) -> None:
            if isinstance(n, Binary) and n.op == op:
                flatten(n.left)
                flatten(n.right)
            else:
                operands.append(n)

        flatten(node)
        if len(operands) > 8:
            fns = tuple(self.compile(n) for n in operands)
            return logical_n(fns, decisive=op == "||")
        # Right-nested: a && (b && c). With CEL's commutative error rules the result is the
        # binding's (a && b) && c, and each level returns a checked bool to the one above.
        combine = and2 if op == "&&" else or2
        result = self.checked_bool(operands[-1])
        for operand in reversed(operands[:-1]):
            result = combine(self.compile(operand), result)
        return result

    def _equality(self, node: Binary, *, negate: bool = False) -> Fn:
        negate = (node.op == "!=") != negate
        left, right = node.left, node.right
        const = self.constant(right)
        other = left
        if const is _NOTHING:
            const = self.constant(left)
            other = right
        if const is not _NOTHING:
            test = self._equals_constant(self.type(other), const)
            if test is not None:
                op = test[1] if negate else test[0]
                return self.apply2(other, op, const)
            if negate:
                return self.apply2(other, rt.cel_ne, const)
            return self.apply2(other, rt.cel_eq, const)
        lt, rtype = self.type(left), self.type(right)
        lf, rf = self.compile(left), self.compile(right)
        if lt == rtype and lt in _PLAIN_EQ:
            if negate:
                return lambda a: lf(a) != rf(a)
            return lambda a: lf(a) == rf(a)
        if negate:
            return lambda a: not rt.cel_eq(lf(a), rf(a))
        return lambda a: rt.cel_eq(lf(a), rf(a))

    def _equals_constant(
        self, t: CelType, const: Any
    ) -> tuple[Callable[[Any, Any], bool], Callable[[Any, Any], bool]] | None:
        """(eq, ne) Python operators equivalent to CEL's against `const`, if there are."""
        kind = type(const)
        if const is None or kind is bool:
            return operator.is_, operator.is_not
        if kind is str or kind is timedelta:
            return operator.eq, operator.ne
        if kind is int and -_EXACT <= const <= _EXACT:
            if t == INT:
                return operator.eq, operator.ne
            return eq_number, ne_number
        if kind is float and not math.isnan(const) and abs(const) < _EXACT:
            if t in (INT, DOUBLE):
                return operator.eq, operator.ne
            return eq_number, ne_number
        return None

    def _order(self, node: Binary) -> Fn:
        op = node.op
        left, right = node.left, node.right
        const = self.constant(right)
        if const is not _NOTHING:
            return self._order_constant(left, op, const)
        const = self.constant(left)
        if const is not _NOTHING:
            return self._order_constant(right, _FLIPPED[op], const)
        lt, rtype = self.type(left), self.type(right)
        lf, rf = self.compile(left), self.compile(right)
        if lt == rtype and lt in _PLAIN_ORDER:
            python = _ORDER_OPS[op]
            return lambda a: python(lf(a), rf(a))
        cel = _CEL_ORDER[op]
        return lambda a: cel(lf(a), rf(a))

    def _order_constant(self, other: Node, op: str, const: Any) -> Fn:
        t = self.type(other)
        kind = type(const)
        python = _ORDER_OPS[op]
        cel = _CEL_ORDER[op]
        if (
            (t == INT and kind is int and -_EXACT <= const <= _EXACT)
            or (t == INT and kind is float and abs(const) < _EXACT)
            or (t == STRING and kind is str)
            or (t == DURATION and kind is timedelta)
            or (t == BOOL and kind is bool)
        ):
            return self.apply2(other, python, const)
        if t == DOUBLE and kind in (int, float) and abs(const) < _EXACT:

            def double_order(value: Any, bound: Any) -> bool:
                result = python(value, bound)
                if result or not math.isnan(value):
                    return result
                raise rt.NoSuchOverload("no such overload: ordering with NaN")

            return self.apply2(other, double_order, const)
        if t == TIMESTAMP and kind is datetime:

            def timestamp_order(value: Any, bound: Any) -> bool:
                try:
                    return python(value, bound)
                except TypeError:  # a naive datetime (UTC to the binding), or null
                    return cel(value, bound)

            return self.apply2(other, timestamp_order, const)
        return self.apply2(other, cel, const)

    def _membership(self, node: Binary, *, negate: bool = False) -> Fn:
        left, right = node.left, node.right
        items = self.constant(right)
        lt, rtype = self.type(left), self.types.get(right, DYN)
        if type(items) is list:
            return self._in_constant_list(left, lt, items, negate)
        element = self.constant(left)
        base = strip(rtype)
        contains = not_contains if negate else operator.contains
        if element is not _NOTHING:
            kind = type(element)
            if kind is str and isinstance(base, ListType | MapType | ObjectType):
                return self.apply2(right, contains, element)
            if (
                kind is int
                and isinstance(base, ListType)
                and strip(base.elem) in (INT, DOUBLE)
                and -_EXACT <= element <= _EXACT
            ):
                return self.apply2(right, contains, element)
            return self.apply2(right, not_in_reversed if negate else in_reversed, element)
        lf, rf = self.compile(left), self.compile(right)
        if lt == STRING and isinstance(base, ListType) and strip(base.elem) == STRING:
            if negate:
                return lambda a: lf(a) not in rf(a)
            return lambda a: lf(a) in rf(a)
        if negate:
            return lambda a: not rt.cel_in(lf(a), rf(a))
        return lambda a: rt.cel_in(lf(a), rf(a))

    def _in_constant_list(self, left: Node, t: CelType, items: list[Any], negate: bool) -> Fn:
        kinds = {type(item) for item in items}
        container: frozenset[Any] | tuple[Any, ...] | None = None
        if kinds == {str}:
            # Python == between a str and anything else is CEL's; a set needs a hashable value.
            container = frozenset(items) if t == STRING else tuple(items)
        elif kinds == {int} and t == INT and all(-_EXACT <= i <= _EXACT for i in items):
            container = frozenset(items)
        if container is None:
            return self.apply2(left, not_in if negate else rt.cel_in, items)
        path = self.path(left)
        if path is not None:
            return fuse_in(path, container, negate)
        if negate:
            return self.apply(left, lambda value: value not in container)
        return self.apply(left, container.__contains__)

    def _arithmetic(self, node: Binary) -> Fn:
        op = node.op
        lt, rtype = self.type(node.left), self.type(node.right)
        lf, rf = self.compile(node.left), self.compile(node.right)
        if op == "+" and lt == rtype == STRING:
            return lambda a: lf(a) + rf(a)
        if op == "-" and lt == rtype == TIMESTAMP:

            def elapsed(a: Any) -> Any:
                x, y = lf(a), rf(a)
                try:
                    return x - y
                except TypeError:  # naive and aware: the binding reads naive as UTC
                    return rt.cel_sub(x, y)

            return elapsed
        function = _ARITHMETIC[op]
        const = self.constant(node.right)
        if const is not _NOTHING:
            return lambda a: function(lf(a), const)
        return lambda a: function(lf(a), rf(a))

    def _call(self, node: Call) -> Fn:
        name = node.function
        if node in self.constants:  # timestamp("...") / duration("...")
            value = self.constants[node]
            return lambda a: value
        subject = node.target if node.target is not None else node.args[0]
        t = self.type(subject)
        if name == "size":
            if isinstance(t, ListType | MapType | ObjectType):
                return self.apply(subject, len)
            return self.apply(subject, rt.cel_size)
        if name in ("startsWith", "endsWith", "contains"):
            argument = node.args[0]
            const = self.constant(argument)
            if t == STRING and type(const) is str:
                method = {
                    "startsWith": str.startswith,
                    "endsWith": str.endswith,
                    "contains": str.__contains__,
                }[name]
                return self.apply2(subject, method, const)
            helper = rt.string_method(name)
            if const is not _NOTHING:
                return self.apply2(subject, helper, const)
            target, arg = self.compile(subject), self.compile(argument)
            return lambda a: helper(target(a), arg(a))
        if name == "matches":
            argument = node.args[0]
            pattern = self.constants.get(argument)
            if pattern is None:  # computed at run time: compiled (by RE2) when used
                target, arg = self.compile(subject), self.compile(argument)
                matches = rt.regex_matches
                return lambda a: matches(target(a), arg(a))
            assert isinstance(argument, Lit)
            search = rt.regex_search(cast(Regex, pattern), str(argument.value))
            return self.apply(subject, search)
        if name == "int":
            return self.apply(subject, rt.to_int)
        if name == "double":
            return self.apply(subject, rt.to_double)
        if name == "string":
            return self.apply(subject, rt.to_string)
        if name == "dyn":
            return self.compile(subject)
        raise AssertionError(f"no native form for {name}()")  # pragma: no cover

    def _comprehension(self, node: Comp) -> Fn:
        source = self.compile(node.range)
        element_mode = self._element_only(node)
        saved = self.element_var
        self.element_var = node.var if element_mode else None
        try:
            pred = None if node.pred is None else self.compile(node.pred)
            transform = None if node.transform is None else self.compile(node.transform)
        finally:
            self.element_var = saved
        loop = COMPREHENSIONS[node.kind]
        if element_mode:
            groups = self._any_of_strings(node)
            if groups is not None:
                # list(string).exists(v, v in ["a", "b"]): do the lists intersect?
                return self.apply(node.range, lambda items: not groups.isdisjoint(items))

            def run(a: Any) -> Any:
                items = source(a)
                if type(items) is not list and type(items) is not dict:
                    items = rt.iteration_range(items)
                return loop(items, pred, transform)

            return run
        # The body reads other variables too: it sees a copy of the activation in which the
        # macro's variable is bound to each element in turn.
        var = node.var
        if node.kind == "filter":
            assert pred is not None
            return lambda a: scoped_filter(iteration_items(source(a)), pred, dict(a), var)
        if node.kind == "map":
            assert transform is not None
            return lambda a: scoped_map(iteration_items(source(a)), pred, transform, dict(a), var)
        scoped = SCOPED_PREDICATES[node.kind]
        assert pred is not None
        return lambda a: scoped(iteration_items(source(a)), pred, dict(a), var)

    def _any_of_strings(self, node: Comp) -> frozenset[str] | None:
        """For `strings.exists(v, v in [string literals])`, the set of literals."""
        pred = node.pred
        range_type = self.type(node.range)
        if not (
            node.kind == "exists"
            and isinstance(range_type, ListType)
            and range_type.elem == STRING
            and isinstance(pred, Binary)
            and pred.op == "in"
            and isinstance(pred.left, Ident)
            and pred.left.name == node.var
        ):
            return None
        items = self.constant(pred.right)
        if type(items) is list and all(type(item) is str for item in items):
            return frozenset(items)
        return None

    def _element_only(self, node: Comp) -> bool:
        """Whether the macro's body reads only its variable (and has no nested macro)."""
        if self.element_var is not None:
            return False
        var = node.var
        parts = [n for n in (node.pred, node.transform) if n is not None]

        def only_var(n: Node) -> bool:
            if isinstance(n, Comp):
                return False
            if isinstance(n, Ident):
                return n.name == var
            return all(only_var(child) for child in children(n))

        return all(only_var(part) for part in parts)
