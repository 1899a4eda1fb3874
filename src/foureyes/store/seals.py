"""Seals: what the audit log last recorded of each record that decisions and sign-ins read.

A person's directory record (with their login identities), a local token, a console session,
a step-up credential and the set of an account's pins are store rows that a database
administrator can edit. Each is a *subject*, named like an account of foureyes' own platform
(`foureyes:staff/e-3002`, `foureyes:token/<id>`, `foureyes:pins/chirp:president`,
`foureyes:session/<id>`, `foureyes:step-up-key/<id>`, `foureyes:security-key/<id>`,
`foureyes:login/<name>`). Every
change foureyes makes to a subject appends, in the same transaction, a `row.sealed` audit event
about it (the event's account is the subject) carrying the SHA-256 of the subject's fields as
they are now (`sha256`; null once it is gone): its *seal* (`foureyes.core.sealing` writes
them). The row is a cache; the log says what it must hold.

Wherever a subject is read for a decision or a sign-in, the read also fetches the subject's
latest seal, in the same statement (one snapshot: `latest_seal`, a backward step on the
`(account_ref, seq)` index, so it costs the same however long the log), and `check` compares
the digest of what was read with it. A record the log never sealed, or whose digest differs,
was written behind foureyes' back: `RecordAltered`, and nothing is decided on it.

Digests are SHA-256 over compact JSON with sorted keys of `{"v": 1, "of": kind, "key": key,
...fields}`, the fields as the store gives them back (times in UTC ISO 8601, dates ISO 8601).
Only what decisions and sign-ins read is covered: not a session's `last_seen_at`, a security
key's signature counter, a person's `gained_approver_groups` (the detectors' flag) or
`updated_at`, which change without a new seal.

Seals are only as strong as the log: a database administrator who also appends a forged
`row.sealed` event is not told from foureyes here (appending needs no key); the forged event
stays in the log for good (`audit verify` proves it is there, and when).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    String,
    bindparam,
    literal,
    literal_column,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from foureyes.errors import RecordAltered
from foureyes.store.tables import (
    ConsoleSessionRow,
    EventRow,
    GovernanceAppliedRow,
    IdentityRow,
    LoginRow,
    PinRow,
    StaffRow,
    StepUpKeyRow,
    TokenRow,
    WebAuthnCredentialRow,
)
from foureyes.store.tree import in_tree

__all__ = [
    "BASELINE",
    "BASELINE_REF",
    "EVERYONE",
    "KINDS",
    "PERSON",
    "PINS",
    "SEALED",
    "check",
    "current_digest",
    "json_list",
    "keys",
    "latest_seal",
    "login_digest",
    "pins_digest",
    "ref",
    "sealed_digest",
    "session_digest",
    "split",
    "staff_digest",
    "token_digest",
]

SEALED = "row.sealed"
# The event that says a store's records are sealed from here on (`foureyes init`, or the first
# start after the upgrade that brought seals: `foureyes.core.sealing.baseline`).
BASELINE = "seals.baseline"
BASELINE_REF = "foureyes:seals"

STAFF = "staff"
TOKEN = "token"  # noqa: S105 - a kind of record, not a secret
PINS_KIND = "pins"
SESSION = "session"
STEP_UP_KEY = "step-up-key"
SECURITY_KEY = "security-key"
LOGIN = "login"
# foureyes' record that it carried out one of its own actions (`governance_applied`, by the
# request id): a record written in would make an approved policy, staff or pin change, or a
# credential enrolment, end `executed` without being applied (`foureyes.workflow.governance`).
APPLIED = "applied"
KINDS = (STAFF, TOKEN, PINS_KIND, SESSION, STEP_UP_KEY, SECURITY_KEY, LOGIN, APPLIED)
_PREFIX = "foureyes:"
_VERSION = 1


def ref(kind: str, key: str) -> str:
    """The subject `key` of `kind` (`ref("staff", "e-3002")` is ``foureyes:staff/e-3002``)."""
    return f"{_PREFIX}{kind}/{key}"


def split(subject: str) -> tuple[str, str]:
    """(kind, key) of a subject; ValueError for anything else."""
    kind, slash, key = subject.removeprefix(_PREFIX).partition("/")
    if not subject.startswith(_PREFIX) or not slash or kind not in KINDS:
        raise ValueError(f"not a sealed subject: {subject!r}")
    return kind, key


def _ref_sql(kind: str, key: Any) -> ColumnElement[str]:
    # Constants written into the SQL, not bound: the dry run sends the compiled statement
    # through psycopg with its own parameters only (`foureyes.store.dry_run_reads`).
    prefix: ColumnElement[str] = literal_column(f"'{_PREFIX}{kind}/'", String)
    subject: ColumnElement[str] = prefix + key
    return subject


# --- the reads -------------------------------------------------------------------------------


class json_list(FunctionElement[Any]):  # noqa: N801 - an SQL function, named like one
    """A JSON array of one column over the rows of a (sub)query: `json_agg` on PostgreSQL,
    `json_group_array` on SQLite. NULL on PostgreSQL when there are no rows."""

    type = JSON()
    name = "json_list"
    inherit_cache = True


@compiles(json_list, "postgresql")
def _json_agg(element: json_list, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_agg({compiler.process(element.clauses, **kw)})"


@compiles(json_list)
def _json_group_array(element: json_list, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array({compiler.process(element.clauses, **kw)})"


def latest_seal(subject: ColumnElement[str]) -> Any:
    """The body of the subject's latest `row.sealed` event (NULL when it has none), as a scalar
    subquery: one backward step on the `(account_ref, seq)` index."""
    return (
        select(EventRow.body)
        .where(
            EventRow.account_ref == subject,
            EventRow.kind == literal_column(f"'{SEALED}'"),
            in_tree(),
        )
        .order_by(EventRow.seq.desc())
        .limit(literal_column("1", Integer))
        .scalar_subquery()
    )


def staff_seal() -> Any:
    """`latest_seal` of the person in the statement's `staff` row."""
    return latest_seal(_ref_sql(STAFF, StaffRow.id))


