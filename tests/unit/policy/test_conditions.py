"""Policy conditions: parsing, type errors, mentions, fallback to the binding, evaluation."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest

from foureyes.errors import BadInput
from foureyes.policy.cel.ast import Binary, Call, Comp, Cond, Has, Ident, Lit, Select, Unary
from foureyes.policy.cel.lexer import CelSyntaxError
from foureyes.policy.cel.parser import parse
from foureyes.policy.cel.runtime import format_double, portable_regex
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
from foureyes.policy.conditions import (
    Condition,
    ConditionCompileError,
    ConditionRuntimeError,
    compile_condition,
)

STAFF = ObjectType(
    {
        "email": STRING,
        "groups": ListType(STRING),
        "employment": STRING,
        "vendor": Nullable(STRING),
        "days_left": Nullable(INT),
        "ends": Nullable(TIMESTAMP),
        "status": STRING,
    }
)
ACCOUNT = ObjectType(
    {
        "tier": STRING,
        "followers": INT,
        "verified": BOOL,
        "score": DOUBLE,
        "created": TIMESTAMP,
        "age": DURATION,
        "roles": ListType(ObjectType({"name": STRING, "level": INT})),
        "pins": ListType(STRING),
    }
)
VARIABLES: dict[str, CelType] = {
    "staff": STAFF,
    "account": ACCOUNT,
    "approver": STAFF,
    "requester": STAFF,
    "params": MapType(STRING, DYN),
    "context": ObjectType({"now": TIMESTAMP, "hour": INT}),
}
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def activation(**changes: Any) -> dict[str, Any]:
    staff = {
        "email": "ana@corp.example",
        "groups": ["support", "tier1"],
        "employment": "contractor",
        "vendor": "acme",
        "days_left": 30,
        "ends": datetime(2026, 6, 30, tzinfo=UTC),
        "status": "active",
    }
    account = {
        "tier": "standard",
        "followers": 1200,
        "verified": False,
        "score": 0.25,
        "created": datetime(2020, 1, 1, tzinfo=UTC),
        "age": timedelta(days=2000),
        "roles": [{"name": "member", "level": 1}],
        "pins": [],
    }
    values: dict[str, Any] = {
        "staff": staff,
        "account": account,
        "approver": {**staff, "email": "bo@corp.example", "groups": ["security"]},
        "requester": staff,
        "params": {"reason": "fraud"},
        "context": {"now": NOW, "hour": 13},
    }
    for dotted, value in changes.items():
        variable, _, attribute = dotted.partition("__")
        if attribute:
            values[variable] = {**values[variable], attribute: value}
        else:
            values[variable] = value
    return values


def compile_(source: str) -> Condition:
    return compile_condition(source, VARIABLES)


def compile_error(
    source: str, variables: dict[str, CelType] | None = None
) -> ConditionCompileError:
    with pytest.raises(ConditionCompileError) as caught:
        compile_condition(source, VARIABLES if variables is None else variables)
    return caught.value


# ---------------------------------------------------------------- parsing


def test_precedence_and_associativity() -> None:
    tree = parse("a || b && c == d + e * f")
    assert isinstance(tree, Binary)
    assert tree.op == "||"
    assert isinstance(tree.right, Binary)
    assert tree.right.op == "&&"
    eq = tree.right.right
    assert isinstance(eq, Binary)
    assert eq.op == "=="
    assert isinstance(eq.right, Binary)
    assert eq.right.op == "+"
    assert isinstance(eq.right.right, Binary)
    assert eq.right.right.op == "*"

    left_assoc = parse("10 - 3 - 2")
    assert isinstance(left_assoc, Binary)
    assert isinstance(left_assoc.left, Binary)
    assert left_assoc.left.op == "-"

    ternary = parse("a ? b : c ? d : e")
    assert isinstance(ternary, Cond)
    assert isinstance(ternary.orelse, Cond)

    relations = parse("1 < 2 == true")
    assert isinstance(relations, Binary)
    assert relations.op == "=="
    assert isinstance(relations.left, Binary)
    assert relations.left.op == "<"


def test_unary_runs_cancel_and_minus_belongs_to_number_literals() -> None:
    literal = parse("-9223372036854775808")
    assert isinstance(literal, Lit)
    assert literal.value == -(2**63)
    double_not = parse("!!x")
    assert isinstance(double_not, Ident)  # like the reference parsers: !!x is x
    triple = parse("!!!x")
    assert isinstance(triple, Unary)
    assert isinstance(triple.operand, Ident)
    negated_literal = parse("!-1")
    assert isinstance(negated_literal, Unary)
    assert isinstance(negated_literal.operand, Lit)
    assert negated_literal.operand.value == -1
    with pytest.raises(CelSyntaxError, match="out of range"):
        parse("9223372036854775808")
    with pytest.raises(CelSyntaxError, match="out of range"):
        parse("--9223372036854775808")


@pytest.mark.parametrize(
    ("source", "value"),
    [
        (r'"\x41\101\u00e9\U0001F600\n\t\\\"\'\`\?"', "AAé😀\n\t\\\"'`?"),
        (r"'a\"b'", 'a"b'),
        (r'r"a\nb"', "a\\nb"),
        (r"R'\d'", "\\d"),
        ('"""a\n"b"""', 'a\n"b'),
        ("'''it's'''", "it's"),
        (r'"\377"', "\u00ff"),
    ],
)
def test_string_literals_and_escapes(source: str, value: str) -> None:
    tree = parse(source)
    assert isinstance(tree, Lit)
    assert tree.kind == "string"
    assert tree.value == value


