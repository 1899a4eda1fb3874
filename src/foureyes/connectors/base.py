"""The connector contract: how foureyes looks up accounts and carries out actions on a platform.

A connector never sees the policy and never decides anything: it describes its actions, reports
an account's attributes, executes an action it is told to (with the request id as idempotency
key), and, for reconciliation after an execution was interrupted, says what the platform's own
record of that idempotency key shows (never what the account's state happens to look like:
docs/reconciliation.md).
Vendor errors are translated into `ConnectorError(transient=…)` or `NotFound` in the connector,
in one place each.

Connectors are registered through the `foureyes.connectors` entry-point group: each entry point
names a factory `(name: str, settings: Mapping[str, Any], context: ConnectorContext) ->
Connector`. The built-ins are registered the same way (see pyproject.toml).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from sqlalchemy import Select

from foureyes.config import DEFAULT_PLATFORM_CALL_DEADLINE
from foureyes.errors import BadInput, FoureyesError
from foureyes.model import Account, ActionKind, ActionSpec
from foureyes.policy.catalog import UNDECLARED, Attribute, Catalog, declared

ENTRY_POINT_GROUP = "foureyes.connectors"


NO_PARAMS: Mapping[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def action_spec(
    name: str,
    kind: ActionKind,
    description: str,
    *,
    reversible_by: str | None = None,
    irreversible: bool = False,
    reveals_private: bool = False,
    params: Mapping[str, Any] | None = None,
) -> ActionSpec:
    """An action declaration as connectors write them (no params unless given)."""
    return ActionSpec(
        name=name,
        kind=kind,
        reversible_by=reversible_by,
        irreversible=irreversible,
        reveals_private=reveals_private,
        params_schema=params or NO_PARAMS,
        description=description,
    )


@dataclass(frozen=True)
class ExecutionOrder:
    """What a connector is told to do. `idempotency_key` is the request id: a platform that
    sees the same key twice must not apply the action twice. `attempt` numbers the executions
    of that key (1, 2, …; 0 outside an execution): reconciliation of attempt N may void the
    key's attempts up to N on a platform that fences (the `http` connector), so that a late
    delivery of one of them is refused while attempt N+1 runs. `reverts` is the id of the
    request an undo reverses ("" for any other order): a platform that records who applied a
    state (a PDS takedown's `ref`) lifts only the state that request applied, never one put
    there by someone else since."""

    action: str
    account_id: str
    params: Mapping[str, Any]
    idempotency_key: str
    approvers: tuple[str, ...] = ()
    requester: str = ""
    attempt: int = 0
    reverts: str = ""


@dataclass(frozen=True)
class ExecutionResult:
    """What happened. `data` is returned to the requester (of a read, or of an action that
    reveals private data: `ActionSpec.for_requester_only`) and never stored;
    `summary` is stored and may go into the audit log, so it holds no private data.

    `undo_params`: the parameters of the reverse action (`reversible_by`) that restore what was
    there before (a changed email: the previous address), or None when the reverse needs none
    or the connector cannot tell. Private like `data`: foureyes stores it with the request, for
    an undo only, and never shows it nor puts it in the audit log. A replay of the same
    idempotency key should answer it again."""

    summary: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] | None = None
    undo_params: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Reconciliation:
    """What the platform's record of one order's idempotency key says, after an execution of
    it was interrupted (its executor died or stopped renewing its lease mid-call).

    `applied` is decided from that record alone, never from the account's state (another request
    may have made the same change in the meantime):

    - True: the platform recorded this key as applied. `summary` and `undo_params` are what
      that execution answered, if the platform kept them (see `ExecutionResult`).
    - False: the platform keeps a record of every key it applies, durably and in the same
      transaction as the change, and has none for this one: it was not applied (a read is
      always False: it changed nothing, and is done again to get its answer). The request goes
      back to `approved` and runs again, under the same key.
    - None: the platform cannot say: it keeps no such record, or the record could not be read.
      `why` says which. The request ends `failed` with that reason and an alert, for a person to
      check the platform; it is never marked `executed` by coincidence.

    `state` is the account's state now, for the log only: it never decides anything."""

    applied: bool | None
    state: Mapping[str, Any] = field(default_factory=dict)
    undo_params: Mapping[str, Any] | None = None
    summary: Mapping[str, Any] | None = None
    why: str = ""