def identities_of_person() -> Any:
    """The login identities of the person in the statement's `staff` row, as a JSON array."""
    return (
        select(json_list(IdentityRow.identity))
        .where(IdentityRow.staff_id == StaffRow.id)
        .scalar_subquery()
    )


PERSON_COLUMNS = (
    StaffRow.id,
    StaffRow.name,
    StaffRow.email,
    StaffRow.groups,
    StaffRow.employment,
    StaffRow.vendor,
    StaffRow.region,
    StaffRow.manager,
    StaffRow.starts,
    StaffRow.ends,
    StaffRow.status,
    StaffRow.attributes,
)
# Everyone, by id, and a person (by `staff_id`): their directory record, identities and latest
# seal, one snapshot.
EVERYONE = select(
    *PERSON_COLUMNS,
    identities_of_person().label("identities"),
    staff_seal().label("staff_seal"),
).order_by(StaffRow.id)
PERSON = EVERYONE.where(StaffRow.id == bindparam("staff_id"))


def pins_columns(account_ref: Any) -> tuple[Any, Any]:
    """An account's pins (a JSON array) and their latest seal, as two scalar subqueries."""
    pins = select(json_list(PinRow.pin)).where(PinRow.account_ref == account_ref)
    return pins.scalar_subquery(), latest_seal(_ref_sql(PINS_KIND, account_ref))


_pins, _pins_seal = pins_columns(bindparam("account_ref"))
# An account's pins (by `account_ref`) and their latest seal, one snapshot.
PINS = select(_pins.label("pins"), _pins_seal.label("pins_seal"))

