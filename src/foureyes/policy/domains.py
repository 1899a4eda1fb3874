"""The closed domains of the fields a new text compares literals with (attack names R5-2).

`approver.employment == "Contractor"` (the directory says `contractor`), `action.name in
["account.Delete"]`, `account.tier == "VIT"`, `"Protected" in account.pins` read as a rule and
match nothing. A field whose values are a closed set known when the text is compiled refuses
a literal outside it, in every new text (`domain_problem`, called by the compiler):

- `action.name`: the catalog's actions; `action.kind`: read, write;
- `employment`, `status` of staff, approver, requester: the model's values;
- `account.tier`: the text's own tier names;
- `account.pins`: a pin's name shape (lower case, `^[a-z][a-z0-9_-]*$`, as a pin is made);
- `context.weekday`: mon .. sun.

Fields whose domain only a running foureyes or its directory knows are checked elsewhere:
staff ids, groups and directory values (`foureyes.policy.literals`), account ids, refs, handles
and platforms (looked up at submission, `foureyes.workflow.policy_accounts`).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from foureyes.model import WEEKDAYS, ActionKind, Employment, StaffStatus
from foureyes.policy.comparisons import Path

__all__ = ["domain_problem", "pin_problem", "tier_problem"]

_PEOPLE = ("staff", "approver", "requester")
_PIN = re.compile(r"[a-z][a-z0-9_-]{0,49}")


def domain_problem(
    path: Path, value: str, *, actions: Collection[str], tiers: Collection[str]
) -> str | None:
    """Why `value` compared with `path` names nothing, or None (also for an open field)."""
    domain: Collection[str] | None = None
    if path == ("action", "name"):
        domain = actions
    elif path == ("action", "kind"):
        domain = [kind.value for kind in ActionKind]
    elif len(path) == 2 and path[0] in _PEOPLE and path[1] == "employment":
        domain = [kind.value for kind in Employment]
    elif len(path) == 2 and path[0] in _PEOPLE and path[1] == "status":
        domain = [status.value for status in StaffStatus]
    elif path == ("account", "tier"):
        domain = tiers
    elif path == ("context", "weekday"):
        domain = WEEKDAYS
    elif path == ("account", "pins"):
        if not is_pin(value):
            return (
                f"{value!r} is compared with account.pins, but a pin's name is lower case "
                "(letters, digits, - and _): no account carries this pin"
            )
        return None
    if domain is None or value in domain:
        return None
    name = ".".join(path)
    like = [known for known in domain if known.casefold() == value.casefold()]
    hint = f" (it reads as {like[0]!r})" if like else ""
    shown = ", ".join(sorted(domain)) if len(domain) <= 12 else f"{len(domain)} values"
    return (
        f"{value!r} is compared with {name}, which is never {value!r}{hint}: it is one of {shown}"
    )


def is_pin(value: str) -> bool:
    """Whether `value` has a pin's name shape (as a pin is made)."""
    return _PIN.fullmatch(value) is not None


def pin_problem(value: str) -> str | None:
    """Why `value`, written where a setting names a pin (`detectors.protected_touched.pins`),
    names no pin any account carries, or None."""
    if is_pin(value):
        return None
    return (
        f"{value!r} is no pin: a pin's name is lower case (letters, digits, - and _), so no "
        "account carries it"
    )


def tier_problem(value: str, tiers: Collection[str]) -> str | None:
    """Why `value`, written where a setting names a tier, is none of the text's `tiers`."""
    if value in tiers:
        return None
    like = [known for known in tiers if known.casefold() == value.casefold()]
    hint = f" (it reads as {like[0]!r})" if like else ""
    return f"{value!r} is no tier of this policy{hint}: its tiers are {', '.join(sorted(tiers))}"