@dataclass(frozen=True)
class LocalLookup:
    """How foureyes may read an account of a platform kept in its own database (the demo)
    as part of its own statements: the dry run reads the token, the pins, the policy version
    and the account in one statement, one round trip to PostgreSQL.

    `query` selects the account's columns by the bind parameter `account_id` (no row: no such
    account); foureyes reads them as one JSON object, so each column must be a string, a
    number, a boolean or null. `account` makes the Account from that object, exactly as
    `lookup` would from the row."""

    query: Select[*tuple[Any, ...]]
    account: Callable[[Mapping[Any, Any]], Account]


class LocalExecution(Protocol):
    """`execute` for a platform kept in foureyes' own database (the demo), run in the session
    of foureyes' transaction that claims the request and records its outcome: the platform's
    change, the request's `executed` and their audit events commit together or not at all, so
    no attempt is ever left with its outcome unknown. Same contract as `Connector.execute`
    (ConnectorError when nothing was applied); it must not commit or end the session."""

    def __call__(self, session: Any, order: ExecutionOrder) -> ExecutionResult: ...


class LocalBulkExecution(Protocol):
    """`LocalExecution` for many orders at once (the orders of one chunk of a batch), in the
    session of foureyes' transaction that records their outcomes: for each order, in order,
    its ExecutionResult or the ConnectorError (or NotFound) that refused it, an order refused
    changing nothing of the platform and leaving the others to go on. It must not commit or
    end the session; an error it raises (not answers) rolls back the whole chunk."""

    def __call__(
        self, session: Any, orders: Sequence[ExecutionOrder]
    ) -> list[ExecutionResult | FoureyesError]: ...


