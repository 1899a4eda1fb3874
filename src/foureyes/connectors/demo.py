"""The `demo` connector: "chirp", a small microblog platform built into foureyes.

Its data lives in foureyes' database, in the `chirp_` tables (`demo_tables`), so the demo needs no
other service; foureyes still reaches it only through the connector contract, as it would a real
platform. Its actions, attributes and status model are in `demo_catalog`.

Exactly-once: a write inserts its idempotency key into `chirp_applied` in the same transaction as
the change. A second execution with the same key finds it and answers the stored summary (and
undo parameters) without changing anything; a refused or failed execution rolls back and leaves
neither. Reads change nothing and record nothing, so reading again is always safe (and
reconciling a read answers False: it must be done again to get its data).

Reconciliation reads `chirp_applied` alone: the key's row is there exactly when its write
committed, so its absence means "not applied", whatever the account looks like now (another
request may have made the same change: docs/reconciliation.md).

Private values (email, phone, messages, session tokens) go only into `ExecutionResult.data`
(and a changed email's previous address into `ExecutionResult.undo_params`, for its undo);
summaries and previews show email and phone redacted (`k***@mail.example`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
from sqlalchemy import Connection, Row, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foureyes.connectors.base import (
    Connector,
    ConnectorContext,
    ExecutionOrder,
    ExecutionResult,
    LocalBulkExecution,
    LocalExecution,
    LocalLookup,
    Reconciliation,
)
from foureyes.connectors.demo_catalog import (
    ACCOUNT_STATUSES,
    ACTIVE,
    DELETED,
    DEMO_ACCOUNT_ATTRIBUTES,
    DEMO_ACTIONS,
    PLATFORM,
    STATUS_CHANGES,
    params_problem,
    plan_change,
    redacted,
    undo_params,
)
from foureyes.connectors.demo_tables import (
    ACCOUNT,
    ACCOUNT_COLUMNS,
    ACCOUNTS,
    APPLIED,
    APPLIED_COLUMNS,
    APPLIED_KEY,
    INSERT_APPLIED,
    INSERT_SESSION,
    PROFILE_AND_POSTS,
    RECENT_MESSAGES_OF,
    RECENT_SIGN_INS_OF,
    REVOKE_SESSIONS,
    SET_STATUS,
    STATE,
    STATE_LOCKED,
    STATES_LOCKED,
    STATUS,
    UPDATE_ACCOUNT,
    ChirpAccountRow,
    ChirpMessageRow,
    ChirpPostRow,
    ChirpSessionRow,
)
from foureyes.connectors.memory import (
    Clock,
    FailureInjector,
    bool_setting,
    check_params,
    int_setting,
    params_validator,
    settings_problem,
    validate_order,
)
from foureyes.connectors.setup import ConnectorSetup
from foureyes.errors import BadInput, ConnectorError, FoureyesError, NotFound, Unavailable
from foureyes.model import Account, ActionKind, ActionSpec, parse_duration, utcnow
from foureyes.policy.catalog import Attribute
from foureyes.store.bulk import chunks, one_of
from foureyes.store.database import Database

# The catalog is constant: each action's spec by name, and its parameters' checker, built once;
# and the actions that no parameters at all fit (their schema, and `params_problem`): most
# orders carry none, and the answer for none never changes.
_SPECS: dict[str, ActionSpec] = {spec.name: spec for spec in DEMO_ACTIONS}
_VALIDATORS: dict[str, jsonschema.Draft202012Validator] = {
    spec.name: params_validator(spec) for spec in DEMO_ACTIONS
}
_NONE_FIT = frozenset(
    name
    for name, checker in _VALIDATORS.items()
    if checker.is_valid({}) and params_problem(name, {}) is None
)


class DemoConnector(Connector):
    """The chirp platform on a foureyes `Database`. Safe to call from several threads: every
    call runs in its own short transaction, and writes lock the account row."""

    platform = PLATFORM

    def __init__(
        self,
        database: Database,
        *,
        name: str = PLATFORM,
        session_ttl: timedelta = timedelta(hours=1),
        fail_next: int = 0,
        fail_transient: bool = True,
        clock: Clock = utcnow,
    ) -> None:
        self.name = name
        self.database = database
        self.session_ttl = session_ttl
        self.failures = FailureInjector(fail_next, transient=fail_transient)
        self._clock = clock

    # --- the contract --------------------------------------------------------------------------

    def actions(self) -> tuple[ActionSpec, ...]:
        return DEMO_ACTIONS

    def account_attributes(self) -> Mapping[str, Attribute]:
        return DEMO_ACCOUNT_ATTRIBUTES

    def action(self, name: str) -> ActionSpec:
        spec = _SPECS.get(name)
        return super().action(name) if spec is None else spec  # none: BadInput, as always

    def probe(self) -> None:
        """Nothing to reach: the demo's accounts live in foureyes' own database, which
        `/healthz` checks itself."""

    def lookup(self, account_id: str) -> Account | None:
        # Read-only and on the connection (no ORM object): every decision looks its account up.
        with self.database.read() as session:
            row = session.connection().execute(ACCOUNT, {"account_id": account_id}).one_or_none()
            return None if row is None else _account(row._mapping)

    def search(self, prefix: str, limit: int) -> tuple[str, ...]:
        # LIKE's own pattern characters are escaped: a prefix is matched as typed.
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.database.read() as session:
            found = session.scalars(
                select(ChirpAccountRow.id)
                .where(ChirpAccountRow.id.like(pattern, escape="\\"))
                .order_by(ChirpAccountRow.id)
                .limit(max(0, limit))
            )
            # SQLite's LIKE ignores case; ids are matched as typed on every store.
            return tuple(account_id for account_id in found if account_id.startswith(prefix))

    def local_lookup(self) -> LocalLookup:
        return LocalLookup(query=ACCOUNT, account=_account)

    def lookup_many(self, account_ids: Sequence[str]) -> Mapping[str, Account]:
        """`lookup` of many accounts, one statement per 1,000, in one read transaction."""
        ids = list(dict.fromkeys(account_ids))
        found: dict[str, Account] = {}
        with self.database.read() as session:
            connection = session.connection()
            for chunk in chunks(ids):
                many = ACCOUNT_COLUMNS.where(one_of(session, ACCOUNTS.c.id, chunk))
                for row in connection.execute(many):
                    found[row.id] = _account(row._mapping)
        return found

    def local_execution(self) -> LocalExecution:
        return self._execute_in

    def local_execution_many(self) -> LocalBulkExecution:
        return self._execute_many_in

    def _execute_many_in(
        self, session: Session, orders: Sequence[ExecutionOrder]
    ) -> list[ExecutionResult | FoureyesError]:
        """`LocalBulkExecution`: status changes (suspend, lock, …; not a delete, which revokes
        sessions) on distinct accounts are checked one by one against the locked rows and
        written in three statements for the lot (lock, applied keys, then one update and
        one insert, executed many); any other order, an account named twice, or a write
        that meets a key written behind foureyes' back, goes through `_execute_in` alone,
        in its own savepoint. An order refused answers its error and changes nothing."""
        answers: dict[int, ExecutionResult | FoureyesError] = {}
        simple: list[int] = []
        alone: list[int] = []
        accounts = [o.account_id for o in orders]
        distinct = len(set(accounts)) == len(accounts)
        for n, order in enumerate(orders):
            try:
                spec = self.action(order.action)
            except FoureyesError as exc:
                answers[n] = exc
                continue
            change = STATUS_CHANGES.get(order.action)
            if distinct and spec.kind is not ActionKind.READ and change is not None:
                simple.append(n) if change.target != DELETED else alone.append(n)
            else:
                alone.append(n)
        if simple:
            alone.extend(self._status_changes(session, orders, simple, answers))
        for n in sorted(alone):
            try:
                answers[n] = self._execute_in(session, orders[n])
            except FoureyesError as exc:
                answers[n] = exc
        return [answers[n] for n in range(len(orders))]

    def _status_changes(
        self,
        session: Session,
        orders: Sequence[ExecutionOrder],
        picked: list[int],
        answers: dict[int, ExecutionResult | FoureyesError],
    ) -> list[int]:
        """The status changes `picked` of `orders`, in bulk (`_execute_many_in`): their
        answers go into `answers`; answers the ones to carry out alone instead."""
        connection = session.connection()
        ids = [orders[n].account_id for n in picked]
        locked = STATES_LOCKED.where(one_of(session, ACCOUNTS.c.id, ids))
        rows = {r.id: r for r in connection.execute(locked)}
        keys = [orders[n].idempotency_key for n in picked]
        applied_keys = APPLIED_COLUMNS.add_columns(APPLIED.c.idempotency_key).where(
            one_of(session, APPLIED.c.idempotency_key, keys)
        )
        done = {a.idempotency_key: a for a in connection.execute(applied_keys)}
        now = self._clock()
        changes: list[dict[str, Any]] = []
        applied: list[dict[str, Any]] = []
        made: dict[int, ExecutionResult] = {}
        valid: set[tuple[str, str]] = set()  # the orders of a chunk share their params
        for n in picked:
            order = orders[n]
            try:
                self.failures.check(self.platform)
                asked = (order.action, json.dumps(order.params, sort_keys=True, default=repr))
                if asked not in valid:
                    _check_params(self.action(order.action), order.params)
                    valid.add(asked)
                row = rows.get(order.account_id)
                if row is None:
                    raise NotFound(f"{self.platform} has no account {order.account_id!r}")
                earlier = done.get(order.idempotency_key)
                if earlier is not None:
                    answers[n] = _replay(earlier, order)
                    continue
                diff = plan_change(order.action, _view(row), order.params)
            except FoureyesError as exc:
                answers[n] = exc
                continue
            summary: dict[str, Any] = {
                "action": order.action,
                "account": row.id,
                "changes": redacted(diff),
            }
            undo = undo_params(order.action, diff)
            changes.append(
                {
                    "b_id": row.id,
                    "b_status": diff["status"][1],
                    "b_reason": order.params.get("reason"),
                }
            )
            applied.append(
                {
                    "idempotency_key": order.idempotency_key,
                    "action": order.action,
                    "account_id": row.id,
                    "applied_at": now,
                    "summary": summary,
                    "undo_params": undo,
                }
            )
            made[n] = ExecutionResult(summary=summary, undo_params=undo)
        if not changes:
            return []
        try:
            with session.begin_nested():
                connection.execute(SET_STATUS, changes)
                connection.execute(INSERT_APPLIED, applied)
        except IntegrityError:
            # A key written behind foureyes' back: nothing of the lot is kept; each goes
            # alone, and only the one in the way is refused.
            return list(made)
        answers.update(made)
        return []

    def _execute_in(self, session: Session, order: ExecutionOrder) -> ExecutionResult:
        """`execute` as a step of foureyes' transaction (`LocalExecution`), in a savepoint: a
        refusal rolls back only what this call did. A read writes nothing, so it needs none
        (nor a flush of the caller's pending changes first: it reads only the platform's
        tables, which foureyes' own changes do not touch). Both read the account afresh, on
        the session's connection (Core statements: no ORM entity, nothing the session's
        identity map could answer from an earlier read)."""
        spec = self.action(order.action)
        self.failures.check(self.platform)
        _check_params(spec, order.params)
        if spec.kind is ActionKind.READ:
            return self._read(session.connection(), order)
        try:
            with session.begin_nested():
                return self._write(session.connection(), order)
        except IntegrityError:
            # The key is the request's id and foureyes holds its row: only rows written behind
            # foureyes' back get here. Nothing of this call is kept.
            raise ConnectorError(
                f"{self.platform}: conflicting write, try again", transient=True
            ) from None

    def execute(self, order: ExecutionOrder) -> ExecutionResult:
        """Carry out `order` once per idempotency key. Raises NotFound for an unknown account,
        ConnectorError(transient=False) for bad parameters or an action that makes no sense in
        the account's state (nothing changes), and injected failures before anything happens.

        Replaying a `login_as` answers its summary but not the session token: the token exists
        only in the answer to the call that opened the session."""
        spec = self.action(order.action)
        self.failures.check(self.platform)
        _check_params(spec, order.params)
        try:
            with self.database.transaction() as session:
                if spec.kind is ActionKind.READ:
                    return self._read(session.connection(), order)
                return self._write(session.connection(), order)
        except Unavailable as exc:
            # The platform's store failed; the transaction rolled back (or, if the commit
            # itself was lost, `reconcile` tells).
            raise ConnectorError(f"{self.platform} is unavailable: {exc}", transient=True) from exc
        except IntegrityError:
            # Another call with the same key committed between our check and our insert
            # (PostgreSQL, when the two orders name different accounts): answer what it did.
            with self.database.transaction() as session:
                found = session.connection().execute(APPLIED_KEY, {"key": order.idempotency_key})
                done = found.one_or_none()
                if done is None:
                    raise ConnectorError(
                        f"{self.platform}: conflicting write, try again", transient=True
                    ) from None
                return _replay(done, order)

    def validate(self, order: ExecutionOrder) -> None:
        """BadInput for an unknown action or parameters that can never work (a new email that
        is not an address); the account's state is checked only when the order executes."""
        spec = self.action(order.action)
        if order.params or spec.name not in _NONE_FIT:
            validate_order(spec, order, chirp=True, validator=_VALIDATORS.get(spec.name))

    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        """From `chirp_applied` alone: True when the order's key was applied (with the summary
        and undo parameters it answered), False when it was not. Never from the account's state:
        an account locked by another request does not make this one applied. Reads: False (do
        them again). A key recorded for another order: cannot tell (None)."""
        spec = self.action(order.action)
        with self.database.transaction() as session:
            connection = session.connection()
            status = connection.execute(STATUS, {"account_id": order.account_id}).scalar()
            state = {} if status is None else {"status": status}
            if spec.kind is ActionKind.READ:
                return Reconciliation(applied=False, state=state)
            found = connection.execute(APPLIED_KEY, {"key": order.idempotency_key})
            done = found.one_or_none()
            if done is None:
                return Reconciliation(applied=False, state=state)
            if (done.action, done.account_id) != (order.action, order.account_id):
                return Reconciliation(
                    applied=None,
                    state=state,
                    why=(
                        f"{self.platform} recorded idempotency key {order.idempotency_key} for "
                        f"{done.action} on {done.account_id}, not for this order"
                    ),
                )
            undo = None if done.undo_params is None else dict(done.undo_params)
            return Reconciliation(
                applied=True, state=state, undo_params=undo, summary=dict(done.summary)
            )

    def preview(self, order: ExecutionOrder) -> Mapping[str, Any]:
        """{attribute: [before, after]} with email and phone redacted; empty for reads and for a
        write that would be refused in the account's current state. NotFound for an unknown
        account."""
        spec = self.action(order.action)
        # A read (no write lock on SQLite), on the connection: the inbox previews every card.
        with self.database.read() as session:
            found = session.connection().execute(STATE, {"account_id": order.account_id})
            row = found.one_or_none()
            if row is None:
                raise NotFound(f"{self.platform} has no account {order.account_id!r}")
            if spec.kind is ActionKind.READ:
                return {}
            try:
                return redacted(plan_change(order.action, _view(row), order.params))
            except ConnectorError:
                return {}

    # --- test and demo hooks -------------------------------------------------------------------

    def inject_failures(self, count: int, *, transient: bool = True) -> None:
        """Make the next `count` executions fail before they change anything."""
        self.failures.inject(count, transient=transient)

    def seed(self, accounts: Sequence[Mapping[str, Any]]) -> list[str]:
        """Create the accounts that do not exist yet (the `accounts:` of examples/staff.yaml:
        `id`, `followers`, `verified`, optionally `handle`, `email`, `phone`, `status`), each
        with a few posts, sign-ins and private messages with its neighbours in the list.
        Accounts that exist are left as they are, so seeding again changes nothing. Answers
        the ids created."""
        entries = [_seed_entry(entry) for entry in accounts]
        ids = [entry["id"] for entry in entries]
        if len(set(ids)) != len(ids):
            raise BadInput("seed accounts: an id appears twice")
        now = self._clock()
        with self.database.transaction() as session:
            existing = set(
                session.scalars(select(ChirpAccountRow.id).where(ChirpAccountRow.id.in_(ids)))
            )
            created = [entry for entry in entries if entry["id"] not in existing]
            for entry in created:
                session.add(ChirpAccountRow(**entry, created_at=now - timedelta(days=400)))
            session.flush()
            for entry in created:
                self._seed_content(session, entry["id"], ids, now)
        return [entry["id"] for entry in created]

    def purge(self, older_than: datetime) -> list[str]:
        """Remove for good the content (posts, messages, sessions) and private data of accounts
        deleted before `older_than`. The account row stays, status `deleted`, so that lookups
        still answer. Answers the ids purged (each account is purged once)."""
        now = self._clock()
        with self.database.transaction() as session:
            rows = session.scalars(
                select(ChirpAccountRow)
                .where(
                    ChirpAccountRow.status == DELETED,
                    ChirpAccountRow.deleted_at < _utc(older_than),
                    ChirpAccountRow.purged_at.is_(None),
                )
                .with_for_update()
            ).all()
            ids = [row.id for row in rows]
            if not ids:
                return []
            session.execute(delete(ChirpPostRow).where(ChirpPostRow.account_id.in_(ids)))
            session.execute(
                delete(ChirpMessageRow).where(
                    or_(ChirpMessageRow.sender_id.in_(ids), ChirpMessageRow.recipient_id.in_(ids))
                )
            )
            session.execute(delete(ChirpSessionRow).where(ChirpSessionRow.account_id.in_(ids)))
            for row in rows:
                row.email = ""
                row.phone = ""
                row.password_hash = None
                row.purged_at = now
            return ids

    # --- inside --------------------------------------------------------------------------------

    def _read(self, connection: Connection, order: ExecutionOrder) -> ExecutionResult:
        viewing = order.action not in ("account.view_private", "account.read_dms")
        asked = {"account_id": order.account_id}
        found = connection.execute(PROFILE_AND_POSTS if viewing else ACCOUNT, asked).all()
        if not found:
            raise NotFound(f"{self.platform} has no account {order.account_id!r}")
        row = found[0]
        summary: dict[str, Any] = {"action": order.action, "account": row.id}
        asked = {"account_id": row.id}
        if order.action == "account.view_private":
            sign_ins = connection.execute(RECENT_SIGN_INS_OF, asked).all()
            summary["revealed"] = ["email", "phone", "sign_ins"]
            data: dict[str, Any] = {
                "email": row.email,
                "phone": row.phone,
                "sign_ins": [{"at": _iso(s.created_at), "address": s.address} for s in sign_ins],
            }
        elif order.action == "account.read_dms":
            messages = connection.execute(RECENT_MESSAGES_OF, asked).all()
            summary["messages"] = len(messages)
            data = {
                "messages": [
                    {
                        "id": m.id,
                        "from": m.sender_id,
                        "to": m.recipient_id,
                        "body": m.body,
                        "sent_at": _iso(m.sent_at),
                    }
                    for m in messages
                ]
            }
        else:
            data = {
                "handle": row.handle,
                "followers": row.followers,
                "verified": row.verified,
                "status": row.status,
                "posts": [
                    {"id": p.post_id, "body": p.body, "posted_at": _iso(p.posted_at)}
                    for p in found
                    if p.post_id is not None
                ],
            }
        return ExecutionResult(summary=summary, data=data)

    def _write(self, connection: Connection, order: ExecutionOrder) -> ExecutionResult:
        # Lock the account first: a concurrent call with the same key waits here and then sees
        # the key below (PostgreSQL reads committed rows afresh in each statement).
        found = connection.execute(STATE_LOCKED, {"account_id": order.account_id})
        row = found.one_or_none()
        if row is None:
            raise NotFound(f"{self.platform} has no account {order.account_id!r}")
        done = connection.execute(APPLIED_KEY, {"key": order.idempotency_key}).one_or_none()
        if done is not None:
            return _replay(done, order)
        diff = plan_change(order.action, _view(row), order.params)
        now = self._clock()
        summary: dict[str, Any] = {
            "action": order.action,
            "account": row.id,
            "changes": redacted(diff),
        }
        data: dict[str, Any] | None = None
        undo = undo_params(order.action, diff)
        changed: dict[str, Any] = {}  # the account's columns, as `UPDATE_ACCOUNT` sets them
        if "status" in diff:
            changed["status"] = diff["status"][1]
            changed["status_reason"] = order.params.get("reason")
            if changed["status"] == DELETED:
                changed["deleted_at"] = now
                summary["sessions_revoked"] = _revoke_sessions(connection, row.id, now)
        if "email" in diff:
            changed["email"] = diff["email"][1]
        if "password" in diff:
            changed["password_hash"] = None
            changed["password_reset_pending"] = True
            summary["sessions_revoked"] = _revoke_sessions(connection, row.id, now)
        if changed:
            connection.execute(UPDATE_ACCOUNT, {"b_id": row.id, **changed})
        if "impersonation_session" in diff:
            data = self._open_session(connection, row.id, order, now)
            summary["session_id"] = data["session_id"]
            summary["expires_at"] = data["expires_at"]
        connection.execute(
            INSERT_APPLIED,
            {
                "idempotency_key": order.idempotency_key,
                "action": order.action,
                "account_id": row.id,
                "applied_at": now,
                "summary": summary,
                "undo_params": undo,
            },
        )
        return ExecutionResult(summary=summary, data=data, undo_params=undo)

    def _open_session(
        self, connection: Connection, account_id: str, order: ExecutionOrder, now: datetime
    ) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        session_id = secrets.token_hex(16)
        expires_at = now + self.session_ttl
        connection.execute(
            INSERT_SESSION,
            {
                "id": session_id,
                "account_id": account_id,
                "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                "address": "",
                "impersonated_by": order.requester or "foureyes",
                "request_key": order.idempotency_key,
                "created_at": now,
                "expires_at": expires_at,
            },
        )
        return {"session_id": session_id, "session_token": token, "expires_at": _iso(expires_at)}

    def _seed_content(
        self, session: Session, account_id: str, ids: list[str], now: datetime
    ) -> None:
        for n in range(3):
            session.add(
                ChirpPostRow(
                    account_id=account_id,
                    body=f"Post {n + 1} from @{account_id}.",
                    posted_at=now - timedelta(days=30 - n),
                )
            )
        for n in range(2):
            session.add(
                ChirpSessionRow(
                    id=secrets.token_hex(16),
                    account_id=account_id,
                    token_sha256=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
                    address=f"198.51.100.{zlib.crc32(account_id.encode()) % 200 + n + 1}",
                    created_at=now - timedelta(days=2 - n, hours=3),
                    expires_at=now - timedelta(days=1 - n),
                )
            )
        # Private messages with the next account in the list (or a note to self when alone).
        peer = ids[(ids.index(account_id) + 1) % len(ids)]
        exchange = [
            (account_id, peer, f"Hi @{peer}, it's @{account_id}. Can we talk in private?"),
            (peer, account_id, f"Sure @{account_id}, this is between us."),
            (account_id, peer, "My new phone number is in my profile; don't share it."),
        ]
        for n, (sender, recipient, body) in enumerate(exchange):
            session.add(
                ChirpMessageRow(
                    sender_id=sender,
                    recipient_id=recipient,
                    body=body,
                    sent_at=now - timedelta(hours=10 - n),
                )
            )


