"""CEL operations on plain Python values, as the reference implementation (the `cel` binding)
evaluates them.

Values are what conditions see: str, int, float, bool, None, list, dict, datetime, timedelta.
Each operation has a fast path for those exact types. A value of any other type (a subclass such
as an enum, bytes, a tuple, an integer outside int64, which the binding reads as uint) is handed
to the binding itself, through a small program compiled once per operation, so that even unusual
values get the reference semantics.

Facts about the binding (common-expression-language 0.10.0) that these functions reproduce, each
checked against it:

- `==` never fails: values of different types are unequal, except int and double, which compare
  after converting the int to double (so 2**53 + 1 == 2.0**53). bool is not a number.
- Ordering of int and double likewise converts the int; ordering with a NaN fails; ordering of
  unrelated types fails.
- int arithmetic is int64 and fails on overflow; `/` truncates toward zero, `%` takes the sign of
  the dividend; both fail on a zero divisor and on INT64_MIN by -1.
- Negating INT64_MIN gives INT64_MIN (wraps); negating a bool gives its logical negation.
- double arithmetic is IEEE 754: x / 0.0 is ±inf or NaN; `%` is not defined on doubles.
- `size` of a string counts its UTF-8 bytes (the CEL specification says code points).
- A map built from a Python dict has int keys where the dict has bool keys; a bool key is never
  found in it, and float, null, list and map keys are an error.
- A naive datetime is read as UTC.
- list + map appends the map's keys to the list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import cel

from foureyes.policy.regex import Regex, RegexError, compile_re2

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class CelEvalError(Exception):
    """An error raised by a natively compiled condition; the message is one line."""


class NoSuchOverload(CelEvalError):
    """The operation is not defined for the types of its operands."""


_PROGRAMS: dict[str, Any] = {}


def delegate(source: str, **values: object) -> Any:
    """Evaluate `source` (over `x`, `y`) with the binding: the reference for unusual values."""
    program = _PROGRAMS.get(source)
    if program is None:
        program = _PROGRAMS[source] = cel.compile(source)
    return program.execute(values)


# Exact types with a native fast path. Anything else is unusual and goes to the binding.
_KNOWN: frozenset[type] = frozenset(
    {bool, int, float, str, type(None), list, dict, datetime, timedelta}
)
_NUMBERS: frozenset[type] = frozenset({int, float})
_ORDERED: frozenset[type] = frozenset({int, str, bool, timedelta})
_SIMPLE_EQ: frozenset[type] = frozenset({str, int, float, bool, type(None), timedelta})


def type_name(value: Any) -> str:
    """The CEL name of a value's type, for messages."""
    names = {
        bool: "bool",
        int: "int",
        float: "double",
        str: "string",
        type(None): "null",
        list: "list",
        dict: "map",
        datetime: "timestamp",
        timedelta: "duration",
        bytes: "bytes",
    }
    return names.get(type(value), type(value).__name__)


def _unusual(value: Any) -> bool:
    return type(value) not in _KNOWN or (type(value) is int and not INT64_MIN <= value <= INT64_MAX)


def _no_overload(op: str, *operands: Any) -> NoSuchOverload:
    if len(operands) == 1:
        return NoSuchOverload(f"no such overload: {op}{type_name(operands[0])}")
    return NoSuchOverload(
        f"no such overload: {type_name(operands[0])} {op} {type_name(operands[1])}"
    )


def _binary_fallback(op: str, x: Any, y: Any) -> Any:
    if _unusual(x) or _unusual(y):
        return delegate(f"x {op} y", x=x, y=y)
    raise _no_overload(op, x, y)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# ---------------------------------------------------------------- equality