class Connector(abc.ABC):
    """One platform. Implementations must be safe to call from several threads."""

    platform: str

    @abc.abstractmethod
    def actions(self) -> tuple[ActionSpec, ...]:
        """Every action this platform offers."""

    @abc.abstractmethod
    def account_attributes(self) -> Mapping[str, Attribute]:
        """Every attribute `lookup` reports, declared with its type (what tier rules may use)
        and its sensitivity (`public(STRING)`, `private(STRING, RedactedAs.EMAIL)`): foureyes
        shows and records a private value only redacted, under this name wherever it appears
        (account pages, previews, summaries and states in the audit log, notifications).
        An attribute declared by its type alone, or not declared at all, counts as private."""

    @abc.abstractmethod
    def lookup(self, account_id: str) -> Account | None:
        """The account's current attributes, or None when it does not exist."""

    def lookup_many(self, account_ids: Sequence[str]) -> Mapping[str, Account]:
        """`lookup` of many accounts: the ones that exist, by id (an id absent from the answer
        does not exist). One platform error fails the whole call. The default asks `lookup`
        one by one; a platform that can read many in one go (the demo) overrides it, and
        `has_lookup_many` says so."""
        found: dict[str, Account] = {}
        for account_id in account_ids:
            account = self.lookup(account_id)
            if account is not None:
                found[account_id] = account
        return found

    @abc.abstractmethod
    def execute(self, order: ExecutionOrder) -> ExecutionResult:
        """Carry out one action exactly once per idempotency key; raise ConnectorError."""

    @abc.abstractmethod
    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        """What the platform's record of `order.idempotency_key` says (see Reconciliation):
        called after an execution of `order` was interrupted. Must not change anything.
        Raise ConnectorError(transient=True) when the platform cannot be asked now (it is asked
        again later); any other error counts as "cannot tell"."""

    def validate(self, order: ExecutionOrder) -> None:
        """Refuse (BadInput) an order that could never execute, before it is submitted.
        The default accepts everything the params schema accepts."""
        del order

    def preview(self, order: ExecutionOrder) -> Mapping[str, Any]:
        """What the action would change, as {attribute: [before, after]}; empty if unknown."""
        del order
        return {}

    def search(self, prefix: str, limit: int) -> tuple[str, ...]:
        """Up to `limit` ids of accounts whose id starts with `prefix` (as typed: no pattern
        characters), in id order: the console's account search. Only the id may be matched,
        never another attribute (a private one would answer guesses of it). The default (a
        platform that cannot search) finds nothing: exact ids are still looked up."""
        del prefix, limit
        return ()

    def local_lookup(self) -> LocalLookup | None:
        """For a platform whose accounts live in foureyes' own database: its lookup as a
        query (see LocalLookup). None (the default): `lookup` is called instead."""
        return None

    def local_execution_many(self) -> LocalBulkExecution | None:
        """For a platform whose data lives in foureyes' own database: many orders carried out
        as one step of foureyes' transaction (see LocalBulkExecution). None (the default):
        `local_execution` is called order by order."""
        return None

    def local_execution(self) -> LocalExecution | None:
        """For a platform whose data lives in foureyes' own database: `execute` as a step of
        foureyes' own transaction (see LocalExecution). None (the default): `execute` is called
        outside foureyes' transactions, with a lease and reconciliation."""
        return None

    def catalog(self) -> Catalog:
        return Catalog.of(self.actions(), self.account_attributes())

    def attribute(self, name: str) -> Attribute:
        """How attribute `name` is declared; one this platform does not declare is private
        (failing closed: `UNDECLARED`)."""
        entry = self.account_attributes().get(name)
        return UNDECLARED if entry is None else declared(entry)

    def action(self, name: str) -> ActionSpec:
        for spec in self.actions():
            if spec.name == name:
                return spec
        raise BadInput(f"platform {self.platform} has no action {name!r}")

    def probe(self) -> None:  # noqa: B027 - optional hook: `has_probe` tells who has one
        """Check, cheaply, that the platform answers and takes the connector's credentials
        (what `foureyes init` checks and `/healthz` reports): one or two reads, under the
        call deadline, changing nothing. Raise ConnectorError whose message says what is wrong
        (never the credential). The default checks nothing, and `has_probe` says so: `init`
        then reports the platform "not checked" and `/healthz` "unchecked"."""

    def close(self) -> None:  # noqa: B027 - optional hook: most connectors hold nothing
        """Release resources (connections); the default has none."""


def has_lookup_many(connector: Connector) -> bool:
    """Whether `connector` reads many accounts in one go (it overrides `lookup_many`)."""
    return type(connector).lookup_many is not Connector.lookup_many


def has_probe(connector: Connector) -> bool:
    """Whether `connector` can be asked if its platform answers (it overrides `probe`)."""
    return type(connector).probe is not Connector.probe


class ConnectorContext(Protocol):
    """What foureyes hands a connector factory (the database, for built-ins with tables).
    foureyes' own context also carries `call_deadline`, the overall deadline in seconds of one
    platform call (settings' `platform_call_deadline`): read it with `call_deadline`."""

    @property
    def database(self) -> Any: ...


def call_deadline(context: ConnectorContext | None) -> float:
    """How long one platform call may take in all (a look-up, an execution or a reconciliation,
    with its retries) before the connector abandons it: the context's `call_deadline`, else the
    default (30 s). A connector that can cut its transport short enforces it; an execution so
    abandoned raises `ConnectorError(outcome_unknown=True)` and is reconciled."""
    value = getattr(context, "call_deadline", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_PLATFORM_CALL_DEADLINE


class ConnectorFactory(Protocol):
    def __call__(
        self, name: str, settings: Mapping[str, Any], context: ConnectorContext
    ) -> Connector: ...


def available_kinds() -> dict[str, ConnectorFactory]:
    """Connector kinds registered through entry points, by name."""
    return {ep.name: ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)}


def make_connector(
    kind: str, name: str, settings: Mapping[str, Any], context: ConnectorContext
) -> Connector:
    kinds = available_kinds()
    if kind not in kinds:
        known = ", ".join(sorted(kinds)) or "none"
        raise BadInput(f"unknown connector kind {kind!r} (installed: {known})")
    return kinds[kind](name, settings, context)
