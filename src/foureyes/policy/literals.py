"""What the literals of a new policy text name: a value compared with an id names someone.

The wording rule (`foureyes.policy.wording`) holds a new text's characters; this module holds
its values. A deny rule `staff.id in ["c-1OO1"]` (letters O), `account.id == "President"`
(the platform's account is `president`) reads as a protection and matches nobody (attack
names F5). So, for a text about to be accepted:

- a string literal compared (`==`, `!=`, `in` a list, an element of a list a macro ranges
  over) with a staff id (`staff.id`, `approver.id`, `requester.id`, and the `manager` fields,
  which hold one) is the id of someone in the directory, exactly; else it is refused, naming
  the id it looks like (`login_skeleton`: case, separators, `0`/`o`, `1`/`l`/`i`) or the
  person whose login it is;
- any string literal of any condition that looks like a staff id under that skeleton and is
  not that id is refused, wherever it stands (inside a macro, a function call);
- a literal compared with a group (`"g" in staff.groups`) that nobody holds and that folds
  (`foureyes.text.folding.fold`) like a group someone holds is refused; one that folds like
  none is only reported (`unheld_groups`): a policy may name a group before HR fills it;
- a literal compared with a directory field (`email`, `name`, `identities`, `region`,
  `vendor`) that no one holds and that folds like a value someone holds is refused; one that
  folds like none is only reported (`unheld_values`; attack names R5-2); so is a region the
  settings name (`detectors.off_hours.regions`, `setting_literals`; attack pol7-F3);
- which comparisons there are is `foureyes.policy.comparisons`' reading (a new text uses only
  forms it attributes: R5-1); closed domains (action names, employment, tiers) are held by the
  compiler (`foureyes.policy.domains`);
- a literal compared with `account.id`, `account.ref`, `account.handle` or `account.platform`
  (`account_literals`) must name an
  account its platform resolves exactly, which only a running foureyes can ask
  (`foureyes.workflow.governance`, at submission and execution); `foureyes policy check` is
  offline and lists them;
- a literal compared with a param that says what it holds (`param_domains`, pol7-F1) is
  checked as the field of that meaning: a staff id (`params.staff` of `foureyes.staff.update`)
  names someone, a group reads as no held group it is not, an account ref (`params.account`
  of `foureyes.account.pin`) is looked up like an `account.ref` literal.

A literal can meet a field only in a comparison: a new text may not use `startsWith`,
`endsWith`, `contains`, `matches` or an ordering between a literal and a field (`comparisons`,
attack r6 R6-1), so there is no prefix or pattern to check. On `params` they stay (a request's
own text); their literals still meet the look-alike rule. Deliberate gap: a group nobody holds
is not refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from foureyes.errors import PolicyError
from foureyes.policy.cel.lexer import CelSyntaxError
from foureyes.policy.comparisons import Path, read
from foureyes.policy.compiler import Policy
from foureyes.policy.conditions import Condition
from foureyes.policy.detector_settings import setting_regions
from foureyes.policy.directory import Directory, login_skeleton
from foureyes.policy.param_domains import AS_FIELD, param_meaning, scope_of
from foureyes.policy.yamlsource import Loc, dotted
from foureyes.text.folding import fold

__all__ = [
    "ACCOUNT_PATHS",
    "DIRECTORY_PATHS",
    "GROUP_PATHS",
    "ID_PATHS",
    "Compared",
    "account_literals",
    "check_staff_literals",
    "compared_literals",
    "setting_literals",
    "unheld_groups",
    "unheld_values",
]

_PEOPLE = ("staff", "approver", "requester")
# What holds a staff id: a person's own and their manager's.
ID_PATHS = frozenset((who, name) for who in _PEOPLE for name in ("id", "manager"))
GROUP_PATHS = frozenset((who, "groups") for who in _PEOPLE)
ACCOUNT_PATHS = frozenset(
    {("account", "id"), ("account", "ref"), ("account", "handle"), ("account", "platform")}
)
# Directory fields with an open domain: a literal held by no one is reported, one that folds
# like a value someone holds is refused (attack names R5-2).
_FIELDS = ("email", "name", "identities", "region", "vendor")
DIRECTORY_PATHS = frozenset((who, name) for who in _PEOPLE for name in _FIELDS)
_CHECKED = ID_PATHS | GROUP_PATHS | ACCOUNT_PATHS | DIRECTORY_PATHS


@dataclass(frozen=True)
class Compared:
    """A string literal `value` compared, in the condition at `loc`, with `path`; `domain` is
    the field whose values it is checked against: `path` itself, or for a param that says what
    it holds, that field (`params.account` of `foureyes.account.pin`: `account.ref`)."""

    loc: Loc
    path: Path
    value: str
    domain: Path

    def where(self, policy: Policy) -> str:
        return policy.located(f"{_owner(policy, self.loc)}{dotted(self.loc)}", self.loc)


@dataclass(frozen=True)
class _Found:
    compared: list[tuple[Path, str]]
    literals: list[str]


def conditions(policy: Policy) -> Iterator[tuple[Loc, Condition]]:
    """Every condition of `policy` with the field it is written in."""
    for i, tier in enumerate(policy.tiers):
        yield ("tiers", i, "when"), tier.condition
    for i, rule in enumerate(policy.rules):
        loc: Loc = ("rules", i)
        yield (*loc, "when"), rule.condition
        if rule.approvers is not None:
            yield (*loc, "approvers"), rule.approvers
        if rule.exclude is not None:
            yield (*loc, "exclude"), rule.exclude
        if rule.break_glass is not None:
            yield (*loc, "break_glass", "allowed_when"), rule.break_glass.allowed_when
        if rule.escalation is not None:
            yield (*loc, "escalate", "to"), rule.escalation.to
    for i, batch in enumerate(policy.batches):
        yield ("batches", i, "when"), batch.when
        yield ("batches", i, "approvers"), batch.approvers
    for i, invariant in enumerate(policy.invariants):
        if invariant.staff is not None:
            yield ("invariants", i, "staff"), invariant.staff


def _found(policy: Policy) -> Iterator[tuple[Loc, _Found]]:
    for loc, condition in conditions(policy):
        try:
            tree = read(condition.source)
        except (CelSyntaxError, RecursionError):
            # Valid CEL foureyes' own parser does not read (a leading dot, message
            # construction, very deep nesting): what it compares cannot be read, so a new
            # text may not hold it (deny by default).
            raise _error(
                policy,
                loc,
                "foureyes cannot read which values this condition compares ids, accounts and "
                "groups with: write it in plain CEL (no leading dot, no message construction, "
                "less nesting)",
            ) from None
        yield loc, _Found(tree.compared, tree.literals)


def compared_literals(policy: Policy) -> list[Compared]:
    """Every string literal compared with a staff id, a group or an account (a param holding
    one included), in order."""
    out = []
    for loc, found in _found(policy):
        for path, value in found.compared:
            domain = _domain(policy, loc, path, value)
            if domain in _CHECKED:
                out.append(Compared(loc, path, value, domain))
    return out


def _domain(policy: Policy, loc: Loc, path: Path, value: str) -> Path:
    """The field whose values `value` compared with `path` at `loc` is checked against: for a
    param, the field of what it holds when its actions say (`param_domains`), else `path`."""
    if path[0] != "params":
        return path
    scope = scope_of(loc, policy.rules, policy.batches, policy.catalog.actions)
    meaning = param_meaning(path, value, scope)
    return AS_FIELD.get(meaning, path) if meaning is not None else path


def account_literals(policy: Policy) -> list[Compared]:
    """The literals compared with `account.id`, `account.ref`, `account.handle`,
    `account.platform`, or a param holding an account ref (each once): the server looks each
    up on its platform, a param's as an `account.ref` (`workflow.policy_accounts`)."""
    seen: dict[tuple[Path, str], Compared] = {}
    for item in compared_literals(policy):
        if item.domain in ACCOUNT_PATHS:
            seen.setdefault((item.path, item.value), item)
    return list(seen.values())


