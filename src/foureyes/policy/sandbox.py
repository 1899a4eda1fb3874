"""Check a proposed policy in a child process with a CPU and memory budget.

Compiling a policy runs each condition once on sample values, and analysing it enumerates
decisions: both cost what the policy's author chooses, and a policy update is proposed by a
person, over the API, to a server that answers everyone else from the same event loop. So the
check (`parse_policy`, then `check_invariants` or `check_update`) never runs in a serving
process. It runs in a fresh `python -m foureyes.policy.check_worker`, which caps its own CPU
time and address space with `setrlimit` before reading its input; the parent waits with a
wall-clock timeout (its thread blocks in `communicate`, which holds no GIL and no event loop)
and kills the child on overrun.

Why a subprocess with JSON over stdin/stdout rather than `multiprocessing`: the child starts
from nothing (an `exec`, no fork of a server with open sockets, connections and threads), gets
an empty environment (so no database URL or other secret that settings read from it), and the
interface is plain data both ways, so the parent trusts nothing from it but the verdict: ok, a
list of violation descriptions, or a load error (reason, file, line, field), each checked for
its type and size. Anything else (a crash, a signal, a timeout, output that is not a verdict) is
a refusal: the check fails closed. It costs a Python start (about a second of the budget) per
check; policy updates are rare.

At most `MAX_CONCURRENT` checks run at once per process: each may use its whole memory budget.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import foureyes
from foureyes.errors import BadInput, PolicyError, Unavailable
from foureyes.model import ActionKind, ActionSpec, Staff
from foureyes.policy.catalog import Catalog
from foureyes.policy.celtypes import (
    NULL,
    PRIMITIVES,
    CelType,
    ListType,
    MapType,
    Nullable,
    ObjectType,
    Primitive,
)

__all__ = [
    "WORKER",
    "AccountName",
    "Budget",
    "Verdict",
    "catalog_data",
    "catalog_from_data",
    "check_policy",
    "check_proposal",
    "staff_data",
    "staff_from_data",
]

log = logging.getLogger(__name__)

WORKER = "foureyes.policy.check_worker"
MAX_CONCURRENT = 2
_MAX_OUTPUT = 1 << 20  # a verdict is small; anything longer is not one
_MAX_TEXT = 2000  # longest violation description or error reason passed on
_MAX_ACCOUNTS = 200  # the child's MAX_ACCOUNTS: more is refused there
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT)
# The directory holding the `foureyes` package, for the child's PYTHONPATH (its only variable).
_PACKAGE_ROOT = str(Path(foureyes.__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Budget:
    """What one check may use: CPU seconds and address space in the child, and the wall-clock
    time the parent waits (which also covers the child's start and any wait for a CPU)."""

    cpu_seconds: int = 20
    memory_mib: int = 1024
    wall_seconds: float = 60.0

    def describe(self) -> str:
        return f"{self.cpu_seconds} s CPU, {self.memory_mib} MiB"

    def refusal(self) -> BadInput:
        return BadInput(
            f"the proposed policy could not be checked within its budget ({self.describe()})"
        )


@dataclass(frozen=True)
class AccountName:
    """A literal the proposed text compares with `path` (`account.id`, `account.ref`,
    `account.handle`, `account.platform`, or a param holding an account ref), and
    where (`rule 'x' rules[2].when (proposed policy:31)`): looked up by the parent."""

    value: str
    path: str
    where: str


@dataclass(frozen=True)
class Verdict:
    """What the parent accepts from the child; nothing else crosses."""

    violations: tuple[str, ...] = ()
    error: PolicyError | BadInput | None = field(default=None)
    accounts: tuple[AccountName, ...] = ()


def check_policy(
    proposed: str,
    in_force: tuple[int, str] | None,
    staff: Iterable[Staff],
    catalog: Catalog,
    budget: Budget,
) -> list[str]:
    """The invariant violations (described) of `proposed`, checked against its own invariants
    and those of `in_force` (version, text) in a budgeted child. Raises PolicyError when it
    does not load, BadInput when the check ran out of budget or failed, Unavailable when too
    many checks are running already."""
    return list(check_proposal(proposed, in_force, staff, catalog, budget).violations)


def check_proposal(
    proposed: str,
    in_force: tuple[int, str] | None,
    staff: Iterable[Staff],
    catalog: Catalog,
    budget: Budget,
    channels: Collection[str] | None = None,
) -> Verdict:
    """`check_policy`'s verdict whole: with the account names the text compares with, which
    the caller looks up on their platforms (the child has no connector). `channels`: the
    server's notification channel names, which the text's `notify:` names are held to (None:
    not held, `notify_channels.check_notify_channels`)."""
    request = {
        "proposed": proposed,
        "in_force": None if in_force is None else {"version": in_force[0], "text": in_force[1]},
        "staff": [staff_data(person) for person in staff],
        "catalog": catalog_data(catalog),
        "channels": None if channels is None else sorted(channels),
    }
    command = [sys.executable, "-s", "-m", WORKER]
    verdict = run_child(command, json.dumps(request).encode("utf-8"), budget)
    if verdict.error is not None:
        raise verdict.error
    return verdict


def run_child(command: Sequence[str], payload: bytes, budget: Budget) -> Verdict:
    """Run `command` + the budget arguments with `payload` on stdin, within `budget`; its
    verdict, or BadInput (fail closed) for anything but a well-formed one."""
    if not _SLOTS.acquire(timeout=budget.wall_seconds):
        raise Unavailable("too many policy checks are running; try again in a minute")
    try:
        return _run(command, payload, budget)
    finally:
        _SLOTS.release()


def _run(command: Sequence[str], payload: bytes, budget: Budget) -> Verdict:
    argv = [*command, str(budget.cpu_seconds), str(budget.memory_mib * 1024 * 1024)]
    try:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PYTHONPATH": _PACKAGE_ROOT},
            close_fds=True,
        )
    except OSError as exc:
        log.error("policy check: cannot start the checker: %s", exc)
        raise BadInput(
            "the proposed policy could not be checked: the checker did not start"
        ) from None
    try:
        out, err = child.communicate(payload, timeout=budget.wall_seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        log.warning("policy check: over its wall-clock budget (%s s), killed", budget.wall_seconds)
        raise budget.refusal() from None
    if child.returncode < 0:  # a signal: SIGXCPU/SIGKILL at the CPU limit, an abort out of memory
        log.warning("policy check: the checker ended by signal %d", -child.returncode)
        raise budget.refusal()
    if child.returncode != 0 or len(out) > _MAX_OUTPUT:
        tail = err[-500:].decode("utf-8", "replace").strip().rsplit("\n", 1)[-1]
        log.error("policy check: the checker failed (exit %d): %s", child.returncode, tail)
        raise BadInput("the proposed policy could not be checked: the checker failed")
    verdict = _verdict(out)
    if verdict is None:
        log.error("policy check: the checker's answer is not a verdict")
        raise BadInput("the proposed policy could not be checked: the checker failed")
    if isinstance(verdict, str):  # "budget": out of memory or recursion depth
        raise budget.refusal()
    return verdict


def _verdict(out: bytes) -> Verdict | str | None:
    """The child's answer if it is exactly one of the verdict shapes, else None."""
    try:
        data = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        return None
    if data["ok"]:
        if set(data) == {"ok"}:
            return Verdict()
        return _accounts(data["accounts"]) if set(data) == {"ok", "accounts"} else None
    if set(data) == {"ok", "budget"} and data["budget"] is True:
        return "budget"
    if set(data) == {"ok", "violations"}:
        violations = data["violations"]
        if (
            isinstance(violations, list)
            and violations
            and all(isinstance(v, str) for v in violations)
        ):
            return Verdict(violations=tuple(_short(v) for v in violations))
        return None
    if set(data) == {"ok", "error"} and isinstance(data["error"], dict):
        return _error(data["error"])
    return None


# The fields whose literals the parent looks up (`foureyes.policy.literals.ACCOUNT_PATHS`),
# and params holding an account ref (`params.account`: looked up as `account.ref` is).
_ACCOUNT_PATHS = frozenset({"account.id", "account.ref", "account.handle", "account.platform"})
_PARAM_PATH = re.compile(r"params(\.[^.]+)+")


def _accounts(items: Any) -> Verdict | None:
    """An ok verdict with the account names the text compares with, if well formed."""
    if not isinstance(items, list) or not items or len(items) > _MAX_ACCOUNTS:
        return None
    names = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"value", "path", "where"}:
            return None
        value, path, where = item["value"], item["path"], item["where"]
        if not all(isinstance(v, str) for v in (value, path, where)):
            return None
        known = path in _ACCOUNT_PATHS or _PARAM_PATH.fullmatch(path) is not None
        if not known or len(value) > _MAX_TEXT or len(path) > _MAX_TEXT:
            return None
        names.append(AccountName(value, path, _short(where)))
    return Verdict(accounts=tuple(names))