@pytest.mark.parametrize(
    ("source", "value", "kind"),
    [
        ("0x1F", 31, "int"),
        ("010", 10, "int"),
        ("1e3", 1000.0, "double"),
        (".5", 0.5, "double"),
        ("1.5e-3", 0.0015, "double"),
        ("3u", 3, "uint"),
        ("true", True, "bool"),
        ("null", None, "null"),
    ],
)
def test_number_and_keyword_literals(source: str, value: object, kind: str) -> None:
    tree = parse(source)
    assert isinstance(tree, Lit)
    assert (tree.value, tree.kind) == (value, kind)


def test_macros_calls_comments_and_trailing_commas() -> None:
    comp = parse("staff.groups.exists(g, g in ['a', 'b',])  // any of them")
    assert isinstance(comp, Comp)
    assert (comp.kind, comp.var) == ("exists", "g")
    assert isinstance(comp.range, Select)
    mapped = parse("xs.map(v, v > 1, v * 2)")
    assert isinstance(mapped, Comp)
    assert mapped.pred is not None
    assert mapped.transform is not None
    has = parse("has(a.b.c)")
    assert isinstance(has, Has)
    assert has.operand.field == "c"
    call = parse("x.startsWith('a')")
    assert isinstance(call, Call)
    assert call.function == "startsWith"
    assert call.target is not None
    assert isinstance(parse("x.if"), Select)  # reserved words are fine as field names


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("if", "reserved word"),
        ('"abc', "unterminated string"),
        ('"a\\zb"', "invalid escape"),
        ('"\\ud800"', "invalid code point"),
        ("1 = 1", "unexpected character '='"),
        ("has(x)", "has() takes one field selection"),
        ("[1].exists(x.y, true)", "must be a name"),
        ("Foo{a: 1}", "message construction"),
        ("a.?b", "expected a field or method name"),
    ],
)
def test_parser_refuses(source: str, message: str) -> None:
    with pytest.raises(CelSyntaxError, match=re.escape(message)):
        parse(source)


# ---------------------------------------------------------------- compile errors


def test_compile_error_is_bad_input_with_one_line_message_and_column() -> None:
    error = compile_error("account.tier ==")
    assert isinstance(error, BadInput)
    assert error.column == 16
    assert str(error) == "column 16: syntax error: expected an operand, found end of expression"
    assert "\n" not in str(error)
    assert error.status == 422


