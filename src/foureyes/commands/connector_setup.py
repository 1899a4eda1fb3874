"""The connector part of `foureyes init`: which platform, with which options, checked before
anything is written.

`gather` turns `--connector`, `--platform` and `--set key=value` (and, when stdin is a
terminal, answers to prompts) into the `[connectors.<platform>]` table to write, following the
connector's own `SETUP` (`foureyes.connectors.setup`). Secrets never go into that table: a
secret option is given as `<name>_file` or `<name>_env`; one typed at the prompt is kept in
memory until `write_secrets` puts it in `<data_dir>/secrets/` (mode 0600) and the table names
that file. `check` builds the connector as `serve` will, asks the platform whether it answers
and takes the credentials (`Connector.probe`, unless skipped), and compiles the policy against
the connector's actions and attributes: all before `init` writes a byte.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foureyes.bootstrap import build_services
from foureyes.config import ConnectorSettings
from foureyes.connectors.base import has_probe
from foureyes.connectors.setup import (
    ConnectorSetup,
    installed_kinds,
    kind_for_policy,
    setup_for,
)
from foureyes.errors import BadInput, ConnectorError
from foureyes.policy.catalog import FOUREYES_PLATFORM
from foureyes.policy.compiler import parse_new_policy
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database

__all__ = ["Ask", "Plan", "check", "gather", "write_secrets"]

SECRETS_DIR = "secrets"
_PLATFORM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
DEFAULT_KIND = "demo"

# A prompt: (question, default, hidden) → the answer. None where stdin is not a terminal.
Ask = Callable[[str, str | None, bool], str]


@dataclass
class Plan:
    """One connector to set up: the table to write, and the typed secrets to write with it."""

    setup: ConnectorSetup
    platform: str
    table: dict[str, Any]
    typed: dict[str, str] = field(default_factory=dict, repr=False)
    checked: str = "not checked"  # what `check` could say of the platform, for the report

    def secret_file(self, name: str) -> str:
        """Where a typed secret goes, relative to the data directory."""
        return f"{SECRETS_DIR}/{self.platform}-{name}"


def _value(text: str) -> Any:
    """A `--set` value: a TOML value where it is one (`30`, `true`, `["a", "b"]`), else text."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    return value if isinstance(value, str | bool | int | float | list | dict) else text


def _pairs(pairs: list[str]) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(
                "--set takes key=value; one value given has no `=` (it is not shown here, in "
                "case it is a secret)"
            )
        key = key.strip()
        value = _value(text)
        if key.endswith("_file") and isinstance(value, str):
            value = str(Path(value).expanduser().absolute())  # as typed: from here
        given[key] = value
    return given


def gather(kind: str | None, platform: str | None, pairs: list[str], ask: Ask | None) -> Plan:
    """The connector to set up from the flags, asking (through `ask`) for what they leave out;
    without `ask`, what is missing is a BadInput naming it."""
    if kind is None:
        kind = (
            DEFAULT_KIND
            if ask is None
            else ask(f"connector kind ({', '.join(installed_kinds())})", DEFAULT_KIND, False)
        )
    setup = setup_for(kind.strip())
    name = platform or (
        setup.platform if ask is None else ask("platform name", setup.platform, False)
    )
    name = name.strip()
    if not _PLATFORM_NAME.fullmatch(name):
        raise BadInput(f"platform name {name!r}: a-z, 0-9, - and _ only, at most 50")
    if name == FOUREYES_PLATFORM:
        raise BadInput(f"platform name {name!r} is foureyes' own (its pins, policy and staff)")
    given = _pairs(pairs)
    for secret in setup.secrets():
        if secret in given:
            raise BadInput(
                f"--set {secret}=…: give the secret as {secret}_file (a file only foureyes "
                f"reads) or {secret}_env (a variable's name), never on the command line"
            )
    plan = Plan(setup, name, {"kind": setup.kind})
    missing: list[str] = []
    for option in setup.options:
        if option.secret:
            if f"{option.name}_file" in given or f"{option.name}_env" in given:
                continue
            if ask is not None:
                plan.typed[option.name] = ask(f"{option.name} ({option.help})", None, True)
            elif option.required:
                missing.append(f"{option.name}_file or {option.name}_env")
            continue
        if option.name in given:
            continue
        if ask is not None:
            answer = ask(f"{option.name} ({option.help})", option.default or "", False).strip()
            if answer:
                given[option.name] = _value(answer)
            elif option.required:
                missing.append(option.name)
        elif option.required:
            missing.append(option.name)
    if missing:
        raise BadInput(
            f"the {setup.kind} connector needs {', '.join(missing)}: give them with --set "
            "key=value (or run `foureyes init` in a terminal to be asked)"
        )
    plan.table.update(given)
    for name_, typed in plan.typed.items():
        if not typed:
            raise BadInput(f"the {setup.kind} connector's {name_} is empty")
        plan.table[f"{name_}_file"] = plan.secret_file(name_)
    return plan