def check_staff_literals(policy: Policy, directory: Directory) -> None:
    """PolicyError (file, line, field, rule) for the first literal of `policy` that reads as
    a staff id or a group of `directory` it is not, or is compared with a staff id and names
    no one, or that it or a setting (`setting_literals`) names as a directory value that no
    one holds and that folds like a held one (the module's rule)."""
    people = directory.staff
    skeletons = {login_skeleton(staff_id): staff_id for staff_id in sorted(people)}
    logins = {login: p.id for p in people.values() for login in p.identities}
    held = {group for p in people.values() for group in p.groups}
    folded = {fold(group): group for group in sorted(held)}
    for loc, found in _found(policy):
        for value in found.literals:
            like = skeletons.get(login_skeleton(value))
            if like is not None and like != value:
                raise _error(policy, loc, f"{value!r} reads as staff id {like!r}, which it is not")
        for path, value in found.compared:
            name = ".".join(path)
            domain = _domain(policy, loc, path, value)
            if domain in ID_PATHS and value not in people:
                owner = logins.get(value)
                why = (
                    f"it is a login of {owner!r}, not a staff id"
                    if owner is not None
                    else "no one in the directory has that id"
                )
                raise _error(policy, loc, f"{value!r} is compared with {name}, but {why}")
            if domain in GROUP_PATHS and value not in held:
                like = folded.get(fold(value))
                if like is not None:
                    raise _error(
                        policy,
                        loc,
                        f"group {value!r} is held by no one and reads as group {like!r}",
                    )
            like = _folds_like_held(directory, path, value)
            if like is not None:
                raise _error(
                    policy,
                    loc,
                    f"{value!r} is compared with {name}, but no one's {path[1]} is "
                    f"{value!r}; it reads as {like!r}, which someone's is: write the "
                    "directory's value exactly",
                )
    for item in setting_literals(policy):
        like = _folds_like_held(directory, item.path, item.value)
        if like is not None:
            raise _error(
                policy,
                item.loc,
                f"{item.value!r} names a {item.path[1]}, but no one's {item.path[1]} is "
                f"{item.value!r}; it reads as {like!r}, which someone's is: write the "
                "directory's value exactly",
            )


