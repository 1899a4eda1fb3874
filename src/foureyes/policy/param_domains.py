"""What a literal compared with a request's params can be: a value the param takes (pol7-F1).

A deny rule `params.account == "president" && params.pin == "protected"` on
`foureyes.account.pin` was installed and matched nothing: `params.account` is always
`platform:id` (`chirp:president`). `params.pin == "Protected"` (a pin is lower case),
`params.status == "Active"` (the enum is lower case), `"Security" in params.groups`,
`params.staff == "ines"` (a login, not a staff id) read as rules and named nothing. Every action
declares its params with a JSON schema; a literal compared (`==`, `!=`, `in`, an element of a
list a macro ranges over: `comparisons.Found.compared`) with `params.X` (`params["X"]`,
`params.X.Y` for an object param) in a new text is held to it (`param_problem`, called by the
compiler), against the actions the condition applies to (a rule's, a batch rule's, expanded;
elsewhere every action of the catalog):

- some such action declares param X (`properties`, `patternProperties`, or an open
  `additionalProperties`), else: "no action of rule R has a parameter X";
- the literal is a value of that param (or, for an array param, an item of it) under the
  schema of at least one of them: enum, const, pattern, type, format (checked:
  `jsonschema.FormatChecker`), lengths; else refused naming the values or the pattern;
- `"X" in params` names a param some such action declares;
- a param says what it holds with the schema key `x-foureyes` (`MEANING`; on the param, or on
  an array param's `items`): `account-ref` (`platform:id`), `staff-id`, `group`, `pin`. A
  literal taken only by params of one meaning is checked as the field of that meaning is
  (`AS_FIELD`): a group or a pin has that name's shape here; a staff id names someone in the
  directory and a group reads as no held group it is not (`literals.check_staff_literals`); an
  account ref is looked up on its platform at submission and execution, like an `account.ref`
  literal (`literals.account_literals`, `foureyes.workflow.policy_accounts`). foureyes' own
  actions declare theirs (`catalog`); a connector may declare its params' meanings the same way;
- string functions stay allowed on params (a request's own text), but their literal must be
  possible (`search_problem`): for an enum, some value holds it (starts with it, ends with it,
  contains it, matches it); for a pattern anchored at both ends, the literal's characters are
  ones the pattern's values are made of.

Gaps, deliberate: a schema reached through `$ref` or combined (`anyOf`, `oneOf`) is read as the
validator reads it, and a `$ref` it cannot resolve here counts as no value (refused, failing
closed); a pattern's language is not intersected with a prefix (`startsWith("ab")` on `^a+$` is
only checked character by character); `matches()` on a pattern param is not checked.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema
from jsonschema.exceptions import best_match

from foureyes.model import ActionSpec
from foureyes.policy.catalog import ACCOUNT_REF, GROUP, MEANING, PIN, STAFF_ID
from foureyes.policy.comparisons import Path
from foureyes.policy.directory import GROUP_CHARACTERS, GROUP_NAME, STAFF_ID_PATTERN
from foureyes.policy.regex import RegexError, searches
from foureyes.policy.yamlsource import Loc

__all__ = [
    "ACCOUNT_REF",
    "AS_FIELD",
    "GROUP",
    "MEANING",
    "PIN",
    "STAFF_ID",
    "Scope",
    "param_meaning",
    "param_problem",
    "scope_of",
    "search_problem",
]

AS_FIELD: Mapping[str, Path] = {
    ACCOUNT_REF: ("account", "ref"),
    STAFF_ID: ("staff", "id"),
    GROUP: ("staff", "groups"),
    PIN: ("account", "pins"),
}
"""The field whose domain a literal of a param of each meaning is checked in."""
_PIN = re.compile(r"[a-z][a-z0-9_-]{0,49}")  # as a pin is made (`domains`, the pin action)
_SHAPES: Mapping[str, tuple[re.Pattern[str], str]] = {
    STAFF_ID: (re.compile(STAFF_ID_PATTERN), f"a staff id matches {STAFF_ID_PATTERN}"),
    GROUP: (GROUP_NAME, f"a group is named with {GROUP_CHARACTERS}"),
    PIN: (_PIN, "a pin's name is lower case (letters, digits, - and _)"),
}
_SHOWN = 12  # the most enum values a message lists


class _Owner(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def actions(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class Scope:
    """The actions a condition applies to, and how a message names them (`rule 'x'`)."""

    name: str
    actions: tuple[ActionSpec, ...]


def scope_of(
    loc: Loc,
    rules: Sequence[_Owner],
    batches: Sequence[_Owner],
    catalog: Mapping[str, ActionSpec],
) -> Scope:
    """The scope of the condition at `loc`: a rule's (`when`, `approvers`, `exclude`,
    `break_glass`) or a batch rule's actions; elsewhere every action of the catalog."""
    section, index = loc[0], loc[1] if len(loc) > 1 else None
    owners = {"rules": ("rule", rules), "batches": ("batch rule", batches)}.get(str(section))
    if owners is not None and isinstance(index, int) and index < len(owners[1]):
        owner = owners[1][index]
        specs = tuple(catalog[name] for name in sorted(owner.actions) if name in catalog)
        return Scope(f"{owners[0]} {owner.id!r}", specs)
    return Scope("the catalog", tuple(catalog[name] for name in sorted(catalog)))