def _error(error: Mapping[str, Any]) -> Verdict | None:
    reason = error.get("reason")
    file, line, where = error.get("file"), error.get("line"), error.get("field")
    if not isinstance(reason, str) or not set(error) <= {"reason", "file", "line", "field"}:
        return None
    if not all(v is None or isinstance(v, str) for v in (file, where)):
        return None
    if not (line is None or (isinstance(line, int) and not isinstance(line, bool))):
        return None
    if file is None and line is None and where is None and set(error) == {"reason"}:
        return Verdict(error=BadInput(_short(reason)))
    return Verdict(
        error=PolicyError(
            _short(reason),
            file=None if file is None else _short(file),
            line=line,
            field=None if where is None else _short(where),
        )
    )


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


# ---------------------------------------------------------------- data both sides agree on


def staff_data(person: Staff) -> dict[str, Any]:
    return {
        "id": person.id,
        "name": person.name,
        "email": person.email,
        "groups": list(person.groups),
        "employment": person.employment,
        "vendor": person.vendor,
        "region": person.region,
        "manager": person.manager,
        "starts": None if person.starts is None else person.starts.isoformat(),
        "ends": None if person.ends is None else person.ends.isoformat(),
        "status": person.status,
        "identities": list(person.identities),
        "attributes": dict(person.attributes),
    }


