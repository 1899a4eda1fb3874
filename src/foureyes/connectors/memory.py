"""An in-memory fake platform, shipped in the library for tests (like httpx's `MockTransport`).

`MemoryConnector` keeps the full connector contract: it looks up accounts, executes each
idempotency key at most once, reconciles (from the keys it applied, never from an account's
state) and previews. On top of that it has the hooks tests need to exercise foureyes' lifecycle
for real, without a mock: it records every execution (`executions`), fails the next executions
on demand (`inject_failures`) and holds an execution until the test releases it (`block_next`,
for crash and race tests).

By default it is a copy of the demo platform "chirp": the same actions, account attributes and
status model (`foureyes.connectors.demo_catalog`). Given its own catalog (`actions`, a list of
ActionSpec dicts) it becomes a generic platform: a write sets the attributes its `effects` name
and the parameters that name an attribute; a read answers the account's attributes.

The failure hooks (`FailureInjector`) and the parameter check (`check_params`) are shared with the
demo connector.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonschema

from foureyes.connectors.base import (
    Connector,
    ConnectorContext,
    ExecutionOrder,
    ExecutionResult,
    Reconciliation,
)
from foureyes.connectors.demo_catalog import (
    ACCOUNT_STATUSES,
    ACTIVE,
    DEMO_ACCOUNT_ATTRIBUTES,
    DEMO_ACTIONS,
    params_problem,
    plan_change,
    redacted,
    undo_params,
)
from foureyes.errors import BadInput, ConnectorError, NotFound
from foureyes.model import Account, ActionKind, ActionSpec, utcnow
from foureyes.policy.catalog import Attribute, declared, parse_attribute, private
from foureyes.policy.celtypes import BOOL, DOUBLE, INT, STRING, CelType

Clock = Callable[[], datetime]


# --- hooks shared with the demo connector ----------------------------------------------------


class FailureInjector:
    """Makes the next `n` executions fail, as a platform outage would: the failure is raised at
    the start of `execute`, before anything is read or changed. Thread-safe."""

    def __init__(self, count: int = 0, *, transient: bool = True) -> None:
        if count < 0:
            raise BadInput("the number of failures to inject cannot be negative")
        self._lock = threading.Lock()
        self._count = count
        self._transient = transient

    def inject(self, count: int, *, transient: bool = True) -> None:
        """Fail the next `count` executions (replacing any failures still pending)."""
        if count < 0:
            raise BadInput("the number of failures to inject cannot be negative")
        with self._lock:
            self._count = count
            self._transient = transient

    @property
    def pending(self) -> int:
        with self._lock:
            return self._count

    def check(self, platform: str) -> None:
        """Raise the injected failure if one is due (and count it off)."""
        with self._lock:
            if self._count == 0:
                return
            self._count -= 1
            transient = self._transient
        kind = "unavailable" if transient else "refused the call"
        raise ConnectorError(f"{platform} {kind} (injected failure)", transient=transient)


def params_validator(spec: ActionSpec) -> jsonschema.Draft202012Validator:
    """The checker of the action's parameter schema, for `check_params`: building one costs
    more than checking with it, so a connector whose catalog is constant builds each once."""
    return jsonschema.Draft202012Validator(dict(spec.params_schema))


def check_params(
    spec: ActionSpec,
    params: Mapping[str, Any],
    validator: jsonschema.Draft202012Validator | None = None,
) -> None:
    """Check `params` against the action's JSON schema (`validator`: `params_validator(spec)`,
    built here if not given); ConnectorError(transient=False) if they do not fit. The message
    names the parameter, never its value (it may be private)."""
    checker = params_validator(spec) if validator is None else validator
    error = jsonschema.exceptions.best_match(checker.iter_errors(dict(params)))
    if error is None:
        return
    where = "/".join(str(part) for part in error.absolute_path)
    reason = f"parameter {where!r} fails {error.validator}" if where else error.message
    raise ConnectorError(f"bad parameters for {spec.name}: {reason}", transient=False)


def validate_order(
    spec: ActionSpec,
    order: ExecutionOrder,
    *,
    chirp: bool,
    validator: jsonschema.Draft202012Validator | None = None,
) -> None:
    """`Connector.validate` for the fake and the demo: BadInput when the parameters do not fit
    the action's schema (or, on chirp, make no sense), whatever state the account is in.
    `validator`: as for `check_params`."""
    try:
        check_params(spec, order.params, validator)
    except ConnectorError as exc:
        raise BadInput(exc.message) from None
    problem = params_problem(order.action, order.params) if chirp else None
    if problem:
        raise BadInput(f"bad parameters for {spec.name}: {problem}")


def settings_problem(settings: Mapping[str, Any], known: Iterable[str]) -> str | None:
    unknown = sorted(set(settings) - set(known))
    if unknown:
        return f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
    return None


def int_setting(settings: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadInput(f"connector setting {key!r} must be a whole number ≥ 0")
    return value


def bool_setting(settings: Mapping[str, Any], key: str, default: bool) -> bool:
    value = settings.get(key, default)
    if not isinstance(value, bool):
        raise BadInput(f"connector setting {key!r} must be true or false")
    return value


# --- the fake ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionRecord:
    """One call of `execute`. `outcome`: `applied` (a write took effect), `replayed` (its key had
    been applied before; nothing changed), `read`, `refused` (nonsensical in the account's state,
    bad parameters, unknown account), `failed` (an injected or timed-out failure)."""

    order: ExecutionOrder
    outcome: str
    at: datetime
    error: str | None = None


@dataclass
class _Account:
    attributes: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    sign_ins: list[dict[str, Any]] = field(default_factory=list)
    password_set: bool = True
    password_reset_pending: bool = False
    sessions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Block:
    release: threading.Event
    entered: threading.Event
    after_apply: bool
    timeout: float | None


@dataclass(frozen=True)
class _Applied:
    action: str
    account_id: str
    summary: Mapping[str, Any]
    undo_params: Mapping[str, Any] | None = None


_CHIRP_EXTRAS = ("messages", "sign_ins")


class MemoryConnector(Connector):
    """A platform that lives in this process. Safe to call from several threads."""

    def __init__(
        self,
        platform: str = "chirp",
        *,
        accounts: Iterable[Mapping[str, Any]] = (),
        actions: Iterable[ActionSpec] | None = None,
        attributes: Mapping[str, Attribute | CelType] | None = None,
        effects: Mapping[str, Mapping[str, Any]] | None = None,
        fail_next: int = 0,
        fail_transient: bool = True,
        clock: Clock = utcnow,
    ) -> None:
        self.platform = platform
        self.chirp = actions is None
        self._actions: tuple[ActionSpec, ...] = DEMO_ACTIONS if actions is None else tuple(actions)
        self._by_name = {spec.name: spec for spec in self._actions}
        self._effects = {name: dict(values) for name, values in (effects or {}).items()}
        for name in self._effects:
            if self.chirp or name not in self._by_name:
                raise BadInput(f"effects name {name!r}, which is not an action of this catalog")
        entries = [dict(a) for a in accounts]
        # Declared by type alone (or inferred from the accounts), an attribute is private.
        self._attributes: dict[str, Attribute]
        if self.chirp:
            self._attributes = dict(DEMO_ACCOUNT_ATTRIBUTES)
        elif attributes is not None:
            self._attributes = {name: declared(entry) for name, entry in attributes.items()}
        else:
            self._attributes = {name: private(t) for name, t in _infer_types(entries).items()}
        self._clock = clock
        self._lock = threading.RLock()
        self._accounts: dict[str, _Account] = {}
        self._applied: dict[str, _Applied] = {}
        self._executions: list[ExecutionRecord] = []
        self._block: _Block | None = None
        self.failures = FailureInjector(fail_next, transient=fail_transient)
        for entry in entries:
            account_id = entry.pop("id", None)
            if not isinstance(account_id, str) or not account_id:
                raise BadInput("every account needs an id (a non-empty string)")
            self.add_account(account_id, **entry)

    # --- test hooks ----------------------------------------------------------------------------

    def add_account(self, account_id: str, **attributes: Any) -> Account:
        """Add (or replace) an account. Attributes not given get defaults (chirp: handle = id,
        email `<id>@mail.example`, status active, …). On the chirp model, `messages` (dicts with
        `from`, `to`, `body`) and `sign_ins` (dicts with `at`, `address`) may be given too."""
        extras = {key: attributes.pop(key) for key in _CHIRP_EXTRAS if key in attributes}
        if extras and not self.chirp:
            raise BadInput("messages and sign_ins exist only on the chirp model")
        unknown = sorted(set(attributes) - set(self._attributes))
        if unknown:
            raise BadInput(f"{self.platform} accounts have no attribute {unknown[0]!r}")
        values = self._defaults(account_id)
        values.update(attributes)
        if self.chirp and values["status"] not in ACCOUNT_STATUSES:
            raise BadInput(f"unknown chirp status {values['status']!r}")
        state = _Account(
            attributes=values,
            messages=[dict(m) for m in extras.get("messages", ())],
            sign_ins=[dict(s) for s in extras.get("sign_ins", ())],
        )
        with self._lock:
            self._accounts[account_id] = state
        return Account(self.platform, account_id, dict(values))

    def update_account(self, account_id: str, **attributes: Any) -> None:
        """Change an account behind foureyes' back (as the platform's own users would)."""
        unknown = sorted(set(attributes) - set(self._attributes))
        if unknown:
            raise BadInput(f"{self.platform} accounts have no attribute {unknown[0]!r}")
        with self._lock:
            self._account(account_id).attributes.update(attributes)

    def inject_failures(self, count: int, *, transient: bool = True) -> None:
        """Make the next `count` executions fail before they change anything."""
        self.failures.inject(count, transient=transient)

    def block_next(
        self,
        release: threading.Event,
        *,
        after_apply: bool = False,
        timeout: float | None = 30.0,
    ) -> threading.Event:
        """Make the next execution wait until `release` is set: before it changes anything, or
        with `after_apply` once its change is made but before it returns (a call that dies
        there leaves the effect in place). Answers an event set when the execution reaches the
        wait. If `timeout` seconds pass first, the execution fails with a transient
        ConnectorError (after its change, with `after_apply`)."""
        entered = threading.Event()
        with self._lock:
            self._block = _Block(release, entered, after_apply, timeout)
        return entered

    @property
    def executions(self) -> list[ExecutionRecord]:
        """Every `execute` call so far, in order (a copy)."""
        with self._lock:
            return list(self._executions)

    def applied_keys(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._applied)

    def sessions(self, account_id: str) -> list[dict[str, Any]]:
        """The impersonation sessions opened on an account (chirp model)."""
        with self._lock:
            return [dict(s) for s in self._account(account_id).sessions]

    # --- the contract --------------------------------------------------------------------------

    def actions(self) -> tuple[ActionSpec, ...]:
        return self._actions

    def account_attributes(self) -> Mapping[str, Attribute]:
        return dict(self._attributes)

    def lookup(self, account_id: str) -> Account | None:
        with self._lock:
            state = self._accounts.get(account_id)
            if state is None:
                return None
            return Account(self.platform, account_id, dict(state.attributes))

    def search(self, prefix: str, limit: int) -> tuple[str, ...]:
        with self._lock:
            found = sorted(i for i in self._accounts if i.startswith(prefix))
        return tuple(found[: max(0, limit)])

    def execute(self, order: ExecutionOrder) -> ExecutionResult:
        with self._lock:
            block, self._block = self._block, None
        try:
            spec = self.action(order.action)
            self.failures.check(self.platform)
            check_params(spec, order.params)
            if block is not None and not block.after_apply:
                self._wait(block)
            with self._lock:
                result, outcome = self._execute(spec, order)
                self._record(order, outcome)
        except (ConnectorError, NotFound, BadInput) as exc:
            failed = isinstance(exc, ConnectorError) and exc.transient
            self._record(order, "failed" if failed else "refused", str(exc))
            raise
        if block is not None and block.after_apply:
            self._wait(block)
        return result

    def validate(self, order: ExecutionOrder) -> None:
        """BadInput for an unknown action or parameters that can never work."""
        validate_order(self.action(order.action), order, chirp=self.chirp)

    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        """From the keys it applied alone (kept for as long as this object lives), as the demo
        platform does: True with what that execution answered, False otherwise, and for reads.
        Never from the account's state."""
        spec = self.action(order.action)
        with self._lock:
            state = self._accounts.get(order.account_id)
            current = {"status": state.attributes.get("status")} if self.chirp and state else {}
            if spec.kind is ActionKind.READ:
                return Reconciliation(applied=False, state=current)
            done = self._applied.get(order.idempotency_key)
            if done is None:
                return Reconciliation(applied=False, state=current)
            if (done.action, done.account_id) != (order.action, order.account_id):
                return Reconciliation(
                    applied=None,
                    state=current,
                    why=f"idempotency key {order.idempotency_key} was used for another order",
                )
            undo = None if done.undo_params is None else dict(done.undo_params)
            return Reconciliation(
                applied=True, state=current, undo_params=undo, summary=dict(done.summary)
            )

    def preview(self, order: ExecutionOrder) -> Mapping[str, Any]:
        """{attribute: [before, after]} (email and phone redacted); empty for reads and for a
        write that would be refused in the account's current state."""
        spec = self.action(order.action)
        with self._lock:
            state = self._account(order.account_id)
            if spec.kind is ActionKind.READ:
                return {}
            if not self.chirp:
                effect = self._generic_effect(order)
                return redacted({k: [state.attributes.get(k), v] for k, v in effect.items()})
            try:
                return redacted(plan_change(order.action, self._chirp_view(order), order.params))
            except ConnectorError:
                return {}

    # --- inside --------------------------------------------------------------------------------

    def _execute(self, spec: ActionSpec, order: ExecutionOrder) -> tuple[ExecutionResult, str]:
        """Under the lock: replay, read or apply one order."""
        done = self._applied.get(order.idempotency_key)
        if done is not None:
            if (done.action, done.account_id) != (order.action, order.account_id):
                raise ConnectorError(
                    f"idempotency key {order.idempotency_key} was used for {done.action} on "
                    f"{done.account_id}",
                    transient=False,
                )
            again = None if done.undo_params is None else dict(done.undo_params)
            return ExecutionResult(summary=dict(done.summary), undo_params=again), "replayed"
        state = self._account(order.account_id)
        if spec.kind is ActionKind.READ:
            return self._read(order, state), "read"
        data: dict[str, Any] | None = None
        undo: dict[str, Any] | None = None
        if self.chirp:
            diff = plan_change(order.action, self._chirp_view(order), order.params)
            undo = undo_params(order.action, diff)
            data = self._apply_chirp(order, state, diff)
        else:
            effect = self._generic_effect(order)
            diff = {k: [state.attributes.get(k), v] for k, v in effect.items()}
            state.attributes.update(effect)
        summary: dict[str, Any] = {
            "action": order.action,
            "account": order.account_id,
            "changes": redacted(diff),
        }
        if data is not None:
            summary["session_id"] = data["session_id"]
        self._applied[order.idempotency_key] = _Applied(
            order.action, order.account_id, summary, undo
        )
        return ExecutionResult(summary=summary, data=data, undo_params=undo), "applied"

    def _apply_chirp(
        self, order: ExecutionOrder, state: _Account, diff: Mapping[str, list[Any]]
    ) -> dict[str, Any] | None:
        for key in ("status", "email"):
            if key in diff:
                state.attributes[key] = diff[key][1]
        if "password" in diff:
            state.password_set = False
            state.password_reset_pending = True
        if "impersonation_session" not in diff:
            return None
        session = {
            "session_id": secrets.token_hex(16),
            "impersonated_by": order.requester,
            "request_key": order.idempotency_key,
            "created_at": self._clock().isoformat(),
        }
        state.sessions.append(session)
        return {**session, "session_token": secrets.token_urlsafe(32)}

    def _read(self, order: ExecutionOrder, state: _Account) -> ExecutionResult:
        summary: dict[str, Any] = {"action": order.action, "account": order.account_id}
        attrs = state.attributes
        if not self.chirp:
            # Private attributes only for the read that is about them (as on chirp): any
            # other read, `account.view` say, is no way around `account.view_private`.
            everything = order.action == "account.view_private"
            data = {k: v for k, v in attrs.items() if everything or not self.attribute(k).private}
            return ExecutionResult(summary=summary, data=data)
        if order.action == "account.view_private":
            summary["revealed"] = ["email", "phone", "sign_ins"]
            data = {
                "email": attrs["email"],
                "phone": attrs["phone"],
                "sign_ins": [dict(s) for s in state.sign_ins],
            }
            return ExecutionResult(summary=summary, data=data)
        if order.action == "account.read_dms":
            summary["messages"] = len(state.messages)
            return ExecutionResult(
                summary=summary, data={"messages": [dict(m) for m in state.messages]}
            )
        public = ("handle", "followers", "verified", "status")
        return ExecutionResult(summary=summary, data={k: attrs[k] for k in public})

    def _chirp_view(self, order: ExecutionOrder) -> dict[str, Any]:
        state = self._account(order.account_id)
        return {
            **state.attributes,
            "id": order.account_id,
            "password_set": state.password_set,
            "password_reset_pending": state.password_reset_pending,
        }

    def _generic_effect(self, order: ExecutionOrder) -> dict[str, Any]:
        effect = dict(self._effects.get(order.action, {}))
        effect.update({k: v for k, v in order.params.items() if k in self._attributes})
        return effect

    def _account(self, account_id: str) -> _Account:
        state = self._accounts.get(account_id)
        if state is None:
            raise NotFound(f"{self.platform} has no account {account_id!r}")
        return state

    def _defaults(self, account_id: str) -> dict[str, Any]:
        if self.chirp:
            return {
                "handle": account_id,
                "followers": 0,
                "verified": False,
                "status": ACTIVE,
                "email": f"{account_id}@mail.example",
                "phone": "",
            }
        zero: dict[CelType, Any] = {STRING: "", INT: 0, BOOL: False, DOUBLE: 0.0}
        return {name: zero.get(entry.type) for name, entry in self._attributes.items()}

    def _record(self, order: ExecutionOrder, outcome: str, error: str | None = None) -> None:
        with self._lock:
            self._executions.append(ExecutionRecord(order, outcome, self._clock(), error))

    def _wait(self, block: _Block) -> None:
        block.entered.set()
        if not block.release.wait(block.timeout):
            raise ConnectorError(
                f"{self.platform}: a blocked execution was not released in time", transient=True
            )