def test_syntax_error_columns_count_characters_and_lines() -> None:
    error = compile_error('"éé" + (')
    assert error.column == 9
    error = compile_error("account.tier == 'a' &&\n  (")
    assert (error.line, error.column) == (2, 4)
    assert str(error).startswith("line 2, column 4: syntax error")


def test_syntax_the_binding_refuses_is_refused_with_its_reason() -> None:
    deep = "(" * 120 + "true" + ")" * 120  # the binding limits nesting; our parser does not
    error = compile_error(deep)
    assert error.column is not None
    assert "syntax error" in error.reason.lower()


def test_unknown_variable() -> None:
    error = compile_error('stuff.email == "a"')
    assert str(error) == (
        "column 1: unknown variable 'stuff' (known: account, approver, context, params, "
        "requester, staff); did you mean 'staff'?"
    )


def test_unknown_attribute_names_the_known_ones() -> None:
    error = compile_error('staff.grops == ["a"]')
    assert error.column == 7
    assert error.reason == (
        "staff has no attribute 'grops' (known: days_left, email, employment, ends, groups, "
        "status, vendor); did you mean 'groups'?"
    )
    nested = compile_error('account.roles.exists(r, r.nmae == "admin")')
    assert "r has no attribute 'nmae' (known: level, name)" in nested.reason
    indexed = compile_error('account["tire"] == "vit"')
    assert "account has no attribute 'tire'" in indexed.reason
    assert indexed.column == 9
    assert "has no attribute 'x'" in compile_error("has(staff.x)").reason


@pytest.mark.parametrize(
    ("source", "reason", "column"),
    [
        (
            'account.followers >= "x"',
            "'>=' cannot order account.followers (int) and \"x\" (string)",
            19,
        ),
        (
            '"a" in account.followers',
            "'in' needs a list or a map on the right, but account.followers is int",
            5,
        ),
        (
            "staff.groups == 3",
            "'==' compares staff.groups (list(string)) with 3 (int); "
            "values of these types are never equal",
            14,
        ),
        (
            "3 in staff.groups",
            "staff.groups is a list(string), so 3 (int) is never in it",
            3,
        ),
        (
            "staff.email == null",
            "'==' compares staff.email (string) with null (null_type); "
            "values of these types are never equal",
            13,
        ),
        (
            "account.followers + 1.5 > 2.0",
            "'+' is not defined for account.followers (int) and 1.5 (double) "
            "(CEL does not mix int and double: convert with double() or int())",
            19,
        ),
        (
            "!account.followers",
            "the operand of '!' must be true or false, but account.followers is int",
            2,
        ),
        (
            "account.verified && staff.email",
            "each operand of '&&' must be true or false, but staff.email is string",
            21,
        ),
        ("account.followers", "a condition must be true or false, but this expression is int", 1),
        ("-account.verified", "cannot negate account.verified, which is bool", 1),
        (
            "account.tier.exists(c, true)",
            "exists() iterates over a list or map, but account.tier is string",
            1,
        ),
        ("size(account.followers) > 1", "size() is not defined for account.followers (int)", 1),
        (
            "account.followers.startsWith('1')",
            "startsWith() works on strings, but account.followers is int",
            1,
        ),
        ("string(account.verified) == 'true'", "string() is not defined for bool", 1),
        ("account.tier[0] == 'v'", "cannot index account.tier, which is string", 1),
    ],
)
def test_type_errors(source: str, reason: str, column: int) -> None:
    error = compile_error(source)
    assert error.reason == reason
    assert error.column == column


def test_comparisons_the_checker_allows() -> None:
    # int and double compare numerically; null with a nullable; dyn with anything.
    for source in (
        "account.followers > 1e3",
        "account.score == 0",
        "staff.vendor == null",
        "params.amount == 3 || params.amount == 'x'",
        "approver == requester",
        "staff.days_left != null && staff.days_left < 7",
    ):
        compile_condition(source, {**VARIABLES, "params": MapType(STRING, DYN)})


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("foo(1)", "unknown function 'foo'"),
        (
            "startsWith(staff.email, 'a')",
            "startsWith() is called as a method: text.startsWith(other)",
        ),
        ("staff.email.startsWith()", "startsWith() is called as a method: text.startsWith(other)"),
        ("size() == 1", "size() takes one value: size(x) or x.size()"),
        ("int(1, 2) == 1", "int() takes exactly one argument: int(x)"),
        ("staff.groups.exists(g) ", "exists() is written x.exists(v, p)"),
    ],
)
def test_unknown_functions_and_wrong_arguments(source: str, reason: str) -> None:
    assert compile_error(source).reason == reason