def _replay(done: Row[*tuple[Any, ...]], order: ExecutionOrder) -> ExecutionResult:
    """What the write recorded under the order's key (`done`, its `APPLIED_COLUMNS`) answered,
    again; ConnectorError(transient=False) when the key was used for another order."""
    if (done.action, done.account_id) != (order.action, order.account_id):
        raise ConnectorError(
            f"idempotency key {order.idempotency_key} was used for {done.action} on "
            f"{done.account_id}",
            transient=False,
        )
    undo = None if done.undo_params is None else dict(done.undo_params)
    return ExecutionResult(summary=dict(done.summary), undo_params=undo)


def _revoke_sessions(connection: Connection, account_id: str, now: datetime) -> int:
    result = connection.execute(REVOKE_SESSIONS, {"b_account": account_id, "b_now": now})
    return int(result.rowcount or 0)


def _check_params(spec: ActionSpec, params: Mapping[str, Any]) -> None:
    """`check_params` with the action's checker built once (`_VALIDATORS`), and no check of
    no parameters for an action they fit (`_NONE_FIT`)."""
    if params or spec.name not in _NONE_FIT:
        check_params(spec, params, _VALIDATORS.get(spec.name))


def _view(row: Any) -> dict[str, Any]:
    """What the status model needs to know about an account (its `STATE_COLUMNS`)."""
    return {
        "id": row.id,
        "status": row.status,
        "email": row.email,
        "password_set": row.password_hash is not None,
        "password_reset_pending": row.password_reset_pending,
    }


