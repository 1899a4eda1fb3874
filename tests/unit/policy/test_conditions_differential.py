"""Differential tests: the native closures against the reference CEL binding.

Hypothesis generates expressions from the CEL grammar (well typed, ill typed, over variables of
every declared type and over `dyn` variables holding anything) and a random activation, and
checks that the closures and `cel` agree: the same value, or both fail.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foureyes.policy.cel.checker import CelTypeError, check
from foureyes.policy.cel.compiler import compile_native
from foureyes.policy.cel.lexer import CelSyntaxError
from foureyes.policy.cel.parser import parse
from foureyes.policy.cel.runtime import CelEvalError, portable_regex
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
    Nullable,
    ObjectType,
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

OBJECT = ObjectType({"a": INT, "s": STRING, "l": ListType(STRING), "x": DYN, "f": BOOL})
VARIABLES: dict[str, CelType] = {
    "i": INT,
    "j": INT,
    "d": DOUBLE,
    "s": STRING,
    "t": STRING,
    "b": BOOL,
    "n": Nullable(INT),
    "ns": Nullable(STRING),
    "ts": TIMESTAMP,
    "du": DURATION,
    "li": ListType(INT),
    "ls": ListType(STRING),
    "m": MapType(STRING, DYN),
    "o": OBJECT,
    "x": DYN,
    "y": DYN,
}

# Exceptions the native closures may raise for a CEL error. Anything else (NameError,
# AssertionError, UnboundLocalError, ...) is a bug in the compiler even when the binding fails too.
CEL_ERRORS = (
    CelEvalError,
    KeyError,
    TypeError,
    AttributeError,
    OverflowError,
    ValueError,
    RuntimeError,
    ZeroDivisionError,
    IndexError,
)

# ---------------------------------------------------------------- values

ints = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(-20, 20),
    st.sampled_from(
        [INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, 2**53, 2**53 + 1, -(2**53) - 1, 2**31]
    ),
)
doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, -1.5, 1.0, 2.0**53, 1e300, float("nan"), float("inf")]),
    st.integers(-20, 20).map(float),
)
texts = st.text(alphabet="ab1 é😀.\n", max_size=4)
timestamps = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    ),
    st.sampled_from([datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 12, tzinfo=UTC)]),
    # A naive datetime, which the binding reads as UTC.
    st.sampled_from([datetime(2026, 1, 1), datetime(2025, 6, 1, 8, 30)]),
)
durations = st.one_of(
    st.timedeltas(min_value=timedelta(days=-10000), max_value=timedelta(days=10000)),
    st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(hours=72), -timedelta(seconds=1)]),
)
scalars = st.one_of(st.none(), st.booleans(), ints, doubles, texts, timestamps, durations)
dyn_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "k", "1"]), inner, max_size=3),
        st.dictionaries(st.integers(-2, 2), inner, max_size=2),
    ),
    max_leaves=6,
)


@st.composite
def activations(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "i": draw(ints),
        "j": draw(ints),
        "d": draw(doubles),
        "s": draw(texts),
        "t": draw(texts),
        "b": draw(st.booleans()),
        "n": draw(st.one_of(st.none(), ints)),
        "ns": draw(st.one_of(st.none(), texts)),
        "ts": draw(timestamps),
        "du": draw(durations),
        "li": draw(st.lists(ints, max_size=3)),
        "ls": draw(st.lists(texts, max_size=3)),
        "m": draw(st.dictionaries(st.sampled_from(["a", "b", "k"]), dyn_values, max_size=3)),
        "o": {
            "a": draw(ints),
            "s": draw(texts),
            "l": draw(st.lists(texts, max_size=3)),
            "x": draw(dyn_values),
            "f": draw(st.booleans()),
        },
        "x": draw(dyn_values),
        "y": draw(dyn_values),
    }


# ---------------------------------------------------------------- expressions


def _cel_string(value: str) -> str:
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _cel_double(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return (
            "(0.0 / 0.0)" if math.isnan(value) else ("(1.0 / 0.0)" if value > 0 else "(-1.0 / 0.0)")
        )
    text = repr(value)
    if "e" not in text and "." not in text:
        text += ".0"
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


literals = st.one_of(
    ints.map(str),
    doubles.map(_cel_double),
    texts.map(_cel_string),
    st.sampled_from(
        [
            "true",
            "false",
            "null",
            "[]",
            "[1, 2]",
            '["a", "b"]',
            '[1, 1.0, "a", null]',
            '{"a": 1}',
            "{1: 2, 2: 3}",
            'timestamp("2026-01-01T00:00:00Z")',
            'timestamp("2025-06-01T08:30:00+02:00")',
            'duration("72h")',
            'duration("-1.5s")',
            'duration("1h30m")',
            "0x10",
            "-0",
            "r'a\\\\b'",
            "'''x'''",
            '"\\u00e9\\x41\\101"',
        ]
    ),
)
variables = st.sampled_from(sorted(VARIABLES))
selections = st.sampled_from(
    ["o.a", "o.s", "o.l", "o.x", "o.f", "m.a", "m.k", 'm["b"]', "x.a", "x.k", "y.a", "o.x.a"]
)
PATTERNS = ["a", "^a", "b$", "^a.b$", "[a-z]+", "(a|é)+", "a{2}", "\\.", "[^a]", "\\d", "😀"]
BINARY = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "in", "&&", "||"]
leaves = st.one_of(literals, variables, selections)


def _wrap(draw: st.DrawFn, text: str) -> str:
    """Parenthesize half of the time, so that precedence and associativity are tested too."""
    return f"({text})" if draw(st.booleans()) else text


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3, var: str | None = None) -> str:
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        if var is not None and draw(st.booleans()):
            return var
        return draw(leaves)
    sub = expressions(depth=depth - 1, var=var)
    choice = draw(st.integers(0, 9))
    if choice <= 3:
        op = draw(st.sampled_from(BINARY))
        return _wrap(draw, f"{draw(sub)} {op} {draw(sub)}")
    if choice == 4:
        return _wrap(draw, f"{draw(st.sampled_from(['!', '-']))}{draw(sub)}")
    if choice == 5:
        return _wrap(draw, f"{draw(sub)} ? {draw(sub)} : {draw(sub)}")
    if choice == 6:
        call = draw(
            st.sampled_from(
                ["size({})", "{}.size()", "int({})", "double({})", "string({})", "dyn({})"]
            )
        )
        return call.format(f"({draw(sub)})")
    if choice == 7:
        method = draw(st.sampled_from(["startsWith", "endsWith", "contains"]))
        return f"({draw(sub)}).{method}({draw(sub)})"
    if choice == 8:
        pattern = draw(st.sampled_from(PATTERNS))
        if draw(st.booleans()):
            return f"({draw(sub)}).matches({_cel_string(pattern)})"
        container = draw(st.sampled_from(["li", "ls", "m", "x", "y", "o", "[1, 2, 3]"]))
        return f"{container}[{draw(sub)}]" if draw(st.booleans()) else f"has({draw(selections)})"
    macro = draw(st.sampled_from(["exists", "all", "exists_one", "filter", "map"]))
    name = draw(st.sampled_from(["v", "w", "i"]))  # "i" shadows a variable
    source = draw(st.sampled_from(["li", "ls", "x", "y", "o.l", "[1, 2, 3]", '["a", "b"]', "m"]))
    body = draw(expressions(depth=depth - 1, var=name))
    if macro == "map" and draw(st.booleans()):
        body = f"{draw(expressions(depth=depth - 1, var=name))}, {body}"
    return f"{source}.{macro}({name}, {body})"


# Well-typed expressions, so that most examples get past the type checker and are compiled.
KIND_LEAVES: dict[str, list[str]] = {
    "int": ["i", "j", "o.a", "n", "0", "1", "-1", "7", "-7", "2", str(INT64_MAX), str(INT64_MIN)],
    "double": ["d", "0.0", "-0.0", "1.5", "-2.5", "1e300", "0.1"],
    "string": ["s", "t", "o.s", "ns", '""', '"a"', '"ab"', '"é"', '"1"', '"2.5"'],
    "bool": ["b", "o.f", "true", "false"],
    "list_int": ["li", "[]", "[1, 2, 3]", "[i, j]"],
    "list_string": ["ls", "o.l", '["a", "b"]', "[s, t]"],
    "timestamp": ["ts", 'timestamp("2026-01-01T00:00:00Z")', 'timestamp("1970-01-01T00:00:00Z")'],
    "duration": ["du", 'duration("1h")', 'duration("-90s")', 'duration("0s")'],
    "dyn": ["x", "y", "m.a", "m.k", "o.x", "x.a", 'x["k"]', "y[0]"],
}
ELEMENT = {"list_int": "int", "list_string": "string"}


@st.composite
def typed(draw: st.DrawFn, kind: str, depth: int = 3, env: tuple[tuple[str, str], ...] = ()) -> str:
    """An expression of `kind` (mostly well typed; `dyn` operands can still fail at run time)."""
    names = [name for name, k in env if k == kind]
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if len(names) > 0 and draw(st.booleans()):
            return draw(st.sampled_from(names))
        return draw(st.sampled_from(KIND_LEAVES[kind]))

    def sub(k: str) -> str:
        return draw(typed(k, depth - 1, env))

    def wrap(text: str) -> str:
        return _wrap(draw, text)

    if draw(st.integers(0, 9)) == 0:
        return wrap(f"{sub('bool')} ? {sub(kind)} : {sub(kind)}")
    if kind == "int":
        form = draw(st.integers(0, 5))
        if form == 0:
            return wrap(f"-{sub('int')}")
        if form == 1:
            return f"size({sub(draw(st.sampled_from(['string', 'list_int', 'list_string'])))})"
        if form == 2:
            return f"int({sub(draw(st.sampled_from(['int', 'double', 'string', 'dyn'])))})"
        if form == 3:
            return f"{sub('list_int')}[{sub('int')}]"
        op = draw(st.sampled_from(["+", "-", "*", "/", "%"]))
        return wrap(f"{sub('int')} {op} {sub(draw(st.sampled_from(['int', 'int', 'dyn'])))}")
    if kind == "double":
        form = draw(st.integers(0, 2))
        if form == 0:
            return f"double({sub(draw(st.sampled_from(['int', 'double', 'string'])))})"
        if form == 1:
            return wrap(f"-{sub('double')}")
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        return wrap(f"{sub('double')} {op} {sub('double')}")
    if kind == "string":
        form = draw(st.integers(0, 2))
        if form == 0:
            return f"string({sub(draw(st.sampled_from(['int', 'double', 'string'])))})"
        if form == 1:
            return f"{sub('list_string')}[{sub('int')}]"
        return wrap(f"{sub('string')} + {sub('string')}")
    if kind == "bool":
        return draw(boolean(depth, env))
    if kind in ELEMENT:
        element = ELEMENT[kind]
        form = draw(st.integers(0, 2))
        if form == 0:
            return wrap(f"{sub(kind)} + {sub(kind)}")
        var = draw(st.sampled_from(["v", "w"]))
        inner = (*env, (var, element))
        body = draw(typed("bool", depth - 1, inner))
        if form == 1:
            return f"{sub(kind)}.filter({var}, {body})"
        return f"{sub(kind)}.map({var}, {draw(typed(element, depth - 1, inner))})"
    if kind == "timestamp":
        op = draw(st.sampled_from(["+", "-"]))
        return wrap(f"{sub('timestamp')} {op} {sub('duration')}")
    if kind == "duration":
        if draw(st.booleans()):
            return wrap(f"{sub('timestamp')} - {sub('timestamp')}")
        op = draw(st.sampled_from(["+", "-"]))
        return wrap(f"{sub('duration')} {op} {sub('duration')}")
    return f"dyn({sub(draw(st.sampled_from(sorted(KIND_LEAVES))))})"


@st.composite
def boolean(draw: st.DrawFn, depth: int, env: tuple[tuple[str, str], ...]) -> str:
    def sub(k: str) -> str:
        return draw(typed(k, depth - 1, env))

    def wrap(text: str) -> str:
        return _wrap(draw, text)

    form = draw(st.integers(0, 9))
    if form <= 2:
        left, right = draw(
            st.sampled_from(
                [
                    ("int", "int"),
                    ("int", "double"),
                    ("double", "double"),
                    ("string", "string"),
                    ("timestamp", "timestamp"),
                    ("duration", "duration"),
                    ("bool", "bool"),
                    ("dyn", "int"),
                    ("dyn", "string"),
                    ("dyn", "dyn"),
                ]
            )
        )
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return wrap(f"{sub(left)} {op} {sub(right)}")
    if form == 3:
        element = draw(st.sampled_from(["int", "string"]))
        return wrap(f"{sub(element)} in {sub('list_' + element)}")
    if form == 4:
        op = draw(st.sampled_from(["&&", "||"]))
        return wrap(f"{sub('bool')} {op} {sub('bool')}")
    if form == 5:
        return wrap(f"!{sub('bool')}")
    if form == 6:
        method = draw(st.sampled_from(["startsWith", "endsWith", "contains"]))
        return f"{sub('string')}.{method}({sub('string')})"
    if form == 7:
        pattern = draw(st.sampled_from([p for p in PATTERNS if portable_regex(p)]))
        return f"{sub('string')}.matches({_cel_string(pattern)})"
    if form == 8:
        return draw(st.sampled_from(["has(o.s)", "has(m.a)", "has(x.a)", "has(o.x.k)"]))
    kind = draw(st.sampled_from(["list_int", "list_string"]))
    macro = draw(st.sampled_from(["exists", "all", "exists_one"]))
    var = draw(st.sampled_from(["v", "w", "i"]))
    body = draw(typed("bool", depth - 1, (*env, (var, ELEMENT[kind]))))
    return f"{sub(kind)}.{macro}({var}, {body})"


# ---------------------------------------------------------------- comparison


def same(native: object, reference: object) -> bool:
    """Whether two results are the same CEL value (NaN equals NaN, -0.0 differs from 0.0)."""
    if type(native) is not type(reference):
        return False
    if isinstance(native, float):
        assert isinstance(reference, float)
        if math.isnan(native):
            return math.isnan(reference)
        return native == reference and math.copysign(1, native) == math.copysign(1, reference)
    if isinstance(native, list):
        assert isinstance(reference, list)
        return len(native) == len(reference) and all(
            same(a, b) for a, b in zip(native, reference, strict=True)
        )
    if isinstance(native, dict):
        assert isinstance(reference, dict)
        return native.keys() == reference.keys() and all(
            same(native[k], reference[k]) for k in native
        )
    if isinstance(native, datetime):
        assert isinstance(reference, datetime)
        as_utc = native.replace(tzinfo=UTC) if native.tzinfo is None else native
        return as_utc == reference
    return native == reference


def _order_sensitive(source: str) -> bool:
    """A result whose order depends on iterating a map (random order in the binding)."""
    return bool(re.search(r"\b(m|x|y|o\.x)\.(map|filter)\(", source))


def run_both(source: str, activation: dict[str, Any]) -> tuple[str, object, object] | None:
    """Evaluate through both; None when the expression is not compiled natively."""
    try:
        program = cel.compile(source)
    except Exception:
        with pytest.raises((CelSyntaxError, CelTypeError)):
            check(parse(source), VARIABLES, source, require_bool=False)
        return None
    try:
        tree = parse(source)
    except CelSyntaxError:
        return None
    try:
        checked = check(tree, VARIABLES, source, require_bool=False)
    except CelTypeError:
        return None
    if checked.fallback:
        return None
    fn = compile_native(tree, checked)
    try:
        native: object = ("value", fn(activation))
    except CEL_ERRORS as exc:
        native = ("error", exc)
    try:
        reference: object = ("value", program.execute(activation))
    except Exception as exc:
        reference = ("error", exc)
    return source, native, reference


def assert_agree(source: str, activation: dict[str, Any]) -> bool:
    result = run_both(source, activation)
    if result is None:
        return False
    _, native, reference = result
    assert isinstance(native, tuple)
    assert isinstance(reference, tuple)
    if native[0] == "error" or reference[0] == "error":
        assert native[0] == reference[0] == "error", (
            f"{source!r}: native {native!r} vs binding {reference!r}"
        )
    elif not _order_sensitive(source) and not _same_keys_in_other_order(
        source, activation, native[1], reference[1]
    ):
        assert same(native[1], reference[1]), (
            f"{source!r}: native {native[1]!r} vs binding {reference[1]!r}"
        )
    return True


def _same_keys_in_other_order(
    source: str, activation: dict[str, Any], native: object, reference: object
) -> bool:
    """list + map appends the map's keys, in the binding's (random) map order."""
    if "+" not in source or not isinstance(native, list) or not isinstance(reference, list):
        return False
    if not any(isinstance(v, dict) and len(v) > 1 for v in _all_values(activation)):
        return False
    return sorted(map(repr, native)) == sorted(map(repr, reference))


def _all_values(value: object) -> list[object]:
    found = [value]
    if isinstance(value, dict):
        for item in value.values():
            found.extend(_all_values(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_all_values(item))
    return found


# ---------------------------------------------------------------- tests


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(source=expressions(), activation=activations())
def test_native_closures_agree_with_the_binding(source: str, activation: dict[str, Any]) -> None:
    assert_agree(source, activation)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    source=st.sampled_from(sorted(KIND_LEAVES)).flatmap(typed),
    activation=activations(),
)
def test_well_typed_expressions_agree_with_the_binding(
    source: str, activation: dict[str, Any]
) -> None:
    assert_agree(source, activation)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    left=st.one_of(scalars, dyn_values),
    right=st.one_of(scalars, dyn_values),
    op=st.sampled_from(BINARY),
)
def test_every_operator_on_every_pair_of_values(left: object, right: object, op: str) -> None:
    """`x op y` over dyn operands: the runtime semantics of each operator, value by value."""
    assert assert_agree(f"x {op} y", {**_defaults(), "x": left, "y": right})


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(scalars, dyn_values),
    function=st.sampled_from(["int", "double", "string", "size", "-", "!"]),
)
def test_conversions_and_unary_operators(value: object, function: str) -> None:
    source = f"{function}x" if function in "-!" else f"{function}(x)"
    assert assert_agree(source, {**_defaults(), "x": value})


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet="0123456789+-.eE_xinfaINFA ", max_size=8),
        ints.map(str),
        doubles.map(repr),
    ),
    function=st.sampled_from(["int", "double"]),
)
def test_parsing_numbers_from_strings(text: str, function: str) -> None:
    assert assert_agree(f"{function}(x)", {**_defaults(), "x": text})


@st.composite
def portable_patterns(draw: st.DrawFn) -> str:
    atoms = st.sampled_from(
        ["a", "b", "é", ".", "\\.", "[ab]", "[^a]", "[a-c]", "(a|b)", "(?:ab)", "x", " "]
    )
    parts = []
    for atom in draw(st.lists(atoms, min_size=1, max_size=4)):
        parts.append(atom + draw(st.sampled_from(["", "*", "+", "?", "{2}", "{1,2}", "*?"])))
    pattern = "".join(parts)
    if draw(st.booleans()):
        pattern = "^" + pattern
    if draw(st.booleans()):
        pattern += "$"
    return pattern


@settings(max_examples=200, deadline=None)
@given(pattern=portable_patterns(), subject=st.text(alphabet="abcé. x\n", max_size=6))
def test_portable_regular_expressions_match_like_rust(pattern: str, subject: str) -> None:
    assert portable_regex(pattern) is not None, pattern
    assert assert_agree(f"x.matches({_cel_string(pattern)})", {**_defaults(), "x": subject})


def _defaults() -> dict[str, Any]:
    return {
        "i": 1,
        "j": 2,
        "d": 1.5,
        "s": "a",
        "t": "b",
        "b": True,
        "n": None,
        "ns": None,
        "ts": datetime(2026, 1, 1, tzinfo=UTC),
        "du": timedelta(hours=1),
        "li": [1, 2],
        "ls": ["a"],
        "m": {"a": 1},
        "o": {"a": 1, "s": "s", "l": ["a"], "x": {"a": 1}, "f": False},
        "x": None,
        "y": None,
    }


@pytest.mark.parametrize(
    ("source", "activation"),
    [
        ("x / y", {"x": -7, "y": 2}),
        ("x % y", {"x": -7, "y": 2}),
        ("x % y", {"x": 7, "y": -2}),
        ("x / y", {"x": INT64_MIN, "y": -1}),
        ("x % y", {"x": INT64_MIN, "y": -1}),
        ("x + y", {"x": INT64_MAX, "y": 1}),
        ("-x", {"x": INT64_MIN}),
        ("-x", {"x": True}),
        ("x == y", {"x": True, "y": 1}),
        ("x in y", {"x": 1, "y": [True]}),
        ("x == y", {"x": 2**53 + 1, "y": float(2**53)}),
        ("x < y", {"x": float("nan"), "y": 1.0}),
        ("[x] == [x]", {"x": float("nan")}),
        ("x / y", {"x": -1.0, "y": 0.0}),
        ("x == y", {"x": datetime(2026, 1, 1), "y": datetime(2026, 1, 1, tzinfo=UTC)}),
        ("x < y", {"x": datetime(2026, 1, 1), "y": datetime(2026, 1, 2, tzinfo=UTC)}),
        ("size(x)", {"x": "héllo"}),
        ("x[y]", {"x": {1: "a"}, "y": True}),
        ("y in x", {"x": {1: "a"}, "y": True}),
        ("string(x)", {"x": 1e21}),
        ("string(x)", {"x": timedelta(seconds=-90)}),
        ("x.exists(v, v > 1)", {"x": [2, "a"]}),
        ("x.exists(v, v > 1)", {"x": ["a", 2]}),
        ("x.exists_one(v, v > 1)", {"x": [2, 3, "a"]}),
        ("x + y", {"x": 2**63, "y": 1}),
        ("x == 'a'", {"x": re.RegexFlag.ASCII}),
    ],
)
def test_known_differences_from_python_are_reproduced(
    source: str, activation: dict[str, Any]
) -> None:
    assert assert_agree(source, {**_defaults(), **activation})