def _folds_like_held(directory: Directory, path: Path, value: str) -> str | None:
    """The value of the directory field `path` someone holds that `value`, held by no one,
    folds like; None when `value` is held, folds like none, or `path` is no such field."""
    if path not in DIRECTORY_PATHS:
        return None
    values = _held(directory, path[1])
    if value in values:
        return None
    return next((v for v in sorted(values) if fold(v) == fold(value)), None)


def _held(directory: Directory, name: str) -> set[str]:
    """The values of the directory field `name` (one of `_FIELDS`) someone holds."""
    out: set[str] = set()
    for person in directory.staff.values():
        value = getattr(person, name)
        if isinstance(value, str):
            out.add(value)
        elif isinstance(value, tuple):
            out.update(item for item in value if isinstance(item, str))
    return out


def setting_literals(policy: Policy) -> list[Compared]:
    """The directory values a policy's settings name (`detector_settings.setting_regions`: the
    regions of `detectors.off_hours`), each as the field it is held to (`staff.region`)."""
    return [
        Compared(loc, ("staff", "region"), region, ("staff", "region"))
        for loc, region in setting_regions(policy.document)
    ]


def unheld_values(policy: Policy, directory: Directory) -> list[Compared]:
    """Literals compared with a directory field (email, name, identities, region, vendor), and
    values the settings name (`setting_literals`), that no one in `directory` holds exactly
    (reported, not refused: a deployment may name a value before anyone holds it; one that
    folds like a held value is refused by `check_staff_literals`)."""
    return [
        item
        for item in compared_literals(policy) + setting_literals(policy)
        if item.path in DIRECTORY_PATHS and item.value not in _held(directory, item.path[1])
    ]


def unheld_groups(policy: Policy, directory: Directory) -> list[Compared]:
    """Literals compared with a group nobody in `directory` holds (reported, not refused)."""
    held = {group for p in directory.staff.values() for group in p.groups}
    return [
        item
        for item in compared_literals(policy)
        if item.domain in GROUP_PATHS and item.value not in held
    ]


def _owner(policy: Policy, loc: Loc) -> str:
    """`rule 'x' ` for a field of rule x (tier, batch rule, invariant alike), else ''."""
    section, index = loc[0], loc[1] if len(loc) > 1 else None
    if not isinstance(index, int):
        return ""
    if section == "rules" and index < len(policy.rules):
        return f"rule {policy.rules[index].id!r} "
    if section == "tiers" and index < len(policy.tiers):
        return f"tier {policy.tiers[index].name!r} "
    if section == "batches" and index < len(policy.batches):
        return f"batch rule {policy.batches[index].id!r} "
    if section == "invariants" and index < len(policy.invariants):
        return f"invariant {policy.invariants[index].spec.id!r} "
    return ""


def _error(policy: Policy, loc: Loc, message: str) -> PolicyError:
    owner = _owner(policy, loc).strip()
    return PolicyError(
        f"{owner}: {message}" if owner else message,
        file=policy.source_file,
        line=policy.lines.get(loc),
        field=dotted(loc),
    )