def _account(row: Mapping[Any, Any]) -> Account:
    """The account from its `ACCOUNT` columns (a row's mapping, or the same as JSON: SQLite
    gives `verified` as 0 or 1 there)."""
    return Account(
        platform=PLATFORM,
        id=row["id"],
        attributes={
            "handle": row["handle"],
            "followers": int(row["followers"]),
            "verified": bool(row["verified"]),
            "status": row["status"],
            "email": row["email"],
            "phone": row["phone"],
        },
    )


def _seed_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    known = {"id", "handle", "followers", "verified", "email", "phone", "status"}
    problem = settings_problem(entry, known)
    account_id = entry.get("id")
    if not isinstance(account_id, str) or not account_id:
        raise BadInput("seed accounts: every account needs an id (a non-empty string)")
    if problem:
        raise BadInput(f"seed account {account_id!r}: {problem}")
    followers = entry.get("followers", 0)
    if isinstance(followers, bool) or not isinstance(followers, int) or followers < 0:
        raise BadInput(f"seed account {account_id!r}: followers must be a whole number ≥ 0")
    status = entry.get("status", ACTIVE)
    if status not in ACCOUNT_STATUSES:
        raise BadInput(f"seed account {account_id!r}: unknown status {status!r}")
    digits = zlib.crc32(account_id.encode()) % 10_000
    return {
        "id": account_id,
        "handle": str(entry.get("handle", account_id)),
        "followers": followers,
        "verified": bool(entry.get("verified", False)),
        "email": str(entry.get("email", f"{account_id}@mail.example")),
        "phone": str(entry.get("phone", f"+1 555 01{digits:04d}")),
        "status": status,
        # The demo's users never sign in with a password; any valid hash will do.
        "password_hash": "sha256$" + hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    """SQLite hands times back without their zone; they are UTC (stored so)."""
    return _utc(moment).isoformat()


_SETTINGS = ("fail_next", "fail_transient", "session_ttl")


SETUP = ConnectorSetup(
    kind="demo",
    platform="chirp",
    summary="the demo microblog, whose accounts live in foureyes' own database",
    needs_database=True,
)


def create(name: str, settings: Mapping[str, Any], context: ConnectorContext) -> DemoConnector:
    """The `demo` entry point. `context.database` is the foureyes `Database` (the chirp tables
    must exist in it: migrations, or `Base.metadata.create_all`). Settings (all optional):
    `fail_next` (fail the next n executions), `fail_transient`, `session_ttl` (`1h`)."""
    problem = settings_problem(settings, _SETTINGS)
    if problem:
        raise BadInput(f"connector {name}: {problem}")
    database = context.database
    if not isinstance(database, Database):
        raise BadInput(f"connector {name}: the demo platform needs foureyes' database")
    try:
        ttl = parse_duration(str(settings.get("session_ttl", "1h")))
    except ValueError as exc:
        raise BadInput(f"connector {name}: session_ttl: {exc}") from None
    return DemoConnector(
        database,
        name=name,
        session_ttl=ttl,
        fail_next=int_setting(settings, "fail_next"),
        fail_transient=bool_setting(settings, "fail_transient", True),
    )
