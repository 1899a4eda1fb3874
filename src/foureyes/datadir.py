"""`foureyes init`: a data directory, its settings, the log signing key and a migrated database.

The first policy and staff directory are the only ones ever loaded without approval, so this is
allowed exactly once per database: `initialize` refuses a database that already holds staff or
policy versions. Until that happens it may be run again (say, after the database was down): it
keeps what an earlier run wrote (settings file, signing key, copied examples) and refuses only
when the arguments contradict the settings file.

Order: inputs are checked, the directory made, the database migrated and found empty, and only
then are files written, so a refused run leaves no files behind; `seed` (the lifecycle's loading
of the first policy and staff directory) runs last.

On PostgreSQL with an `owner_database_url` (the schema owner), the migrations run as the owner,
which then grants the runtime role of `database_url` what `serve` and `worker` need, and the
runtime role is checked as they will check it (`foureyes.store.roles`). Without one, the one
URL's role owns the schema, and `serve` and `worker` will refuse it (a demo excepted).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from sqlalchemy import exists, select

from foureyes.audit.checkpoint import Signer, signer_from_file
from foureyes.auth.keyfile import console_key
from foureyes.config import CONFIG_FILE, DEFAULT_LOG_ORIGIN, Settings, anchor_sqlite, safe_url
from foureyes.errors import BadInput
from foureyes.store import migrate, roles
from foureyes.store.database import Database
from foureyes.store.tables import PolicyVersionRow, StaffRow

__all__ = ["EXAMPLE_POLICY", "EXAMPLE_STAFF", "InitReport", "Seed", "initialize"]

Seed = Callable[[Database], None]

# The demo policy and staff directory, shipped inside the package (copies of examples/).
EXAMPLE_POLICY = "policy.yaml"
EXAMPLE_STAFF = "staff.yaml"
_DEMO_CONNECTOR = "chirp"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class InitReport:
    """What `initialize` did. Holds no secret: `verifier_key` is the public half of the key."""

    data_dir: Path
    config_file: Path
    database_url: str  # password masked
    revision: str
    policy_file: Path
    staff_file: Path
    signing_key_file: Path
    verifier_key: str
    created: tuple[Path, ...]
    seeded: bool
    # On PostgreSQL: the runtime role granted and checked, or what is wrong with the set-up.
    roles: str = ""


def initialize(
    data_dir: Path | str,
    *,
    policy_file: Path | str | None = None,
    staff_file: Path | str | None = None,
    database_url: str | None = None,
    owner_database_url: str | None = None,
    seed: Seed | None = None,
    migrating: migrate.Migrating | None = None,
    connectors: Mapping[str, Mapping[str, Any]] | None = None,
) -> InitReport:
    """Set up `data_dir` and its database; return what was done.

    `policy_file` / `staff_file` default to copies of the packaged examples in `data_dir`; given
    files are referred to where they are. `database_url` defaults to SQLite in `data_dir` and is
    written to the settings file when given. The environment is not read: the caller passes
    what it wants (the CLI passes `FOUREYES_DATABASE_URL`). `owner_database_url` (PostgreSQL;
    never written to the settings file) is the schema owner's, who migrates and grants the
    runtime role of `database_url` its privileges. `seed`, if given, is called with the
    migrated, empty database; `migrating` is told what is migrated before it is
    (`migrate.upgrade`'s `progress`). `connectors` are the `[connectors.<name>]` tables to
    write (secrets only as `<name>_file` / `<name>_env`: the caller sees to it); default: the
    demo platform. Raises BadInput for a non-empty database or conflicting input.
    """
    root = Path(data_dir).expanduser().absolute()
    given_policy = _given_file(policy_file, "policy file")
    given_staff = _given_file(staff_file, "staff directory")
    if database_url is not None:
        database_url = anchor_sqlite(database_url, Path.cwd())
    created: list[Path] = []
    if not root.exists():
        root.mkdir(mode=0o700, parents=True)
        root.chmod(0o700)  # mkdir's mode is subject to the umask
        created.append(root)
    elif not root.is_dir():
        raise BadInput(f"{root} exists and is not a directory")

    config_file = root / CONFIG_FILE
    existing = Settings.load(root, env={}) if config_file.exists() else None
    if existing is not None:
        _agree(existing, database_url=database_url, policy=given_policy, staff=given_staff)
        if existing.policy_file is None or existing.staff_file is None:
            raise BadInput(f"{config_file}: names no policy_file or staff_file for init")
        settings = existing
        policy, staff = existing.policy_file, existing.staff_file
    else:
        env = {"FOUREYES_DATABASE_URL": database_url} if database_url is not None else {}
        settings = Settings.load(root, env=env)
        policy = given_policy or root / EXAMPLE_POLICY
        staff = given_staff or root / EXAMPLE_STAFF
    settings = _with_owner(root, settings, owner_database_url)

    database = Database(settings.migration_database_url)
    try:
        migrate.upgrade(database, progress=migrating)
        _refuse_unless_empty(database)
        role_report = _runtime_role(database, settings.database_url)
        if existing is None:
            if given_policy is None:
                _copy_example(EXAMPLE_POLICY, policy, created)
            if given_staff is None:
                _copy_example(EXAMPLE_STAFF, staff, created)
            _write_config(config_file, root, database_url, policy, staff, connectors)
            created.append(config_file)
            settings = Settings.load(root, env={})
        signer = _signing_key(settings, created)
        if not settings.console_key_file.exists():
            console_key(settings.console_key_file)  # the console's cookie key, mode 0600
            created.append(settings.console_key_file)
        if seed is not None:
            seed(database)
        revision = migrate.current(database) or ""
    finally:
        database.dispose()
    return InitReport(
        data_dir=root,
        config_file=config_file,
        database_url=safe_url(settings.database_url),
        revision=revision,
        policy_file=policy,
        staff_file=staff,
        signing_key_file=settings.signing_key_file,
        verifier_key=signer.verifier().to_vkey(),
        created=tuple(created),
        seeded=seed is not None,
        roles=role_report,
    )


def _with_owner(root: Path, settings: Settings, owner_url: str | None) -> Settings:
    """`settings` with the owner's URL, validated against the runtime URL as `Settings` does."""
    if owner_url is None:
        return settings
    env = {"FOUREYES_DATABASE_URL": settings.database_url, "FOUREYES_OWNER_DATABASE_URL": owner_url}
    return Settings.load(root, env=env)


def _runtime_role(owner: Database, runtime_url: str) -> str:
    """Grant and check the runtime role (PostgreSQL, when it is not the owner); what to report."""
    if owner.is_sqlite:
        return ""
    role = roles.role_in_url(runtime_url)
    if owner.url == runtime_url or role is None or role == roles.role_in_url(owner.url):
        return (
            "one role owns the schema and would serve: `foureyes serve` and `foureyes worker` "
            "refuse it; set FOUREYES_DATABASE_URL to a role that owns nothing and run "
            "`foureyes migrate` with FOUREYES_OWNER_DATABASE_URL set to this one"
        )
    roles.grant_runtime(owner, role)
    runtime = Database(runtime_url)
    try:
        problem = roles.check_runtime(runtime)
    finally:
        runtime.dispose()
    if problem is not None:
        raise BadInput(f"the runtime role is not safe to serve with: {problem}")
    return f"runtime role {role}: granted, owns nothing, appends to the audit log only"


def _given_file(path: Path | str | None, what: str) -> Path | None:
    if path is None:
        return None
    given = Path(path).expanduser().absolute()
    if not given.is_file():
        raise BadInput(f"{what} {given} does not exist or is not a file")
    return given


def _agree(
    settings: Settings, *, database_url: str | None, policy: Path | None, staff: Path | None
) -> None:
    """Refuse arguments that contradict an existing settings file (from an earlier run)."""
    where = settings.config_file
    if database_url is not None and database_url != settings.database_url:
        raise BadInput(
            f"{where} already names database {settings.safe_database_url}, "
            f"not {safe_url(database_url)}"
        )
    if policy is not None and policy != settings.policy_file:
        raise BadInput(f"{where} already names policy_file {settings.policy_file}, not {policy}")
    if staff is not None and staff != settings.staff_file:
        raise BadInput(f"{where} already names staff_file {settings.staff_file}, not {staff}")


def _refuse_unless_empty(database: Database) -> None:
    with database.transaction() as session:
        has_staff = session.scalar(select(exists().select_from(StaffRow)))
        has_policy = session.scalar(select(exists().select_from(PolicyVersionRow)))
    if has_staff or has_policy:
        found = "staff" if has_staff else "policy versions"
        raise BadInput(
            f"the database already has {found}: `foureyes init` only on an empty database "
            "(later policy and staff changes go through approval)"
        )


def _copy_example(name: str, target: Path, created: list[Path]) -> None:
    if not target.exists():  # kept from an earlier run that stopped before seeding
        target.write_bytes((files("foureyes") / "examples" / name).read_bytes())
        created.append(target)


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(value, ensure_ascii=False)


def _relative(path: Path, root: Path) -> str:
    """Paths inside the data directory are written relative to it, so it can move."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _toml_value(value: Any) -> str:
    """`value` (a string, number, boolean, list or table, as a connector option) in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = (f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise BadInput(f"cannot write {type(value).__name__} into {CONFIG_FILE}")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _write_config(
    config_file: Path,
    root: Path,
    database_url: str | None,
    policy: Path,
    staff: Path,
    connectors: Mapping[str, Mapping[str, Any]] | None,
) -> None:
    lines = [
        "# foureyes settings, written by `foureyes init`. FOUREYES_* environment variables",
        "# override them; relative paths are relative to this directory.",
        "",
    ]
    lines += [
        "# PostgreSQL: database_url is the runtime role's (it owns nothing); the owner's URL goes",
        "# in FOUREYES_OWNER_DATABASE_URL for `foureyes init` and `foureyes migrate` only.",
    ]
    if database_url is not None:
        lines.append(f"database_url = {_toml_string(database_url)}")
    else:
        lines.append('# database_url = "postgresql://foureyes@db.example/foureyes"')
        lines.append("#   (default: SQLite, foureyes.db in this directory)")
    lines += [
        f"log_origin = {_toml_string(DEFAULT_LOG_ORIGIN)}",
        f"signing_key_file = {_toml_string('keys/log.key')}",
        f"policy_file = {_toml_string(_relative(policy, root))}",
        f"staff_file = {_toml_string(_relative(staff, root))}",
        "",
        "# Platforms foureyes acts on: one table per platform name. Secrets go in",
        '# `token_file = "..."` or `token_env = "..."`, not in this file.',
    ]
    tables = {_DEMO_CONNECTOR: {"kind": "demo"}} if connectors is None else connectors
    for name, table in tables.items():
        lines.append(f"[connectors.{_toml_key(name)}]")
        lines += [f"{_toml_key(str(key))} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    # 0600 from the start: the file may hold a database URL with a password.
    _write_new(config_file, "\n".join(lines), 0o600)


def _signing_key(settings: Settings, created: list[Path]) -> Signer:
    """Load the log signing key, or generate it (Ed25519, file mode 0600) if there is none."""
    path = settings.signing_key_file
    if path.exists():
        return signer_from_file(settings.signing_key_file)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    signer = Signer.generate(settings.log_origin)
    _write_new(path, signer.to_skey() + "\n", 0o600)
    created.append(path)
    return signer


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create `path` with `mode` (never readable by others, not even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(mode)  # os.open's mode is subject to the umask