def _resolved(plan: Plan) -> dict[str, Any]:
    """The options the connector will be built with, the typed secrets included (in memory)."""
    table = {k: v for k, v in plan.table.items() if k != "kind"}
    for name in plan.typed:
        table.pop(f"{name}_file", None)
    options = ConnectorSettings(kind=plan.setup.kind, options=table).resolved(os.environ)
    options.update(plan.typed)
    return options


def check(
    plan: Plan, policy_text: str, staff_file: Path | None, *, probe: bool, policy_name: str = ""
) -> None:
    """Refuse (BadInput, one line) a set-up that `serve` could not run: options the connector
    refuses, a platform that does not answer or refuses the credentials (unless `probe` is
    False), a policy that does not compile against this connector, a staff file that does not
    load. Writes nothing."""
    options = _resolved(plan)
    database = Database(
        "sqlite://"
    )  # the connector's catalog needs a store; this one is thrown away
    try:
        services = build_services(database, connectors={plan.platform: (plan.setup.kind, options)})
        connector = services.connectors[plan.platform]
        try:
            plan.checked = (
                "in foureyes' own database"
                if plan.setup.needs_database
                else "not checked (--skip-check)"
                if not probe
                else f"not checked: the {plan.setup.kind} connector has no probe"
                if not has_probe(connector)
                else "reached"
            )
            if plan.checked == "reached":
                try:
                    connector.probe()
                except ConnectorError as exc:
                    raise BadInput(
                        f"cannot reach {plan.platform}: {exc.message}; nothing was written "
                        "(--skip-check sets it up anyway)"
                    ) from None
            hint = _hint(plan, policy_name)
            try:
                parse_new_policy(policy_text, services.catalog(), file="the policy")
            except BadInput as exc:
                raise BadInput(f"{exc.message}{hint}") from None
        finally:
            connector.close()
    finally:
        database.dispose()
    if staff_file is not None:
        load_directory(staff_file)


def _hint(plan: Plan, policy_name: str) -> str:
    """What to say after a policy that does not compile against the connector set up."""
    other = kind_for_policy(policy_name) if policy_name else None
    if other is not None and other != plan.setup.kind:
        return f" ({policy_name} is for --connector {other}; this set-up is {plan.setup.kind})"
    if plan.setup.policy is not None:
        return f" (for {plan.setup.kind}: --policy {plan.setup.policy})"
    return ""


def write_secrets(plan: Plan, root: Path) -> list[Path]:
    """Write the typed secrets into `<root>/secrets/` (directory 0700, files 0600, never
    readable by others even for a moment); the files made, to remove if `init` fails."""
    made: list[Path] = []
    if not plan.typed:
        return made
    directory = root / SECRETS_DIR
    # Never through a symlink (lstat, O_NOFOLLOW): a `secrets` link planted to a directory
    # someone else can read would receive the platform's credentials (attack run on #18).
    if directory.is_symlink():
        raise BadInput(
            f"{directory} is a symbolic link: foureyes writes secrets only into a real "
            "directory of its own; remove the link"
        )
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        made.append(directory)
    elif not directory.is_dir():
        raise BadInput(f"{directory} exists and is not a directory")
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        remove(made)
        raise BadInput(f"{directory}: cannot open it: {exc.strerror}") from None
    try:
        os.fchmod(dir_fd, 0o700)  # an existing one too: the umask, or someone, loosened it
        for name, secret in plan.typed.items():
            path = root / plan.secret_file(name)
            try:
                # O_EXCL|O_NOFOLLOW: never an existing file, never a link (dangling or not).
                fd = os.open(
                    path.name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                    0o600,
                    dir_fd=dir_fd,
                )
            except FileExistsError:
                remove(made)
                raise BadInput(
                    f"{path} exists already: remove it, or give {name}_file={path} instead"
                ) from None
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secret + "\n")
            made.insert(0, path)
    finally:
        os.close(dir_fd)
    return made


def remove(paths: list[Path]) -> None:
    """Undo `write_secrets` (files first, then the directory if it was made)."""
    for path in paths:
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)


def connector_differences(existing: Mapping[str, Any], plan: Plan, root: Path) -> list[str]:
    """What an existing settings file's connectors say that differs from `plan` (empty when
    they are exactly the one `plan` would write): a re-run of `init` with other options must
    not keep the old ones silently (attack run on #18). Names only, never values (an option
    may be a secret's path, or the secret pasted there)."""
    differs = [f"[connectors.{name}] is also set up" for name in existing if name != plan.platform]
    found = existing.get(plan.platform)
    if found is None:
        return [f"it names no [connectors.{plan.platform}]", *differs]
    if getattr(found, "kind", None) != plan.setup.kind:
        return [f"[connectors.{plan.platform}] is a {getattr(found, 'kind', '?')} connector"]
    old: Mapping[str, Any] = getattr(found, "options", {}) or {}
    # As `Settings.load` reads them: a `…_file` anchored at the data directory.
    new = {
        k: str(root / Path(v).expanduser()) if k.endswith("_file") and isinstance(v, str) else v
        for k, v in plan.table.items()
        if k != "kind"
    }
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        differs.insert(0, f"[connectors.{plan.platform}] has other {', '.join(changed)}")
    return differs