@dataclass(frozen=True)
class _Param:
    """Param `path` as one action declares it: its schema, and a validator able to resolve
    references of the action's whole schema."""

    action: str
    schema: Mapping[str, Any]
    validator: Any

    def items(self) -> Mapping[str, Any] | None:
        """The schema of an item, when the param is a list."""
        items = self.schema.get("items")
        kind = self.schema.get("type")
        listed = kind == "array" or (isinstance(kind, list) and "array" in kind)
        if isinstance(items, Mapping):
            return items
        return {} if listed or items is True else None

    def errors(self, value: str, schema: Mapping[str, Any]) -> jsonschema.ValidationError | None:
        """The error that best says why `value` is not valid under `schema` (None: valid);
        a schema that cannot be read counts as refusing it (fail closed)."""
        try:
            found: jsonschema.ValidationError | None = best_match(
                self.validator.evolve(schema=dict(schema)).iter_errors(value)
            )
            return found
        except Exception:  # a reference that does not resolve, a malformed schema: many kinds
            return jsonschema.ValidationError("its schema cannot be read", validator="$ref")

    def meaning(self, value: str) -> tuple[bool, str | None]:
        """Whether the param takes `value` (itself, or as an item), and what it then holds."""
        if self.errors(value, self.schema) is None:
            return True, _meaning(self.schema)
        items = self.items()
        if items is not None and self.errors(value, items) is None:
            return True, _meaning(items) or _meaning(self.schema)
        return False, None

    def why_not(self, name: str, value: str) -> str:
        """How the param's values (an item's, for a list) are described to refuse `value`."""
        items = self.items()
        schema = items if items is not None else self.schema
        error = self.errors(value, schema) or self.errors(value, self.schema)
        what = f"an item of {name}" if items is not None else name
        return f"{self.action}'s {what} is {_described(error, value)}"


def _meaning(schema: Mapping[str, Any]) -> str | None:
    found = schema.get(MEANING)
    return found if isinstance(found, str) else None


def _declared(specs: Iterable[ActionSpec], path: Path) -> list[_Param]:
    """Param `path` (`("params", "account")`) of every action of `specs` that declares it."""
    out = []
    for spec in specs:
        root = spec.params_schema
        kind = jsonschema.validators.validator_for(dict(root))
        validator = kind(dict(root), format_checker=jsonschema.FormatChecker())
        schema: Mapping[str, Any] | None = root
        for key in path[1:]:
            schema = _property(schema, key) if schema is not None else None
        if schema is not None:
            out.append(_Param(spec.name, schema, validator))
    return out