def test_invalid_literals_for_timestamp_duration_and_regex() -> None:
    assert compile_error('context.now < timestamp("yesterday")').reason.startswith(
        "invalid timestamp 'yesterday'"
    )
    assert compile_error('account.age > duration("3 days")').reason.startswith(
        "invalid duration '3 days'"
    )
    error = compile_error('staff.email.matches("(")')
    assert error.reason.startswith("invalid regular expression")
    assert error.column == 21


def test_refused_when_it_fails_on_sample_values() -> None:
    # Every attribute here is typed, so the samples stand for real data: this always fails.
    error = compile_error("int(staff.email) > 0")
    assert str(error) == "fails on sample values: int() cannot parse 'sample'"
    assert error.column is None
    error = compile_error("account.followers / (account.followers - 1) > 0")
    assert error.reason == "fails on sample values: division by zero"


def test_dyn_data_is_checked_only_at_run_time() -> None:
    # params is a map(string, dyn): the samples cannot know its keys or their types.
    condition = compile_("params.amount > 5")
    assert condition.native
    assert condition.evaluate(activation(params={"amount": 7})) is True
    with pytest.raises(ConditionRuntimeError, match="no such key: 'amount'"):
        condition.evaluate(activation())
    assert compile_("has(params.amount) && params.amount > 5").native


def test_refused_when_the_result_is_not_a_bool_on_samples() -> None:
    error = compile_error("dyn(account.tier)")
    assert error.reason == "evaluates to string on sample values, not to true or false"


def test_refused_when_the_binding_cannot_run_it() -> None:
    error = compile_error("Foo{a: 1} == Foo{a: 1}")
    assert error.reason.startswith("fails on sample values: RuntimeError")


def test_empty_condition() -> None:
    assert compile_error("   ").reason == "a condition must be a non-empty CEL expression"


# ---------------------------------------------------------------- evaluation


def test_typical_condition_is_native_and_evaluates() -> None:
    condition = compile_('"support" in staff.groups && account.tier == "standard"')
    assert condition.native
    assert condition.evaluate(activation()) is True
    assert condition.fn(activation(account__tier="vit")) is False
    assert condition.evaluate(activation(staff__groups=["security"])) is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        condition.native = False  # type: ignore[misc]
    again = compile_('"support" in staff.groups && account.tier == "standard"')
    assert condition == again  # by source, not by closure identity
    assert hash(condition) == hash(again)
    assert "fn=" not in repr(condition)


def test_binding_errors_are_one_line_too() -> None:
    condition = compile_condition("uint(params.n) > 1u", {"params": MapType(STRING, DYN)})
    assert not condition.native
    with pytest.raises(ConditionRuntimeError) as caught:
        condition.evaluate({"params": {"n": "x"}})
    assert "\n" not in caught.value.reason
    # Quoted literals are left out (they may be an account's private value).
    assert caught.value.reason.startswith("RuntimeError: Function '…' error")
    with pytest.raises(ConditionRuntimeError, match="no such key: 'n'"):
        condition.evaluate({"params": {}})