def cel_eq(x: Any, y: Any) -> bool:
    tx = type(x)
    ty = type(y)
    if tx is ty:
        if tx in _SIMPLE_EQ:
            return bool(x == y)
        if tx is list:
            return _list_eq(x, y)
        if tx is dict:
            return _map_eq(x, y)
        if tx is datetime:
            return _utc(x) == _utc(y)
    elif tx in _NUMBERS and ty in _NUMBERS:
        return float(x) == float(y)
    if _unusual(x) or _unusual(y):
        return bool(delegate("x == y", x=x, y=y))
    return False


def cel_ne(x: Any, y: Any) -> bool:
    return not cel_eq(x, y)


def _list_eq(x: list[Any], y: list[Any]) -> bool:
    if len(x) != len(y):
        return False
    return all(cel_eq(a, b) for a, b in zip(x, y, strict=True))


def _map_eq(x: dict[Any, Any], y: dict[Any, Any]) -> bool:
    if len(x) != len(y):
        return False
    return all(key in y and cel_eq(value, y[key]) for key, value in x.items())


def cel_in(x: Any, container: Any) -> bool:
    """`x in container`: list membership by CEL equality, or map key presence."""
    tc = type(container)
    if tc is list:
        if type(x) is str:
            return x in container
        return any(cel_eq(x, item) for item in container)
    if tc is dict:
        return _has_key(container, x)
    return bool(_binary_fallback("in", x, container))


def _has_key(mapping: dict[Any, Any], key: Any) -> bool:
    tk = type(key)
    if tk is str or tk is int:
        return key in mapping
    if tk is bool:
        return False  # the binding reads a dict's bool keys as ints; a bool key never matches
    if _unusual(key):
        return bool(delegate("x in y", x=key, y=mapping))
    raise CelEvalError(f"a value of type {type_name(key)} cannot be a map key")


# ---------------------------------------------------------------- ordering


def _compare(x: Any, y: Any) -> int | None:
    """-1, 0 or 1; None when the binding must decide; raises when not comparable."""
    tx = type(x)
    ty = type(y)
    if tx is ty and tx in _ORDERED:
        return int(x > y) - int(x < y)
    if tx in _NUMBERS and ty in _NUMBERS:
        fx = float(x)
        fy = float(y)
        if math.isnan(fx) or math.isnan(fy):
            raise NoSuchOverload("no such overload: ordering with NaN")
        return (fx > fy) - (fx < fy)
    if tx is datetime and ty is datetime:
        ux = _utc(x)
        uy = _utc(y)
        return (ux > uy) - (ux < uy)
    if _unusual(x) or _unusual(y):
        return None
    raise NoSuchOverload(f"no such overload: cannot order {type_name(x)} and {type_name(y)}")


def cel_lt(x: Any, y: Any) -> bool:
    if type(x) is type(y) and type(x) in _ORDERED:
        return bool(x < y)
    c = _compare(x, y)
    return bool(delegate("x < y", x=x, y=y)) if c is None else c < 0


def cel_le(x: Any, y: Any) -> bool:
    if type(x) is type(y) and type(x) in _ORDERED:
        return bool(x <= y)
    c = _compare(x, y)
    return bool(delegate("x <= y", x=x, y=y)) if c is None else c <= 0


def cel_gt(x: Any, y: Any) -> bool:
    if type(x) is type(y) and type(x) in _ORDERED:
        return bool(x > y)
    c = _compare(x, y)
    return bool(delegate("x > y", x=x, y=y)) if c is None else c > 0


def cel_ge(x: Any, y: Any) -> bool:
    if type(x) is type(y) and type(x) in _ORDERED:
        return bool(x >= y)
    c = _compare(x, y)
    return bool(delegate("x >= y", x=x, y=y)) if c is None else c >= 0


# ---------------------------------------------------------------- arithmetic


def _int_result(value: int, op: str, x: int, y: int) -> int:
    if INT64_MIN <= value <= INT64_MAX:
        return value
    raise CelEvalError(f"integer overflow in {x} {op} {y}")


def _int64s(x: int, y: int) -> bool:
    return INT64_MIN <= x <= INT64_MAX and INT64_MIN <= y <= INT64_MAX