_TOKEN = select(
    TokenRow.id,
    TokenRow.staff_id,
    TokenRow.identity,
    TokenRow.secret_sha256,
    TokenRow.expires_at,
    TokenRow.revoked_at,
).where(TokenRow.id == bindparam("key"))
_SESSION = select(ConsoleSessionRow).where(ConsoleSessionRow.id == bindparam("key"))
_STEP_UP_KEY = select(StepUpKeyRow).where(StepUpKeyRow.id == bindparam("key"))
_SECURITY_KEY = select(WebAuthnCredentialRow).where(WebAuthnCredentialRow.id == bindparam("key"))
_LOGIN = select(LoginRow).where(LoginRow.identity == bindparam("key"))
_APPLIED = select(GovernanceAppliedRow.action, GovernanceAppliedRow.summary).where(
    GovernanceAppliedRow.idempotency_key == bindparam("key")
)
# foureyes' record of carrying out the action of request `key`, and its latest seal, one
# snapshot: NULL action and summary when there is none.
APPLIED_RECORD = select(
    _APPLIED.with_only_columns(GovernanceAppliedRow.action).scalar_subquery().label("action"),
    _APPLIED.with_only_columns(GovernanceAppliedRow.summary).scalar_subquery().label("summary"),
    latest_seal(_ref_sql(APPLIED, bindparam("key"))).label("seal"),
)


def token_seal(token_id: Any) -> Any:
    return latest_seal(_ref_sql(TOKEN, token_id))


def session_seal(session_id: Any) -> Any:
    return latest_seal(_ref_sql(SESSION, session_id))


def login_seal(identity: Any) -> Any:
    return latest_seal(_ref_sql(LOGIN, identity))


# --- digests ---------------------------------------------------------------------------------


def _plain(value: object) -> object:
    """A stored value as JSON holds it: times in UTC (a driver may give them in another zone),
    dates ISO 8601, bytes as their SHA-256."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return hashlib.sha256(bytes(value)).hexdigest()
    raise TypeError(f"{type(value).__name__} in a sealed record")


def _digest(kind: str, key: str, fields: Mapping[str, Any]) -> str:
    body = {"v": _VERSION, "of": kind, "key": key, **fields}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def staff_digest(record: Any, identities: Iterable[str] | None) -> str:
    """A person's record (a `PERSON`-like row or a `StaffRow`) with their login identities."""
    return _digest(
        STAFF,
        record.id,
        {
            "name": record.name,
            "email": record.email,
            "groups": list(record.groups or ()),
            "employment": record.employment,
            "vendor": record.vendor,
            "region": record.region,
            "manager": record.manager,
            "starts": record.starts,
            "ends": record.ends,
            "status": record.status,
            "attributes": dict(record.attributes or {}),
            "identities": sorted(identities or ()),
        },
    )


def token_digest(
    token_id: str,
    *,
    staff: str,
    identity: str,
    secret_sha256: str,
    expires_at: datetime | None,
    revoked_at: datetime | None,
) -> str:
    """A local token: whose, as which login, the hash of its secret, its expiry, its revocation."""
    return _digest(
        TOKEN,
        token_id,
        {
            "staff": staff,
            "identity": identity,
            "secret_sha256": secret_sha256,
            "expires_at": expires_at,
            "revoked_at": revoked_at,
        },
    )


def pins_digest(account_ref: str, pins: Iterable[str] | None) -> str:
    """The set of an account's pins (an account never pinned has the empty set's)."""
    return _digest(PINS_KIND, account_ref, {"pins": sorted(pins or ())})


def session_digest(row: ConsoleSessionRow) -> str:
    """A console session: whose, as which login, how it was opened, and its lifetime."""
    return _digest(
        SESSION,
        row.id,
        {
            "staff": row.staff_id,
            "identity": row.identity,
            "method": row.method,
            "token_id": row.token_id,
            "created_at": row.created_at,
            "expires_at": row.expires_at,
        },
    )


def login_digest(row: LoginRow) -> str:
    """A login's record: its last holder, when it left them, the identity provider's account
    it is bound to, the earliest issue time of a provider token for it, the accounts retired."""
    return _digest(
        LOGIN,
        row.identity,
        {
            "holder": row.holder,
            "released_at": row.released_at,
            "issuer": row.issuer,
            "subject": row.subject,
            "bound_at": row.bound_at,
            "not_before": row.not_before,
            "retired": list(row.retired or ()),
        },
    )


