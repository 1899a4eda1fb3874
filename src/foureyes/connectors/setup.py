"""What `foureyes init` needs to know to set up a connector of one kind: its options, which of
them are secrets, the platform name it usually goes by, and the example policy for it.

Each connector module declares `SETUP = ConnectorSetup(...)` next to its `create` entry point;
`setup_for(kind)` finds it through the same `foureyes.connectors` entry point, so a connector
registered later (a plug-in, `atproto`) is set up by `init` without `init` naming it. A kind
without a `SETUP` gets `ConnectorSetup.generic`: every option from `--set`, nothing prompted.

Secrets are never written into `foureyes.toml` (docs/configuration.md): a secret option `token`
is given as `token_file` (a path) or `token_env` (a variable's name); typed at the prompt, it is
written to `<data_dir>/secrets/<platform>-<option>` (mode 0600) and the settings name that file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points

from foureyes.connectors.base import ENTRY_POINT_GROUP
from foureyes.errors import BadInput

__all__ = ["ConnectorSetup", "SetupOption", "installed_kinds", "kind_for_policy", "setup_for"]


@dataclass(frozen=True)
class SetupOption:
    """One option of a connector's `[connectors.<name>]` table. A `secret` option is written
    as `<name>_file` or `<name>_env`, never as `<name>` itself."""

    name: str
    help: str
    required: bool = False
    secret: bool = False
    default: str | None = None


@dataclass(frozen=True)
class ConnectorSetup:
    """How `foureyes init` sets up one connector kind.

    `platform`: the name the platform usually gets (`matrix` for `synapse`), which is the
    prefix of its accounts; `options`: what to ask for, in order (others may still be given
    with `--set`); `policy`: the example policy for it, for the diagnosis when none is given
    (None: the packaged demo policy fits); `needs_database`: the connector keeps its accounts
    in foureyes' own database (the demo), so there is nothing to reach before `init`."""

    kind: str
    platform: str
    options: tuple[SetupOption, ...] = ()
    policy: str | None = None
    needs_database: bool = False
    summary: str = ""

    @classmethod
    def generic(cls, kind: str) -> ConnectorSetup:
        return cls(kind=kind, platform=kind, summary=f"the {kind} connector")

    def secrets(self) -> frozenset[str]:
        return frozenset(option.name for option in self.options if option.secret)


def installed_kinds() -> list[str]:
    """The connector kinds registered through entry points, sorted (`memory` is the tests'
    in-memory fake and is left out)."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name != "memory")


def setup_for(kind: str) -> ConnectorSetup:
    """The `SETUP` of the module whose entry point registers `kind`; a generic one if that
    module declares none. BadInput for a kind no entry point registers."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == kind]
    if not found:
        known = ", ".join(installed_kinds()) or "none"
        raise BadInput(f"unknown connector kind {kind!r} (installed: {known})")
    module = importlib.import_module(found[0].module)
    declared = getattr(module, "SETUP", None)
    if isinstance(declared, ConnectorSetup):
        return declared
    return ConnectorSetup.generic(kind)


def kind_for_policy(file_name: str) -> str | None:
    """The installed kind whose example policy has this file name (`matrix-policy.yaml` →
    `synapse`), for a diagnosis; None if none has."""
    for kind in installed_kinds():
        example = setup_for(kind).policy
        if example is not None and example.rsplit("/", 1)[-1] == file_name:
            return kind
    return None