def _property(schema: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """The schema of property `key` of an object `schema`, None when it declares none (or
    says it is something else than an object: `params.reason.code` of a string)."""
    kind = schema.get("type")
    if kind is not None and kind != "object" and not (isinstance(kind, list) and "object" in kind):
        return None
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and key in properties:
        return _schema(properties[key])
    patterned = schema.get("patternProperties")
    if isinstance(patterned, Mapping):
        for pattern, sub in patterned.items():
            try:
                if re.search(str(pattern), key):
                    return _schema(sub)
            except re.error:
                continue
    extra = schema.get("additionalProperties", True)
    return _schema(extra)


def _schema(found: Any) -> Mapping[str, Any] | None:
    """A subschema as a mapping (`true`: anything), None for `false` or no schema."""
    if found is True:
        return {}
    return found if isinstance(found, Mapping) else None


def _name(path: Path) -> str:
    return ".".join(path)


def param_problem(path: Path, value: str, scope: Scope) -> str | None:
    """Why `value` compared with `path` (under `params`) names nothing in `scope`, or None."""
    if len(path) == 1:  # `"x" in params`: a param's name
        if _declared(scope.actions, (*path, value)):
            return None
        return f"{value!r} is tested in params, but no action of {scope.name} has a parameter " + (
            f"{value!r}"
        )
    params = _declared(scope.actions, path)
    if not params:
        return (
            f"{value!r} is compared with {_name(path)}, but no action of {scope.name} has a "
            f"parameter {_name(path[1:])!r}"
        )
    taken = [meaning for taken, meaning in (param.meaning(value) for param in params) if taken]
    if not taken:
        why = "; ".join(dict.fromkeys(param.why_not(_name(path[1:]), value) for param in params))
        return (
            f"{value!r} is compared with {_name(path)}, which never holds it in {scope.name}: {why}"
        )
    shape = _SHAPES.get(_one(taken) or "")
    if shape is not None and shape[0].fullmatch(value) is None:
        return f"{value!r} is compared with {_name(path)}, but {shape[1]}"
    return None


def param_meaning(path: Path, value: str, scope: Scope) -> str | None:
    """What `value` compared with `path` is, when every action of `scope` whose param takes
    it says the same (`MEANING`), else None."""
    if len(path) < 2:
        return None
    params = _declared(scope.actions, path)
    return _one([meaning for taken, meaning in (p.meaning(value) for p in params) if taken])


def _one(meanings: Collection[str | None]) -> str | None:
    found = set(meanings)
    return found.pop() if len(found) == 1 else None


# A platform's prefix of an account ref (`chirp:`), the one search an account ref admits. Not
# looked up: a prefix naming no connected platform matches no account (a gap, in the README).
_PLATFORM = re.compile(r"[a-z][a-z0-9_-]*:")


def search_problem(path: Path, function: str, value: str, scope: Scope) -> str | None:
    """Why `function(path, value)` (a string function on a param) can never hold in `scope`,
    or None: every action's param is an enum none of whose values fits, or a pattern anchored
    at both ends whose values are made of characters `value` is not."""
    if len(path) < 2:
        return None
    params = _declared(scope.actions, path)
    if not params:
        return (
            f"{_name(path)}.{function}({value!r}): no action of {scope.name} has a parameter "
            f"{_name(path[1:])!r}"
        )
    for param in params:
        items = param.items()
        meaning = _meaning(items if items is not None else param.schema) or _meaning(param.schema)
        if meaning == "account-ref" and function == "startsWith" and _PLATFORM.fullmatch(value):
            continue  # `params.account.startsWith("chirp:")`: the accounts of one platform
        if meaning is not None:
            # What names someone or something (an account, a person, a group, a pin) meets a
            # literal only in a comparison, as an attribute does: `params.staff.startsWith
            # ("C-")` read as "contractors" and named no one (attack pol8-F3).
            return (
                f"{_name(path)}.{function}({value!r}): {param.action}'s {_name(path[1:])} holds "
                f"a {meaning}, which a literal meets only in ==, != or in (a prefix or a "
                "pattern names no one)"
            )
    reasons = []
    for param in params:
        items = param.items()
        schema = items if items is not None else param.schema
        why = _search_problem(schema, _meaning(schema) or _meaning(param.schema), function, value)
        if why is None:
            return None
        reasons.append(f"{param.action}'s {why}")
    why = "; ".join(dict.fromkeys(reasons))
    return f"{_name(path)}.{function}({value!r}) is never true in {scope.name}: {why}"


def _search_problem(
    schema: Mapping[str, Any], meaning: str | None, function: str, value: str
) -> str | None:
    """Why `function(value)` holds for no value of `schema` (a param's, or an item's), or
    None; a param of a meaning with a shape (`_SHAPES`) is held to that shape too."""
    enum = schema.get("enum")
    if isinstance(enum, list):
        texts = [item for item in enum if isinstance(item, str)]
        if any(_holds(text, function, value) for text in texts):
            return None
        return f"values are {_listed(texts)}"
    pattern = schema.get("pattern")
    shape = _SHAPES.get(meaning or "")
    if not isinstance(pattern, str) and shape is not None:
        pattern = f"^{shape[0].pattern}$"  # a shape is written to be matched whole
    if isinstance(pattern, str) and function != "matches":
        alphabet = _alphabet(pattern)
        if alphabet is not None:
            missing = sorted({char for char in value if not alphabet(char)})
            if missing:
                shown = "".join(missing)
                return f"values match {pattern}, which holds none of {shown!r}"
    return None


def _holds(text: str, function: str, value: str) -> bool:
    if function == "startsWith":
        return text.startswith(value)
    if function == "endsWith":
        return text.endswith(value)
    if function == "contains":
        return value in text
    try:
        return searches(value, text)
    except RegexError:
        return True  # the compiler refuses what RE2 does not compile; not this check's say


def _listed(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) if not isinstance(v, str) else v for v in values[:_SHOWN])
    return shown + (f" (and {len(values) - _SHOWN} more)" if len(values) > _SHOWN else "")