def _infer_types(accounts: Iterable[Mapping[str, Any]]) -> dict[str, CelType]:
    kinds: dict[type, CelType] = {bool: BOOL, int: INT, float: DOUBLE, str: STRING}
    found: dict[str, CelType] = {}
    for entry in accounts:
        for key, value in entry.items():
            if key == "id" or key in found:
                continue
            kind = kinds.get(type(value))
            if kind is None:
                raise BadInput(f"cannot tell the type of account attribute {key!r}; declare it")
            found[key] = kind
    return found


def action_spec(entry: Mapping[str, Any]) -> ActionSpec:
    """An ActionSpec from its settings form: {name, kind, reversible_by, irreversible,
    reveals_private, params (a JSON schema), description}."""
    known = {
        "name",
        "kind",
        "reversible_by",
        "irreversible",
        "reveals_private",
        "params",
        "description",
    }
    problem = settings_problem(entry, known)
    if problem:
        raise BadInput(f"action {entry.get('name', '?')!r}: {problem}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise BadInput("every action needs a name")
    try:
        kind = ActionKind(entry.get("kind", "write"))
    except ValueError:
        raise BadInput(f"action {name!r}: kind must be read or write") from None
    schema = entry.get("params", ActionSpec(name).params_schema)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise BadInput(f"action {name!r}: params is not a JSON schema: {exc.message}") from None
    return ActionSpec(
        name=name,
        kind=kind,
        reversible_by=entry.get("reversible_by"),
        irreversible=bool(entry.get("irreversible", False)),
        reveals_private=bool(entry.get("reveals_private", False)),
        params_schema=schema,
        description=str(entry.get("description", "")),
    )


_SETTINGS = (
    "platform",
    "accounts",
    "actions",
    "attributes",
    "effects",
    "fail_next",
    "fail_transient",
)


def create(name: str, settings: Mapping[str, Any], context: ConnectorContext) -> MemoryConnector:
    """The `memory` entry point. Settings (all optional): `platform` (default: the connector's
    name), `accounts` (list of {id, attribute: value}), `actions` (list of ActionSpec dicts;
    default: the chirp catalog), `attributes` ({name: type, e.g. `int`, or {type, sensitivity,
    redacted_as}}: private unless declared public, `parse_attribute`), `effects` ({action:
    {attribute: value}}), `fail_next` (fail the next n executions), `fail_transient`."""
    del context  # the fake keeps everything in memory
    problem = settings_problem(settings, _SETTINGS)
    if problem:
        raise BadInput(f"connector {name}: {problem}")
    actions = settings.get("actions")
    attributes = settings.get("attributes")
    try:
        types = (
            None if attributes is None else {k: parse_attribute(v) for k, v in attributes.items()}
        )
    except (ValueError, AttributeError) as exc:
        raise BadInput(f"connector {name}: attributes: {exc}") from None
    return MemoryConnector(
        str(settings.get("platform", name)),
        accounts=settings.get("accounts", ()),
        actions=None if actions is None else [action_spec(a) for a in actions],
        attributes=types,
        effects=settings.get("effects"),
        fail_next=int_setting(settings, "fail_next"),
        fail_transient=bool_setting(settings, "fail_transient", True),
    )