def cel_add(x: Any, y: Any) -> Any:
    tx = type(x)
    if tx is type(y):
        if tx is int:
            if _int64s(x, y):
                return _int_result(x + y, "+", x, y)
        elif tx in (float, str, list, timedelta):
            return x + y
    elif tx is datetime and type(y) is timedelta:
        return _utc(x) + y
    elif tx is list and type(y) is dict:
        return x + list(y)  # the binding appends the map's keys (in its own order)
    return _binary_fallback("+", x, y)


def cel_sub(x: Any, y: Any) -> Any:
    tx = type(x)
    ty = type(y)
    if tx is ty:
        if tx is int:
            if _int64s(x, y):
                return _int_result(x - y, "-", x, y)
        elif tx is float or tx is timedelta:
            return x - y
        elif tx is datetime:
            return _utc(x) - _utc(y)
    elif tx is datetime and ty is timedelta:
        return _utc(x) - y
    return _binary_fallback("-", x, y)


def cel_mul(x: Any, y: Any) -> Any:
    tx = type(x)
    if tx is type(y):
        if tx is int:
            if _int64s(x, y):
                return _int_result(x * y, "*", x, y)
        elif tx is float:
            return x * y
    return _binary_fallback("*", x, y)


def cel_div(x: Any, y: Any) -> Any:
    tx = type(x)
    if tx is type(y):
        if tx is int:
            if _int64s(x, y):
                if y == 0:
                    raise CelEvalError("division by zero")
                if x == INT64_MIN and y == -1:
                    raise CelEvalError(f"integer overflow in {x} / {y}")
                quotient = abs(x) // abs(y)
                return -quotient if (x < 0) != (y < 0) else quotient
        elif tx is float:
            return float_div(x, y)
    return _binary_fallback("/", x, y)


def float_div(x: float, y: float) -> float:
    """IEEE 754 division: by zero gives ±inf, or NaN for 0/0 and NaN/0."""
    if y != 0.0:
        return x / y
    if math.isnan(x) or x == 0.0:
        return math.nan
    return math.copysign(math.inf, x) * math.copysign(1.0, y)


def cel_mod(x: Any, y: Any) -> Any:
    if type(x) is int and type(y) is int and _int64s(x, y):
        if y == 0:
            raise CelEvalError("modulo by zero")
        if x == INT64_MIN and y == -1:
            raise CelEvalError(f"integer overflow in {x} % {y}")
        remainder = abs(x) % abs(y)
        return -remainder if x < 0 else remainder
    return _binary_fallback("%", x, y)


def cel_neg(x: Any) -> Any:
    tx = type(x)
    if tx is int:
        if x == INT64_MIN:
            return x  # the binding wraps around
        if INT64_MIN < x <= INT64_MAX:
            return -x
    elif tx is float:
        return -x
    elif tx is bool:
        return not x  # the binding negates a bool logically
    if _unusual(x):
        return delegate("-x", x=x)
    raise _no_overload("-", x)


def cel_not(x: Any) -> bool:
    if x is True:
        return False
    if x is False:
        return True
    raise _no_overload("!", x)


# ---------------------------------------------------------------- access


def cel_index(container: Any, key: Any) -> Any:
    """`container[key]` on a list or map."""
    tc = type(container)
    tk = type(key)
    if tc is dict:
        if tk is str or tk is int:
            return container[key]
        if tk is bool:
            raise KeyError(key)
        if _unusual(key):
            return delegate("x[y]", x=container, y=key)
        raise CelEvalError(f"a value of type {type_name(key)} cannot be a map key")
    if tc is list:
        if tk is int:
            if 0 <= key < len(container):
                return container[key]
            raise CelEvalError(f"index {key} out of range for a list of size {len(container)}")
        if _unusual(key):
            return delegate("x[y]", x=container, y=key)
        raise CelEvalError(f"a list index must be an int, not {type_name(key)}")
    if _unusual(container):
        return delegate("x[y]", x=container, y=key)
    raise CelEvalError(f"a value of type {type_name(container)} cannot be indexed")