@pytest.mark.parametrize(
    ("source", "changes", "expected"),
    [
        ('staff.groups.exists(g, g in ["security", "trust-safety"])', {}, False),
        ('approver.groups.exists(g, g in ["security", "trust-safety"])', {}, True),
        ("account.followers > 1000 && !account.verified", {}, True),
        ('!("security" in staff.groups)', {}, True),
        ("context.hour >= 9 && context.hour < 17 && staff.status == 'active'", {}, True),
        ("context.now - account.created > duration('72h')", {}, True),
        ("account.created + account.age < context.now", {}, True),
        ("staff.ends < context.now", {"staff__ends": datetime(2026, 1, 1, tzinfo=UTC)}, True),
        ("staff.email.endsWith('@corp.example')", {}, True),
        ("staff.email.matches('^[a-z]+@corp\\\\.example$')", {}, True),
        ("staff.vendor == null || staff.vendor == 'acme'", {"staff__vendor": None}, True),
        ("account.roles.exists(r, r.name == 'member' && r.level < context.hour)", {}, True),
        ("account.roles.all(r, r.level == 1)", {}, True),
        ("account.pins.exists_one(p, p == 'a')", {"account__pins": ["a", "b", "a"]}, False),
        ("size(account.roles.filter(r, r.level > 0)) == 1", {}, True),
        ("account.roles.map(r, r.name) == ['member']", {}, True),
        ("account.score * 4.0 == 1.0", {}, True),
        ("int(account.score * 10.0) == 2", {}, True),
        ("string(account.followers) == '1200'", {}, True),
        ("double(account.followers) / 1000.0 > 1.1", {}, True),
        ("account.followers / 1000 == 1 && account.followers % 1000 == 200", {}, True),
        ("-7 / 2 == -3 && -7 % 2 == -1", {}, True),
        ("size('héllo') == 6", {}, True),  # the binding counts UTF-8 bytes
        ("1 == 1.0 && account.score != 0", {}, True),
        ("account.tier in {'standard': 1, 'vit': 2}", {}, True),
        ("params['reason'] == 'fraud' && has(params.reason)", {}, True),
        ("account.verified ? account.tier == 'vit' : account.followers >= 1000", {}, True),
    ],
)
def test_native_evaluation(source: str, changes: dict[str, Any], expected: bool) -> None:
    condition = compile_(source)
    assert condition.native, source
    assert condition.evaluate(activation(**changes)) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # An error on one side of || / && is absorbed when the other side decides.
        ("params.missing == 1 || true", True),
        ("true || params.missing == 1", True),
        ("params.missing == 1 && false", False),
        ("false && params.missing == 1", False),
        ("params.reason && false", False),  # a non-bool operand behaves like an error
        ("params.reason || true", True),
    ],
)
def test_logical_operators_absorb_errors_like_cel(source: str, expected: bool) -> None:
    condition = compile_condition(source, {"params": MapType(STRING, DYN)})
    assert condition.native
    assert condition.fn({"params": {"reason": "fraud"}}) is expected


@pytest.mark.parametrize(
    ("source", "params", "reason"),
    [
        ("params.missing == 1 || false", {}, "no such key: 'missing'"),
        ("params.n + 1 > 0", {"n": 2**63 - 1}, "integer overflow in 9223372036854775807 + 1"),
        ("params.n / 0 == 1", {"n": 1}, "division by zero"),
        ("params.n % 0 == 1", {"n": 1}, "modulo by zero"),
        ("params.n < 'a'", {"n": 1}, "no such overload: cannot order int and string"),
        ("params.n + 1.0 > 0.0", {"n": 1}, "no such overload: int + double"),
        ("!params.n", {"n": 1}, "no such overload: !int"),
        ("params.n && true", {"n": 1}, "expected a bool, got int"),
        ("params.xs[2] == 1", {"xs": [1]}, "index 2 out of range for a list of size 1"),
        ("params.d < 1.0", {"d": math.nan}, "no such overload: ordering with NaN"),
        ("int(params.s) == 1", {"s": "1.5"}, "int() cannot parse '…'"),
        ("params.xs.exists(x, x)", {"xs": [1]}, "expected a bool, got int"),
    ],
)
def test_runtime_errors_become_one_line_condition_runtime_errors(
    source: str, params: dict[str, Any], reason: str
) -> None:
    condition = compile_condition(source, {"params": MapType(STRING, DYN)})
    assert condition.native
    with pytest.raises(ConditionRuntimeError) as caught:
        condition.evaluate({"params": params})
    assert caught.value.reason == reason
    assert str(caught.value) == reason
    assert caught.value.source == source
    with pytest.raises(Exception):  # noqa: B017, PT011 - fn raises whatever the error is
        condition.fn({"params": params})