def credential_digest(row: Any, kind: str | None = None) -> str:
    """A step-up credential: whose, its key (and a security key's credential id), from when it
    counts, its revocation (not its signature counter or when it was last used). `row` is a
    `StepUpKeyRow` or `WebAuthnCredentialRow`, or a plain row of either's columns with `kind`."""
    fields: dict[str, Any] = {
        "staff": row.staff_id,
        "public_key": row.public_key,
        "counts_from": row.counts_from,
        "revoked_at": row.revoked_at,
    }
    if kind == SECURITY_KEY or (kind is None and isinstance(row, WebAuthnCredentialRow)):
        fields["credential_id"] = row.credential_id
        return _digest(SECURITY_KEY, row.id, fields)
    return _digest(STEP_UP_KEY, row.id, fields)


def applied_digest(key: str, action: str, summary: Mapping[str, Any] | None) -> str:
    """foureyes' record of carrying out request `key`'s action: the action and the summary
    it keeps (what a repeat and reconciliation answer)."""
    return _digest(APPLIED, key, {"action": action, "summary": dict(summary or {})})


def credential_ref(row: StepUpKeyRow | WebAuthnCredentialRow) -> str:
    kind = SECURITY_KEY if isinstance(row, WebAuthnCredentialRow) else STEP_UP_KEY
    return ref(kind, row.id)


# --- the check -------------------------------------------------------------------------------


class _Unsealed:
    """No `row.sealed` event names the subject."""


UNSEALED = _Unsealed()


def sealed_digest(body: object, subject: str) -> str | _Unsealed | None:
    """What a subject's latest seal event (its stored body, or None) says: the digest, None
    for a record foureyes removed, UNSEALED when there is no event. The body, not the columns
    the event was found by, must name the subject (`audit verify --copies` checks those)."""
    if body is None:
        return UNSEALED
    raw = bytes(body) if isinstance(body, bytes | bytearray | memoryview) else str(body).encode()
    return _parsed(raw, subject)


@functools.lru_cache(maxsize=4096)
def _parsed(raw: bytes, subject: str) -> str | _Unsealed | None:
    """`sealed_digest` of a body's bytes (the same few seals are read on every call)."""
    try:
        event = json.loads(raw)
    except ValueError:
        event = None
    if (
        not isinstance(event, dict)
        or event.get("kind") != SEALED
        or event.get("account") != subject
        or not isinstance(event.get("sha256"), str | None)
    ):
        return "(a seal event that does not name it)"  # matches no digest: fails closed
    value = event.get("sha256")
    return value if isinstance(value, str) else None


def check(subject: str, found: str, seal: object, *, staff: str | None, what: str) -> None:
    """RecordAltered unless `found` (the digest of what was read of `subject`) is what its
    latest seal (`seal`: the event's body as read with it, or None) recorded. `what` names the
    record for people ("the directory record of e-3002"); `staff` is whom it concerns."""
    sealed = sealed_digest(seal, subject)
    if isinstance(sealed, _Unsealed) and split(subject)[0] == PINS_KIND:
        sealed = pins_digest(split(subject)[1], ())  # never pinned: no pins
    if found == sealed:
        return
    why = (
        "the audit log never recorded it"
        if isinstance(sealed, _Unsealed)
        else "it is not what the audit log last recorded for it"
    )
    raise RecordAltered(
        f"{what} was changed outside foureyes ({why}): nothing is decided on it until it is "
        "restored",
        record=subject,
        staff=staff,
        found=found,
        sealed=None if isinstance(sealed, _Unsealed) else sealed,
    )


def check_token_record(record: Any, identities: Iterable[str], token_id: str) -> None:
    """`check` the token and its person as a `TOKEN_AND_PERSON` row read them (its
    `token_seal` and `staff_seal`): a token row the log never sealed (made without `foureyes
    staff token`), one un-revoked, extended or handed to someone else, and a person's record
    or logins changed behind foureyes' back all raise RecordAltered."""
    check(
        ref(TOKEN, token_id),
        token_digest(
            token_id,
            staff=record.id,
            identity=record.token_identity,
            secret_sha256=record.secret_sha256,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
        ),
        record.token_seal,
        staff=record.id,
        what=f"token {token_id}",
    )
    check(
        ref(STAFF, record.id),
        staff_digest(record, identities),
        record.staff_seal,
        staff=record.id,
        what=f"the directory record of {record.id}",
    )


# --- the current state (what the sealing writes) -----------------------------------------------