def cel_has(container: Any, field: str) -> bool:
    if type(container) is dict:
        return field in container
    if _unusual(container):
        return bool(delegate(f"has(x.{field})", x=container))
    raise _no_overload("has ", container)


def iteration_range(value: Any) -> Any:
    """What a comprehension iterates over: a list's elements or a map's keys."""
    if type(value) is list or type(value) is dict or isinstance(value, list | tuple | dict):
        return value
    raise CelEvalError(f"cannot iterate over a value of type {type_name(value)}")


def cel_size(value: Any) -> int:
    tv = type(value)
    if tv is str:
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if tv is list or tv is dict:
        return len(value)
    if _unusual(value):
        return int(delegate("size(x)", x=value))
    raise _no_overload("size ", value)


# ---------------------------------------------------------------- strings


def string_method(name: str) -> Callable[[Any, Any], bool]:
    """`x.startsWith(y)`, `x.endsWith(y)` or `x.contains(y)` on any values."""
    method = {"startsWith": str.startswith, "endsWith": str.endswith, "contains": str.__contains__}[
        name
    ]

    def call(x: Any, y: Any) -> bool:
        if type(x) is str and type(y) is str:
            return method(x, y)
        if _unusual(x) or _unusual(y):
            return bool(delegate(f"x.{name}(y)", x=x, y=y))
        raise NoSuchOverload(f"no such overload: {type_name(x)}.{name}({type_name(y)})")

    return call


def regex_search(pattern: Regex, source: str) -> Callable[[Any], bool]:
    """`x.matches(source)` for a literal pattern, `pattern` being `portable_regex(source)`."""

    def call(x: Any) -> bool:
        if type(x) is str:
            return pattern.search(x) is not None
        if _unusual(x):
            return bool(delegate("x.matches(y)", x=x, y=source))
        raise NoSuchOverload(f"no such overload: {type_name(x)}.matches(string)")

    return call


def regex_matches(x: Any, y: Any) -> bool:
    """`x.matches(y)` for a pattern computed at run time (from an attribute or a param).

    A pattern RE2 refuses is an error (so the condition fails closed), even where the binding's
    engine would take it: policy regular expressions are RE2's dialect. A portable one runs on
    RE2; any other pattern, and any operand that is not a plain string, goes to the binding,
    whose engine (Rust's `regex`) is linear-time too and gives the reference semantics and
    errors."""
    if type(x) is str and type(y) is str:
        compiled = _computed_regex(y)
        if compiled is not None:
            return compiled.search(x) is not None
    return bool(delegate("x.matches(y)", x=x, y=y))


@lru_cache(maxsize=256)
def _computed_regex(pattern: str) -> Regex | None:
    try:
        compile_re2(pattern)
    except RegexError as exc:
        raise CelEvalError(f"invalid regular expression {pattern!r}: {exc}") from None
    return portable_regex(pattern)