def test_non_bool_result_is_a_runtime_error() -> None:
    condition = compile_condition("params.flag", {"params": MapType(STRING, DYN)})
    assert condition.evaluate({"params": {"flag": True, "sample": 1}}) is True
    with pytest.raises(ConditionRuntimeError) as caught:
        condition.evaluate({"params": {"flag": "yes"}})
    assert caught.value.reason == "evaluated to string 'yes', not to true or false"


def test_null_operand_is_a_runtime_error() -> None:
    condition = compile_("staff.days_left < 7 || staff.vendor.startsWith('a')")
    with pytest.raises(ConditionRuntimeError) as caught:
        condition.evaluate(activation(staff__days_left=None, staff__vendor=None))
    assert caught.value.reason == "no such overload: an operand is null"


def test_missing_variable_is_a_runtime_error() -> None:
    condition = compile_('account.tier == "vit"')
    with pytest.raises(ConditionRuntimeError, match="no such key: 'account'"):
        condition.evaluate({})


def test_naive_datetimes_are_read_as_utc_like_the_binding() -> None:
    condition = compile_(
        "context.now > account.created && context.now - account.created > duration('1h')"
    )
    naive = activation(context={"now": datetime(2026, 1, 1, 12, 0), "hour": 12})
    assert condition.evaluate(naive) is True
    equal = compile_("context.now == timestamp('2026-01-01T12:00:00Z')")
    assert equal.evaluate(naive) is True


def test_activation_may_be_any_mapping() -> None:
    condition = compile_("has(params.reason) && params.reason == 'fraud'")
    fallback = compile_("has(params.reason) && params.reason == 'fraud' && 1u == 1u")
    assert not fallback.native
    proxy = MappingProxyType(activation())
    assert condition.evaluate(proxy) is True
    assert fallback.evaluate(proxy) is True


# ---------------------------------------------------------------- fallback


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("uint(account.followers) == 1200u", True),
        ("staff.email.matches('\\\\d')", False),  # \d differs between RE2 and Rust
        ("context.now.getFullYear() == 2026", True),
        ("context.now < timestamp('2026-03-01T12:00:00.000000001Z')", True),  # below µs
        ("timestamp(params.reason + 'x') == context.now || true", True),
        ("b'abc'.size() == 3", True),
        ("{true: 1}[true] == 1", True),
        ("type(account.tier) == type('a')", True),
    ],
)
def test_fallback_to_the_binding(source: str, expected: bool) -> None:
    condition = compile_(source)
    assert not condition.native
    assert condition.evaluate(activation()) is expected


def test_fallback_still_type_checks() -> None:
    assert "has no attribute 'emial'" in compile_error("staff.emial.matches('\\\\d')").reason
    assert compile_error("uint(1) == foo").reason.startswith("unknown variable 'foo'")


def test_very_long_chain_falls_back_and_still_works() -> None:
    source = " && ".join(["account.followers > 1"] * 600)
    condition = compile_(source)
    assert not condition.native
    assert condition.paths == {("account",)}  # only the variables, from the binding
    assert condition.evaluate(activation()) is True


# ---------------------------------------------------------------- paths and mentions


def test_paths_are_the_attributes_read() -> None:
    condition = compile_(
        'approver != requester && has(params.reason) && params["ticket"] == "x" '
        "|| account.roles.exists(r, r.name == 'admin') || staff.groups.size() > 3"
    )
    assert condition.paths == {
        ("approver",),
        ("requester",),
        ("params", "reason"),
        ("params", "ticket"),
        ("account", "roles"),
        ("account", "roles", "name"),
        ("staff", "groups"),
    }