def current_digest(session: Session, subject: str) -> str | None:
    """The digest of `subject` as the store holds it now, in the session's transaction (None
    when it is not there), read with the same statements as the checks read it."""
    kind, key = split(subject)
    connection = session.connection()
    if kind == STAFF:
        person = connection.execute(PERSON, {"staff_id": key}).one_or_none()
        return None if person is None else staff_digest(person, person.identities)
    if kind == PINS_KIND:
        pins = connection.execute(PINS, {"account_ref": key}).one()
        return pins_digest(key, pins.pins)
    if kind == TOKEN:
        token = connection.execute(_TOKEN, {"key": key}).one_or_none()
        if token is None:
            return None
        return token_digest(
            token.id,
            staff=token.staff_id,
            identity=token.identity,
            secret_sha256=token.secret_sha256,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
        )
    # The rest as plain rows on the connection, never the session's objects: a row this
    # transaction is about to change must be read as stored (`stored_state`, before a flush).
    if kind == SESSION:
        found = _stored(session, _SESSION, key)
        return None if found is None else session_digest(found)
    if kind == LOGIN:
        login = _stored(session, _LOGIN, key)
        return None if login is None else login_digest(login)
    if kind == APPLIED:
        applied = _stored(session, _APPLIED, key)
        return None if applied is None else applied_digest(key, applied.action, applied.summary)
    query = _STEP_UP_KEY if kind == STEP_UP_KEY else _SECURITY_KEY
    credential = _stored(session, query, key)
    return None if credential is None else credential_digest(credential, kind)


def _stored(session: Session, query: Any, key: str) -> Any:
    """The one row `query` finds for `key`, as the store holds it (None: none)."""
    return session.connection().execute(query, {"key": key}).one_or_none()


def keys(session: Session, kind: str) -> list[str]:
    """Every subject of `kind` the store holds now (an account with pins, for `pins`)."""
    column: Any = {
        STAFF: StaffRow.id,
        TOKEN: TokenRow.id,
        PINS_KIND: PinRow.account_ref,
        SESSION: ConsoleSessionRow.id,
        STEP_UP_KEY: StepUpKeyRow.id,
        SECURITY_KEY: WebAuthnCredentialRow.id,
        LOGIN: LoginRow.identity,
        APPLIED: GovernanceAppliedRow.idempotency_key,
    }[kind]
    return sorted({ref(kind, key) for key in session.connection().scalars(select(column))})


def sealed_now(session: Session, subject: str) -> str | _Unsealed | None:
    """What the subject's latest seal says, read in the session's transaction."""
    body = session.connection().scalar(select(latest_seal(literal(subject))))
    return sealed_digest(body, subject)


# --- a record as it was before this transaction changes it --------------------------------------

# The row of a subject, to lock (on PostgreSQL) before reading it, so that nobody else changes
# it until the COMMIT: FOR NO KEY UPDATE, which any UPDATE or DELETE of it waits for, while rows
# that merely refer to it (a token of the person, a session with the token) are still written.
# A person's logins and an account's pins are rows of their own, which may be inserted or moved
# meanwhile: they are the subject's *members*, compared again at the COMMIT
# (`foureyes.core.sealing`).
_ROWS: dict[str, Any] = {
    STAFF: StaffRow.id,
    TOKEN: TokenRow.id,
    SESSION: ConsoleSessionRow.id,
    STEP_UP_KEY: StepUpKeyRow.id,
    SECURITY_KEY: WebAuthnCredentialRow.id,
    LOGIN: LoginRow.identity,
    APPLIED: GovernanceAppliedRow.idempotency_key,
}