def _described(error: jsonschema.ValidationError | None, value: str) -> str:
    """What a schema's failed keyword says a value is (`one of active, suspended`)."""
    if error is None:
        return "something else"
    rule, said = str(error.validator), error.validator_value
    if rule == "enum" and isinstance(said, list):
        like = [v for v in said if isinstance(v, str) and v.casefold() == value.casefold()]
        hint = f" (it reads as {like[0]!r})" if like else ""
        return f"one of {_listed(said)}{hint}"
    if rule == "const":
        return f"always {said!r}"
    if rule == "pattern":
        return f"a value matching {said}"
    if rule == "type":
        kinds = said if isinstance(said, list) else [said]
        return f"of type {' or '.join(map(str, kinds))}"
    if rule == "format":
        return f"of format {said}"
    if rule == "$ref":
        return "unreadable (its schema cannot be resolved)"
    return f"held to the schema's {rule} {said!r}"


# --- the characters a pattern's values are made of -------------------------------------------

# Python's own regular expression parser: JSON Schema patterns are run by `re` (jsonschema).
_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")
_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}


class _Alphabet:
    """A test of whether a character may be in a value (a union of character tests)."""

    def __init__(self) -> None:
        self.chars: set[str] = set()
        self.ranges: list[tuple[int, int]] = []
        self.classes: list[str] = []

    def __call__(self, char: str) -> bool:
        return (
            char in self.chars
            or any(low <= ord(char) <= high for low, high in self.ranges)
            or any(re.fullmatch(escape, char) for escape in self.classes)
        )


def _alphabet(pattern: str) -> _Alphabet | None:
    """The characters the values of a pattern anchored at both ends (`^...$`) are made of;
    None when it is not so anchored or holds anything this reading does not follow (any
    character, a negated class, a flag, a back reference): no check then."""
    try:
        parsed = _parser.parse(pattern)
    except re.error:  # a pattern `re` refuses: no request fits it; not this check's say
        return None
    items = list(parsed)
    c = _constants
    if parsed.state.flags & (c.SRE_FLAG_IGNORECASE | c.SRE_FLAG_MULTILINE | c.SRE_FLAG_VERBOSE):
        return None
    if len(items) < 2 or items[0] != (c.AT, c.AT_BEGINNING):
        return None
    if items[-1] not in ((c.AT, c.AT_END), (c.AT, c.AT_END_STRING)):
        return None
    alphabet = _Alphabet()
    if items[-1] == (c.AT, c.AT_END):
        alphabet.chars.add("\n")  # `$` also matches before a final line break
    return alphabet if _collect(items[1:-1], alphabet) else None


def _collect(items: Iterable[tuple[Any, Any]], alphabet: _Alphabet) -> bool:
    """Add the characters `items` may consume to `alphabet`; False when one cannot be read."""
    c = _constants
    for op, av in items:
        if op is c.LITERAL:
            alphabet.chars.add(chr(av))
        elif op is c.IN:
            if not _collect_in(av, alphabet):
                return False
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            if not _collect(av[2], alphabet):
                return False
        elif op is c.SUBPATTERN:
            if av[1] or av[2] or not _collect(av[3], alphabet):
                return False
        elif op is c.ATOMIC_GROUP:
            if not _collect(av, alphabet):
                return False
        elif op is c.BRANCH:
            if not all(_collect(branch, alphabet) for branch in av[1]):
                return False
        elif op in (c.ASSERT, c.ASSERT_NOT, c.AT):
            continue  # consumes nothing: the characters are other items'
        else:
            return False  # ANY, NOT_LITERAL, CATEGORY outside a class, references, ...
    return True


def _collect_in(members: Iterable[tuple[Any, Any]], alphabet: _Alphabet) -> bool:
    c = _constants
    for op, av in members:
        if op is c.LITERAL:
            alphabet.chars.add(chr(av))
        elif op is c.RANGE:
            alphabet.ranges.append((av[0], av[1]))
        elif op is c.CATEGORY and str(av) in _CATEGORIES:
            alphabet.classes.append(_CATEGORIES[str(av)])
        else:
            return False  # a negated class, an unknown member
    return True
