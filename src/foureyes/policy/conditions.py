"""Policy conditions: CEL expressions compiled once, evaluated on every decision.

`compile_condition` checks a condition against the declared types of the variables it may use and
compiles it to nested Python closures, which evaluate a typical condition in a fraction of a
microsecond. The reference semantics are those of the `cel` binding (common-expression-language,
the Rust CEL interpreter); the closures agree with it value for value, error for error, and a
condition using CEL the compiler does not cover is evaluated by the binding instead (`native` is
then False). Every condition is also compiled by the binding, so text it refuses is refused, and
evaluated once on a sample of every variable through both, so that a condition that cannot work
is refused when the policy loads rather than at decision time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

from foureyes.errors import BadInput
from foureyes.policy.cel.checker import CelTypeError, Checked, check, strip
from foureyes.policy.cel.compiler import compile_native
from foureyes.policy.cel.lexer import CelSyntaxError
from foureyes.policy.cel.mentions import collect
from foureyes.policy.cel.parser import parse
from foureyes.policy.cel.runtime import CelEvalError, type_name
from foureyes.policy.celtypes import DYN, CelType, MapType

__all__ = [
    "Condition",
    "ConditionCompileError",
    "ConditionRuntimeError",
    "compile_condition",
]

Activation = Mapping[str, object]


class ConditionCompileError(BadInput):
    """A condition that does not compile: bad syntax, an unknown name, a type error, or one that
    fails on sample values. The message is one line; `column` (1-based, within `line`) points at
    the problem when it is known."""

    def __init__(self, reason: str, *, column: int | None = None, line: int | None = None) -> None:
        if column is None:
            message = reason
        elif line is None or line == 1:
            message = f"column {column}: {reason}"
        else:
            message = f"line {line}, column {column}: {reason}"
        super().__init__(message, column=column, line=line)
        self.reason = reason
        self.column = column
        self.line = line


class ConditionRuntimeError(Exception):
    """A condition failed to evaluate (or did not evaluate to a bool); the message is one line."""

    def __init__(self, reason: str, *, source: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source


@dataclass(frozen=True)
class Condition:
    """A compiled condition.

    `fn` is the raw evaluator for hot paths: it returns the CEL value and raises any exception
    on a CEL error. `evaluate` wraps it for everything else. `paths` are the attribute paths the
    condition reads (a variable used whole is a 1-tuple); `mentions` maps paths to the literal
    values the condition compares them with (see `foureyes.policy.cel.mentions`).
    """

    source: str
    fn: Callable[[Activation], object] = field(compare=False, repr=False)
    native: bool
    paths: frozenset[tuple[str, ...]]
    # Not part of equality or the hash (it is a dict): conditions compare by source and paths.
    mentions: Mapping[tuple[str, ...], frozenset[object]] = field(compare=False)

    def evaluate(self, activation: Activation) -> bool:
        """The condition's value on `activation`, or ConditionRuntimeError."""
        try:
            result = self.fn(activation)
        except Exception as exc:
            raise ConditionRuntimeError(describe_error(exc), source=self.source) from exc
        if result is True or result is False:
            return result
        raise ConditionRuntimeError(
            f"evaluated to {type_name(result)} {_short(result)}, not to true or false",
            source=self.source,
        )


def compile_condition(source: str, variables: Mapping[str, CelType]) -> Condition:
    """Compile `source` for activations holding `variables` (name → declared type).

    Raises ConditionCompileError with a one-line reason and the column of the problem.
    """
    if not isinstance(source, str) or not source.strip():
        raise ConditionCompileError("a condition must be a non-empty CEL expression")
    try:
        program = cel.compile(source)
    except Exception as exc:
        # Not CEL. Our own parser usually says why more plainly than the binding.
        try:
            parse(source)
        except CelSyntaxError as mine:
            raise _error(source, f"syntax error: {mine.message}", mine.pos) from None
        except RecursionError:
            pass
        raise _binding_syntax_error(source, exc) from None
    binding_fn = _binding_evaluator(program)
    try:
        compiled = _compile_native(source, variables, binding_fn)
    except RecursionError:
        compiled = None
    if compiled is None:
        # Valid CEL the native parser does not read (message construction, a leading dot, a
        # very deep expression): the binding evaluates it.
        names = [name for name in program.variables() if name in variables]
        condition = Condition(source, binding_fn, False, frozenset((n,) for n in names), {})
        dynamic = any(_shapeless(variables[name]) for name in names)
    else:
        condition, dynamic = compiled
    return _checked_on_sample(condition, binding_fn, variables, dynamic=dynamic)