def staff_from_data(data: Mapping[str, Any]) -> Staff:
    def day(value: Any) -> date | None:
        return None if value is None else date.fromisoformat(value)

    return Staff(
        id=data["id"],
        name=data["name"],
        email=data["email"],
        groups=tuple(data["groups"]),
        employment=data["employment"],
        vendor=data["vendor"],
        region=data["region"],
        manager=data["manager"],
        starts=day(data["starts"]),
        ends=day(data["ends"]),
        status=data["status"],
        identities=tuple(data["identities"]),
        attributes=dict(data["attributes"]),
    )


def catalog_data(catalog: Catalog) -> dict[str, Any]:
    return {
        "actions": [
            {
                "name": spec.name,
                "kind": spec.kind.value,
                "reversible_by": spec.reversible_by,
                "irreversible": spec.irreversible,
                "reveals_private": spec.reveals_private,
                "params_schema": spec.params_schema,
                "description": spec.description,
            }
            for spec in catalog.actions.values()
        ],
        "account_attributes": {
            name: _type_data(kind) for name, kind in catalog.account_attributes.items()
        },
        "public_attributes": sorted(catalog.public_attributes),
    }


def catalog_from_data(data: Mapping[str, Any]) -> Catalog:
    actions = {
        item["name"]: ActionSpec(
            name=item["name"],
            kind=ActionKind(item["kind"]),
            reversible_by=item["reversible_by"],
            irreversible=item["irreversible"],
            reveals_private=item["reveals_private"],
            params_schema=item["params_schema"],
            description=item["description"],
        )
        for item in data["actions"]
    }
    attributes = {name: _type_from(kind) for name, kind in data["account_attributes"].items()}
    return Catalog(
        actions=actions,
        account_attributes=attributes,
        public_attributes=frozenset(data["public_attributes"]),
    )


def _type_data(kind: CelType) -> Any:
    if isinstance(kind, Primitive):
        return kind.name
    if isinstance(kind, ListType):
        return {"list": _type_data(kind.elem)}
    if isinstance(kind, MapType):
        return {"map": [_type_data(kind.key), _type_data(kind.value)]}
    if isinstance(kind, Nullable):
        return {"nullable": _type_data(kind.inner)}
    if isinstance(kind, ObjectType):
        return {"object": {name: _type_data(inner) for name, inner in kind.fields.items()}}
    raise TypeError(f"no data form for type {kind}")  # pragma: no cover - a new CelType


def _type_from(data: Any) -> CelType:
    if isinstance(data, str):
        return NULL if data == NULL.name else PRIMITIVES[data]
    if "list" in data:
        return ListType(_type_from(data["list"]))
    if "map" in data:
        return MapType(_type_from(data["map"][0]), _type_from(data["map"][1]))
    if "nullable" in data:
        return Nullable(_type_from(data["nullable"]))
    return ObjectType({name: _type_from(inner) for name, inner in data["object"].items()})