def stored_state(
    session: Session, subject: str, *, lock: bool
) -> tuple[str | None, str | _Unsealed | None, frozenset[str] | None]:
    """The digest of `subject` as the store holds it (None: not there), what its latest seal
    says, and its members (a person's logins, an account's pins; None for other kinds), read on
    the session's connection, never from the session's objects: called before a flush, it reads
    the record as it was before this transaction's pending change to it. With `lock`
    (PostgreSQL), its row is locked first (`_ROWS`). A person and pins are read with their seal
    in one statement (one snapshot); the other records are locked, so their seal cannot move
    between the two reads."""
    kind, key = split(subject)
    connection = session.connection()
    column = _ROWS.get(kind)
    if lock and column is not None:
        connection.execute(select(column).where(column == key).with_for_update(key_share=True))
    if kind == STAFF:
        person = connection.execute(PERSON, {"staff_id": key}).one_or_none()
        if person is not None:
            logins = frozenset(person.identities or ())
            return (
                staff_digest(person, logins),
                sealed_digest(person.staff_seal, subject),
                logins,
            )
        return None, sealed_now(session, subject), frozenset()
    if kind == PINS_KIND:
        found = connection.execute(PINS, {"account_ref": key}).one()
        pins = frozenset(found.pins or ())
        return pins_digest(key, pins), sealed_digest(found.pins_seal, subject), pins
    return current_digest(session, subject), sealed_now(session, subject), None


def current_state(session: Session, subject: str) -> tuple[str | None, frozenset[str] | None]:
    """The digest of `subject` as the store holds it now and its members (None for kinds
    without), from one statement."""
    kind, key = split(subject)
    connection = session.connection()
    if kind == STAFF:
        person = connection.execute(PERSON, {"staff_id": key}).one_or_none()
        if person is None:
            return None, frozenset()
        logins = frozenset(person.identities or ())
        return staff_digest(person, logins), logins
    if kind == PINS_KIND:
        pins = frozenset(connection.execute(PINS, {"account_ref": key}).one().pins or ())
        return pins_digest(key, pins), pins
    return current_digest(session, subject), None


def describe(subject: str) -> str:
    """A subject for people: "the directory record of e-3002", "token 3f…", ..."""
    kind, key = split(subject)
    return {
        STAFF: f"the directory record of {key}",
        TOKEN: f"token {key}",
        PINS_KIND: f"the pins of {key}",
        SESSION: f"console session {key[:12]}…",
        STEP_UP_KEY: f"step-up key {key}",
        SECURITY_KEY: f"security key {key}",
        LOGIN: f"the record of login {key}",
        APPLIED: f"foureyes' record of carrying out request {key}",
    }.get(kind, subject)


def check_state(
    subject: str,
    found: str | None,
    sealed: str | _Unsealed | None,
    *,
    staff: str | None = None,
    what: str | None = None,
) -> None:
    """RecordAltered unless `found` (the digest of the record as stored, None when it is not
    there) is what the latest seal (`sealed`, from `sealed_digest`) says: a record never sealed
    must not be there (an account never pinned has no pins), a record sealed as gone neither."""
    expected: str | None
    if isinstance(sealed, _Unsealed):
        kind, key = split(subject)
        expected = pins_digest(key, ()) if kind == PINS_KIND else None
    else:
        expected = sealed
    if found == expected:
        return
    if expected is None and isinstance(sealed, _Unsealed):
        why = "the audit log never recorded it"
    elif found is None:
        why = "it was removed, and the audit log last recorded it as there"
    else:
        why = "it is not what the audit log last recorded for it"
    raise RecordAltered(
        f"{what or describe(subject)} was changed outside foureyes ({why}): nothing is "
        "decided on it until it is restored",
        record=subject,
        staff=staff if staff is not None else (key_of(subject, STAFF)),
        found=found,
        sealed=expected,
    )


def key_of(subject: str, kind: str) -> str | None:
    """The key of `subject` if it is of `kind`, else None."""
    found_kind, key = split(subject)
    return key if found_kind == kind else None


def check_applied(key: str, record: Any) -> tuple[str, dict[str, Any]] | None:
    """foureyes' record of carrying out request `key` (an `APPLIED_RECORD` row) checked
    against its seal: (action, summary) when foureyes wrote it, None when there is none and
    the log never recorded one. RecordAltered for a record written in, changed, or deleted
    behind foureyes' back."""
    subject = ref(APPLIED, key)
    found = None if record.action is None else applied_digest(key, record.action, record.summary)
    check_state(subject, found, sealed_digest(record.seal, subject))
    if record.action is None:
        return None
    return str(record.action), dict(record.summary or {})