def test_mentions_equality_membership_and_macros() -> None:
    condition = compile_(
        'account.tier == "vit" || "standard" != account.tier '
        '|| staff.employment in ["employee", "contractor"] '
        '|| "support" in staff.groups '
        '|| approver.groups.exists(g, g in ["security", "trust-safety"]) '
        '|| account.roles.exists(r, r.name == "admin") '
        "|| staff.vendor == null"
    )
    assert condition.mentions == {
        ("account", "tier"): {"vit", "standard"},
        ("staff", "employment"): {"employee", "contractor"},
        ("staff", "groups"): {"support"},
        ("approver", "groups"): {"security", "trust-safety"},
        ("account", "roles", "name"): {"admin"},
        ("staff", "vendor"): {None},
    }


def test_mentions_boundaries_of_ordered_comparisons() -> None:
    condition = compile_(
        "account.followers >= 1000 || 7 > staff.days_left || account.score < 0.5 "
        "|| account.followers > 2.5e3 "
        "|| account.created < timestamp('2026-01-01T00:00:00Z') || account.age > duration('72h')"
    )
    mentions = condition.mentions
    assert mentions[("account", "followers")] == {999, 1000, 1001, 2499, 2500, 2501}
    assert mentions[("staff", "days_left")] == {6, 7, 8}
    assert mentions[("account", "score")] == {
        math.nextafter(0.5, 0.0),
        0.5,
        math.nextafter(0.5, 1.0),
    }
    second = timedelta(seconds=1)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert mentions[("account", "created")] == {start - second, start, start + second}
    three_days = timedelta(hours=72)
    assert mentions[("account", "age")] == {three_days - second, three_days, three_days + second}


def test_bool_attributes_mention_both_values() -> None:
    condition = compile_("account.verified || !account.verified && staff.status == 'active'")
    assert condition.mentions[("account", "verified")] == {True, False}
    assert condition.mentions[("staff", "status")] == {"active"}


def test_string_tests_mention_a_value_that_passes() -> None:
    condition = compile_("staff.email.endsWith('@corp.example') && staff.status.startsWith('act')")
    assert condition.mentions == {
        ("staff", "email"): {"@corp.example"},
        ("staff", "status"): {"act"},
    }


def test_fallback_conditions_have_paths_and_mentions_too() -> None:
    condition = compile_("uint(account.followers) > 1u && account.tier == 'vit'")
    assert not condition.native
    assert condition.paths == {("account", "followers"), ("account", "tier")}
    assert condition.mentions == {("account", "tier"): {"vit"}}


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-0.0, "-0"),
        (1.5, "1.5"),
        (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"),
        (123456789012345678.0, "123456789012345680"),
        (math.inf, "inf"),
        (math.nan, "NaN"),
    ],
)
def test_doubles_print_like_the_binding(value: float, text: str) -> None:
    assert format_double(value) == text


@pytest.mark.parametrize(
    "pattern",
    ["a", "^a.c$", "[a-z0-9_]+@corp\\.example$", "(?:ab|cd){2,3}", "x*?y", "[^@]+"],
)
def test_portable_regexes(pattern: str) -> None:
    assert portable_regex(pattern) is not None


@pytest.mark.parametrize(
    "pattern",
    [
        "\\d",
        "\\w+",
        "a$b",
        "a^",
        "(?i)a",
        "(?P<n>a)",
        "[[:alpha:]]",
        "a{,3}",
        "[a-]",
        "a**",
        "\\bx",
    ],
)
def test_non_portable_regexes(pattern: str) -> None:
    assert portable_regex(pattern) is None


def test_variables_of_every_declared_type_have_samples() -> None:
    # The sample check runs every condition on these; a condition over any type compiles.
    types: dict[str, CelType] = {
        "s": STRING,
        "i": INT,
        "d": DOUBLE,
        "b": BOOL,
        "t": TIMESTAMP,
        "u": DURATION,
        "n": Nullable(INT),
        "l": ListType(STRING),
        "m": MapType(STRING, INT),
        "x": DYN,
    }
    condition = compile_condition(
        "s == 'sample' && i == 1 && d == 1.5 && b && t > timestamp('2000-01-01T00:00:00Z') "
        "&& u == duration('1h') && n == 1 && l == ['sample'] && m['sample'] == 1 && x == 'sample'",
        types,
    )
    assert condition.native