def _compile_native(
    source: str, variables: Mapping[str, CelType], binding_fn: Callable[[Activation], object]
) -> tuple[Condition, bool] | None:
    try:
        tree = parse(source)
    except CelSyntaxError:
        return None
    try:
        checked: Checked = check(tree, variables, source)
    except CelTypeError as exc:
        raise _error(source, exc.message, exc.pos) from None
    paths, mentions = collect(tree, variables, checked.types, checked.constants)
    if checked.fallback:
        return Condition(source, binding_fn, False, paths, mentions), checked.dynamic
    native = compile_native(tree, checked)
    return Condition(source, native, True, paths, mentions), checked.dynamic


# A quoted literal in an evaluator's message ('B-77-SECRET', "k@x.example"): usually the value
# that failed, which may be an account's private attribute.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def without_values(text: str) -> str:
    """`text` with every quoted literal replaced by `'…'`: an evaluation error is shown to
    whoever sees the decision (dry runs, account views, the audit log), so it must not quote
    the value it failed on."""
    return _QUOTED.sub("'…'", text)


def describe_error(exc: BaseException) -> str:
    """A one-line reason for an evaluation error from either evaluator, without the values it
    quoted (`without_values`)."""
    if isinstance(exc, KeyError):  # a key is a name the condition used, not a value
        key = exc.args[0] if exc.args else "?"
        return f"no such key: {key!r}"
    return without_values(_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CelEvalError):
        return str(exc)
    if isinstance(exc, TypeError | AttributeError) and "'NoneType'" in str(exc):
        return "no such overload: an operand is null"
    text = str(exc).strip().split("\n", 1)[0]
    if len(text) > 160:
        first, dot, _rest = text.partition(". ")
        text = first + dot.strip() if dot else text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _binding_evaluator(program: Any) -> Callable[[Activation], object]:
    execute = program.execute

    def evaluate(activation: Activation) -> object:
        return execute(activation if type(activation) is dict else dict(activation))

    return evaluate


def _checked_on_sample(
    condition: Condition,
    binding_fn: Callable[[Activation], object],
    variables: Mapping[str, CelType],
    *,
    dynamic: bool,
) -> Condition:
    """Refuse a condition that fails, or is not a bool, on sample values of every variable.

    A condition that reads data the types do not shape (`dyn` values, map entries, list
    elements by index) is checked only at run time: the samples cannot stand for that data.
    """
    sample = {name: t.sample() for name, t in variables.items()}
    outcomes: list[tuple[bool, object]] = []
    for fn in (condition.fn, binding_fn) if condition.native else (binding_fn,):
        try:
            outcomes.append((True, fn(sample)))
        except MemoryError:
            raise  # not the condition's failure but the budget's (foureyes.policy.sandbox)
        except Exception as exc:
            if not dynamic:
                raise ConditionCompileError(f"fails on sample values: {_describe(exc)}") from None
            outcomes.append((False, type(exc)))
    ok, result = outcomes[-1]
    if ok and result is not True and result is not False and not dynamic:
        raise ConditionCompileError(
            f"evaluates to {type_name(result)} on sample values, not to true or false"
        )
    if len(outcomes) == 2 and (outcomes[0][0] != ok or (ok and outcomes[0][1] != result)):
        # pragma: no cover - a compiler bug; the reference wins
        return Condition(condition.source, binding_fn, False, condition.paths, condition.mentions)
    return condition


def _shapeless(t: CelType) -> bool:
    """Whether sample values cannot stand for values of type `t` (dyn, or a map of unknown keys)."""
    t = strip(t)
    return t == DYN or isinstance(t, MapType)


def _error(source: str, reason: str, pos: int) -> ConditionCompileError:
    line = source.count("\n", 0, pos) + 1
    column = pos - (source.rfind("\n", 0, pos) + 1) + 1
    return ConditionCompileError(reason, column=column, line=line)


_BINDING_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")


def _binding_syntax_error(source: str, exc: Exception | None) -> ConditionCompileError:
    match = _BINDING_ERROR.search(str(exc))
    if match is None:
        return ConditionCompileError(f"syntax error: {describe_error(exc or ValueError())}")
    reason = match.group(3).strip()
    if not reason.lower().startswith("syntax error"):
        reason = f"syntax error: {reason}"
    return ConditionCompileError(reason, column=int(match.group(2)), line=int(match.group(1)))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
