"""Building blocks of compiled conditions: attribute lookups fused with the test that uses them,
CEL's `&&` and `||` (an error on one side is absorbed when the other side decides), and the loops
of the comprehension macros (which, like the binding, stop at the first error or the first
deciding value)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from foureyes.policy.cel import runtime as rt

Fn = Callable[[Any], Any]


def raise_not_bool(value: object) -> bool:
    raise rt.NoSuchOverload(f"expected a bool, got {rt.type_name(value)}")


def getter(path: Sequence[str]) -> Fn:
    """A function reading `path` from the activation: a["staff"]["groups"]."""
    if len(path) == 0:
        return lambda a: a
    if len(path) == 1:
        return operator.itemgetter(path[0])
    if len(path) == 2:
        k0, k1 = path
        return lambda a: a[k0][k1]
    if len(path) == 3:
        k0, k1, k2 = path
        return lambda a: a[k0][k1][k2]
    keys = tuple(path)

    def get(a: Any) -> Any:
        for key in keys:
            a = a[key]
        return a

    return get


def fuse(path: Sequence[str], test: Callable[[Any], Any]) -> Fn:
    """`test(value at path)` as one closure (test is typically a C function)."""
    if len(path) == 0:
        return test
    if len(path) == 1:
        (k0,) = path
        return lambda a: test(a[k0])
    if len(path) == 2:
        k0, k1 = path
        return lambda a: test(a[k0][k1])
    get = getter(path)
    return lambda a: test(get(a))


def fuse2(path: Sequence[str], op: Callable[[Any, Any], Any], const: Any) -> Fn:
    """`op(value at path, const)` as one closure, with the commonest operators inlined."""
    if len(path) == 0:
        return lambda a: op(a, const)
    if len(path) == 1:
        (k0,) = path
        if op is operator.eq:
            return lambda a: a[k0] == const
        if op is operator.ne:
            return lambda a: a[k0] != const
        if op is operator.is_:
            return lambda a: a[k0] is const
        if op is operator.is_not:
            return lambda a: a[k0] is not const
        if op is operator.contains:
            return lambda a: const in a[k0]
        if op is not_contains:
            return lambda a: const not in a[k0]
        return lambda a: op(a[k0], const)
    if len(path) == 2:
        k0, k1 = path
        if op is operator.eq:
            return lambda a: a[k0][k1] == const
        if op is operator.ne:
            return lambda a: a[k0][k1] != const
        if op is operator.is_:
            return lambda a: a[k0][k1] is const
        if op is operator.is_not:
            return lambda a: a[k0][k1] is not const
        if op is operator.contains:
            return lambda a: const in a[k0][k1]
        if op is not_contains:
            return lambda a: const not in a[k0][k1]
        if op is operator.lt:
            return lambda a: a[k0][k1] < const
        if op is operator.le:
            return lambda a: a[k0][k1] <= const
        if op is operator.gt:
            return lambda a: a[k0][k1] > const
        if op is operator.ge:
            return lambda a: a[k0][k1] >= const
        return lambda a: op(a[k0][k1], const)
    get = getter(path)
    return lambda a: op(get(a), const)


def fuse_in(
    path: Sequence[str], container: frozenset[Any] | tuple[Any, ...], negate: bool = False
) -> Fn:
    """`(value at path) in container` (or `not in`) as one closure."""
    if len(path) == 0:
        if negate:
            return lambda a: a not in container
        return container.__contains__
    if len(path) == 1:
        (k0,) = path
        if negate:
            return lambda a: a[k0] not in container
        return lambda a: a[k0] in container
    if len(path) == 2:
        k0, k1 = path
        if negate:
            return lambda a: a[k0][k1] not in container
        return lambda a: a[k0][k1] in container
    get = getter(path)
    if negate:
        return lambda a: get(a) not in container
    return lambda a: get(a) in container


# The same loops for a body that reads other variables as well: it sees `scope`, a copy of the
# activation in which the macro's variable is bound to each element in turn.


def scoped_exists(items: Any, pred: Fn, scope: dict[str, Any], var: str) -> bool:
    for item in items:
        scope[var] = item
        result = pred(scope)
        if result is True:
            return True
        if result is not False:
            return raise_not_bool(result)
    return False


def scoped_all(items: Any, pred: Fn, scope: dict[str, Any], var: str) -> bool:
    for item in items:
        scope[var] = item
        result = pred(scope)
        if result is False:
            return False
        if result is not True:
            return raise_not_bool(result)
    return True


def scoped_exists_one(items: Any, pred: Fn, scope: dict[str, Any], var: str) -> bool:
    count = 0
    for item in items:
        scope[var] = item
        result = pred(scope)
        if result is True:
            count += 1
        elif result is not False:
            return raise_not_bool(result)
    return count == 1


def scoped_filter(items: Any, pred: Fn, scope: dict[str, Any], var: str) -> list[Any]:
    kept = []
    for item in items:
        scope[var] = item
        result = pred(scope)
        if result is True:
            kept.append(item)
        elif result is not False:
            raise_not_bool(result)
    return kept


def scoped_map(
    items: Any, pred: Fn | None, transform: Fn, scope: dict[str, Any], var: str
) -> list[Any]:
    mapped = []
    for item in items:
        scope[var] = item
        if pred is not None:
            result = pred(scope)
            if result is False:
                continue
            if result is not True:
                raise_not_bool(result)
        mapped.append(transform(scope))
    return mapped


def iteration_items(value: Any) -> Any:
    if type(value) is list or type(value) is dict:
        return value
    return rt.iteration_range(value)


def eq_number(value: Any, const: Any) -> bool:
    return value == const and value.__class__ is not bool


def ne_number(value: Any, const: Any) -> bool:
    return not (value == const and value.__class__ is not bool)


def in_reversed(container: Any, element: Any) -> bool:
    return rt.cel_in(element, container)


def not_in_reversed(container: Any, element: Any) -> bool:
    return not rt.cel_in(element, container)


def not_in(element: Any, container: Any) -> bool:
    return not rt.cel_in(element, container)


def not_contains(container: Any, element: Any) -> bool:
    return element not in container


def and2(left: Fn, right: Fn) -> Fn:
    def conjunction(a: Any) -> Any:
        try:
            value = left(a)
        except Exception:
            if right(a) is False:
                return False
            raise
        if value is True:
            return right(a)
        if value is False:
            return False
        if right(a) is False:
            return False
        return raise_not_bool(value)

    return conjunction


def or2(left: Fn, right: Fn) -> Fn:
    def disjunction(a: Any) -> Any:
        try:
            value = left(a)
        except Exception:
            if right(a) is True:
                return True
            raise
        if value is False:
            return right(a)
        if value is True:
            return True
        if right(a) is True:
            return True
        return raise_not_bool(value)

    return disjunction


def logical_n(fns: tuple[Fn, ...], decisive: bool) -> Fn:
    """`&&` (decisive False) or `||` (decisive True) over several operands: the decisive value
    wins over errors; otherwise the first error, or the other value."""
    undecided = not decisive

    def logical(a: Any) -> Any:
        error: BaseException | None = None
        for fn in fns:
            try:
                value = fn(a)
            except Exception as exc:
                if error is None:
                    error = exc
                continue
            if value is decisive:
                return decisive
            if value is not undecided and error is None:
                error = rt.NoSuchOverload(f"expected a bool, got {rt.type_name(value)}")
        if error is not None:
            raise error
        return undecided

    return logical


# Each loop takes the elements and the predicate and transform as functions of one element. Like
# the binding, it stops at the first error or at the first deciding predicate value.
Loop = Callable[[Any, Fn | None, Fn | None], Any]


def loop_exists(items: Any, pred: Fn | None, transform: Fn | None) -> bool:
    assert pred is not None
    for item in items:
        result = pred(item)
        if result is True:
            return True
        if result is not False:
            return raise_not_bool(result)
    return False


def loop_all(items: Any, pred: Fn | None, transform: Fn | None) -> bool:
    assert pred is not None
    for item in items:
        result = pred(item)
        if result is False:
            return False
        if result is not True:
            return raise_not_bool(result)
    return True


def loop_exists_one(items: Any, pred: Fn | None, transform: Fn | None) -> bool:
    assert pred is not None
    count = 0
    for item in items:
        result = pred(item)
        if result is True:
            count += 1
        elif result is not False:
            return raise_not_bool(result)
    return count == 1


def loop_filter(items: Any, pred: Fn | None, transform: Fn | None) -> list[Any]:
    assert pred is not None
    kept = []
    for item in items:
        result = pred(item)
        if result is True:
            kept.append(item)
        elif result is not False:
            raise_not_bool(result)
    return kept


def loop_map(items: Any, pred: Fn | None, transform: Fn | None) -> list[Any]:
    assert transform is not None
    mapped = []
    for item in items:
        if pred is not None:
            result = pred(item)
            if result is False:
                continue
            if result is not True:
                raise_not_bool(result)
        mapped.append(transform(item))
    return mapped


COMPREHENSIONS: dict[str, Loop] = {
    "exists": loop_exists,
    "all": loop_all,
    "exists_one": loop_exists_one,
    "filter": loop_filter,
    "map": loop_map,
}
SCOPED_PREDICATES: dict[str, Callable[[Any, Fn, dict[str, Any], str], bool]] = {
    "exists": scoped_exists,
    "all": scoped_all,
    "exists_one": scoped_exists_one,
}