# A regular expression the native compiler runs (on RE2, linear-time) must mean the same to RE2
# and to the Rust `regex` crate the binding uses. This is a conservative common subset: literal
# characters, `.`, `^` at the very start, `$` at the very end (written `\z` for RE2), groups,
# alternation, greedy or lazy quantifiers, and bracket classes of plain characters and ranges.
# Escapes only quote metacharacters: `\d`, `\w`, `\s` and `\b` differ in Unicode detail
# between the engines, `[[:alpha:]]`, `&&` and `--` in classes mean something else to Rust, and
# `(?...)` flags and named groups are left out. (The tokenizer below is Python's `re` on our own
# fixed expression, whose alternatives cannot overlap: it does not backtrack.)
_CLASS_CHAR = r"a-zA-Z0-9 _@.,:/+*?(){}|$#%!=<>'\";"
_REGEX_TOKEN = re.compile(
    rf"""
      (?P<cls>\[\^?(?:\\[\\\]\-^.\[]|[a-zA-Z0-9]-[a-zA-Z0-9]|[{_CLASS_CHAR}])+\])
    | (?P<escape>\\[\\.^$*+?()\[\]{{}}|])
    | (?P<repeat>(?:[*+?]|\{{[0-9]{{1,3}}(?:,[0-9]{{0,3}})?\}})\??)
    | (?P<open>\((?:\?:)?)
    | (?P<close>\))
    | (?P<bar>\|)
    | (?P<start>\^)
    | (?P<end>\$)
    | (?P<literal>[^\\\[\]{{}}()*+?|^$])
    """,
    re.VERBOSE,
)
_REPEATABLE = frozenset({"cls", "escape", "close", "literal"})


def portable_regex(pattern: str) -> Regex | None:
    """The pattern compiled by RE2, or None when it is outside the common subset (or RE2
    refuses it)."""
    translated = _translate_regex(pattern)
    if translated is None:
        return None
    try:
        return compile_re2(translated)
    except RegexError:
        return None


def _translate_regex(pattern: str) -> str | None:
    out: list[str] = []
    depth = 0
    repeatable = False  # whether the previous item may take a quantifier
    pos = 0
    while pos < len(pattern):
        match = _REGEX_TOKEN.match(pattern, pos)
        if match is None:
            return None
        kind = match.lastgroup
        text = match.group()
        if (
            (kind == "start" and pos != 0)
            or (kind == "end" and match.end() != len(pattern))
            or (kind == "repeat" and not repeatable)
            or (kind == "literal" and not text.isprintable())
        ):
            return None
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth < 0:
                return None
        elif kind == "repeat" and "," in text:
            low, _, high = text.strip("{}?").partition(",")
            if high and int(high) < int(low):
                return None
        if kind == "end":
            text = r"\z"
        elif kind == "literal" and text != ".":
            text = re.escape(text)
        out.append(text)
        repeatable = kind in _REPEATABLE
        pos = match.end()
    return None if depth else "".join(out)


# ---------------------------------------------------------------- conversions

_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_DOUBLE_TEXT = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)", re.IGNORECASE
)
_TWO_63 = 9223372036854775808.0


def to_int(x: Any) -> int:
    tx = type(x)
    if tx is int and INT64_MIN <= x <= INT64_MAX:
        return int(x)
    if tx is float:
        if -_TWO_63 < x < _TWO_63:
            return int(x)
        raise CelEvalError(f"int({x!r}) overflows")
    if tx is str:
        if _INT_TEXT.fullmatch(x) is None:
            raise CelEvalError(f"int() cannot parse {x!r}")
        value = int(x)
        if INT64_MIN <= value <= INT64_MAX:
            return value
        raise CelEvalError(f"int() of {x!r} overflows")
    if _unusual(x):
        return int(delegate("int(x)", x=x))
    raise _no_overload("int ", x)


def to_double(x: Any) -> float:
    tx = type(x)
    if tx is float:
        return float(x)
    if tx is int:
        return float(x)
    if tx is str:
        if _DOUBLE_TEXT.fullmatch(x) is None:
            raise CelEvalError(f"double() cannot parse {x!r}")
        return float(x)
    if _unusual(x):
        return float(delegate("double(x)", x=x))
    raise _no_overload("double ", x)


def to_string(x: Any) -> str:
    tx = type(x)
    if tx is str:
        return str(x)
    if tx is int:
        return str(x)
    if tx is float:
        return format_double(x)
    if tx is datetime or tx is timedelta or _unusual(x):
        return str(delegate("string(x)", x=x))
    raise _no_overload("string ", x)


def format_double(x: float) -> str:
    """A double as the binding prints it (Rust's shortest round-trip form, never exponential)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0.0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
