"""Policy regular expressions run on RE2: linear time, and what RE2 refuses is refused at load.

Python's `re` backtracks: `(a+)+$` on thirty `a`s and a `!` runs for minutes. These tests only
need each call to return; on the old code the first ones hang.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cel
import pytest

from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.errors import PolicyError
from foureyes.policy.celtypes import DYN, STRING, CelType
from foureyes.policy.compiler import parse_policy
from foureyes.policy.conditions import ConditionRuntimeError, compile_condition
from foureyes.policy.regex import RegexError, compile_re2, fullmatches, searches
from foureyes.policy.schema import GenericJustificationSpec

EXAMPLE = (Path(__file__).parents[3] / "src" / "foureyes" / "examples" / "policy.yaml").read_text()
HOSTILE = "a" * 40 + "!"
CATASTROPHIC = "^(a+)+$"
# What only a backtracking engine does: backreferences and look-around; and more repetition
# than RE2 compiles.
REFUSED = [r"(a)\1", "(?=a)a", "(?!a)b", "(?<=a)b", "a{1001}"]
VARIABLES: dict[str, CelType] = {"x": STRING, "y": STRING, "d": DYN}


VIT = 'account.followers >= 1000000 || "protected" in account.pins'


def with_vit_extended(condition: str) -> str:
    """The example policy with `|| (condition)` added to its vit tier's condition."""
    assert f"when: {VIT}\n" in EXAMPLE
    return EXAMPLE.replace(f"when: {VIT}\n", f"when: '{VIT} || ({condition})'\n", 1)


def _cel_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_a_catastrophic_literal_pattern_runs_natively_in_linear_time() -> None:
    condition = compile_condition(f"x.matches({_cel_string(CATASTROPHIC)})", VARIABLES)
    assert condition.native
    assert condition.evaluate({"x": HOSTILE}) is False
    assert condition.evaluate({"x": "a" * 100_000 + "!"}) is False
    assert condition.evaluate({"x": "aaa"}) is True


def test_a_catastrophic_computed_pattern_runs_in_linear_time() -> None:
    condition = compile_condition("x.matches(y)", VARIABLES)
    assert condition.native  # computed patterns are compiled by RE2 when used
    assert condition.evaluate({"x": HOSTILE, "y": CATASTROPHIC}) is False
    assert condition.evaluate({"x": "aaa", "y": CATASTROPHIC}) is True


@pytest.mark.parametrize("pattern", REFUSED)
def test_a_pattern_re2_refuses_is_refused_at_load_with_file_and_line(pattern: str) -> None:
    text = with_vit_extended(f"account.handle.matches({_cel_string(pattern)})")
    line = EXAMPLE.splitlines().index(f"    when: {VIT}") + 1
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, demo_catalog(), file="proposed.yaml")
    assert caught.value.file == "proposed.yaml"
    assert caught.value.line == line
    assert "invalid regular expression" in caught.value.message


@pytest.mark.parametrize("pattern", REFUSED)
def test_a_justification_pattern_re2_refuses_is_refused_at_load(pattern: str) -> None:
    original = "pattern: '^LEGAL-[0-9]+$'"
    text = EXAMPLE.replace(original, f"pattern: '{pattern}'", 1)
    line = next(i for i, row in enumerate(EXAMPLE.splitlines(), 1) if original in row)
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, demo_catalog(), file="proposed.yaml")
    assert caught.value.file == "proposed.yaml"
    assert caught.value.line == line
    assert caught.value.field is not None
    assert caught.value.field.endswith("justification.pattern")
    assert "RE2" in caught.value.message


def test_a_catastrophic_justification_pattern_loads_and_runs_in_linear_time() -> None:
    text = EXAMPLE.replace("pattern: '^LEGAL-[0-9]+$'", f"pattern: '{CATASTROPHIC}'", 1)
    policy = parse_policy(text, demo_catalog())
    assert any(rule.justification_pattern is not None for rule in policy.rules)
    assert fullmatches(CATASTROPHIC, HOSTILE) is False
    assert fullmatches(CATASTROPHIC, "aaaa") is True


@pytest.mark.parametrize("pattern", REFUSED)
def test_a_computed_pattern_re2_refuses_fails_closed(pattern: str) -> None:
    condition = compile_condition("x.matches(y)", VARIABLES)
    with pytest.raises(ConditionRuntimeError, match="invalid regular expression"):
        condition.evaluate({"x": "aa", "y": pattern})


@pytest.mark.parametrize(
    ("subject", "pattern", "expected"),
    [
        ("abc", "b", True),
        ("abc", "^b", False),
        ("abc", "c$", True),
        ("ab\n", "b$", False),  # `$` is the end of the text, not before a final newline
        ("a1", r"\d", True),  # outside the portable subset: the binding (also linear)
        ("é", "^.$", True),  # one code point
        ("x", "(", None),  # invalid: an error
    ],
)
def test_computed_patterns_agree_with_the_binding(
    subject: str, pattern: str, expected: bool | None
) -> None:
    native = compile_condition("x.matches(y)", VARIABLES)
    assert native.native
    reference = cel.compile("x.matches(y)")
    outcomes: list[Any] = []
    for evaluate in (native.evaluate, reference.execute):
        try:
            outcomes.append(evaluate({"x": subject, "y": pattern}))
        except Exception:
            outcomes.append(None)
    assert outcomes == [expected, expected]


def test_a_computed_pattern_on_a_non_string_is_an_error() -> None:
    condition = compile_condition("d.matches(y)", VARIABLES)
    with pytest.raises(ConditionRuntimeError):
        condition.evaluate({"d": 1, "y": "a", "x": ""})


def test_the_helpers_fail_closed_on_a_pattern_re2_refuses() -> None:
    with pytest.raises(RegexError, match=r"invalid escape sequence: \\1"):
        compile_re2(r"(a)\1")
    assert fullmatches(r"(a)\1", "aa") is False
    assert searches(r"(a)\1", "aa") is False
    assert searches(CATASTROPHIC, HOSTILE) is False


def test_a_detector_justification_pattern_re2_refuses_is_refused() -> None:
    with pytest.raises(ValueError, match="RE2"):
        GenericJustificationSpec(pattern=r"(?=CASE)\w+")
    assert GenericJustificationSpec(pattern=CATASTROPHIC).pattern == CATASTROPHIC
