"""The staff directory in the store: local tokens, and authentication. (The HR import that
fills it is `foureyes.workflow.staff`.)

Tokens are random secrets of which only the SHA-256 is stored; the operator lists them and
revokes one at once (`list_tokens`, `revoke_token`). A token is bound to one login identity of
its person; it works only while that login is still theirs (an import that moves or removes the
login also revokes the token, in its transaction).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.auth import dead_credentials, logins, sessions
from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, DeadCredential, NotFound, RecordAltered, Unauthenticated
from foureyes.model import Staff
from foureyes.store import seals
from foureyes.store.one_row import Compiled, OneRow
from foureyes.store.queries import (
    TOKEN_AND_PERSON_AS_TEXT,
    TOKEN_AND_PERSON_JSON,
    staff_from_record,
)
from foureyes.store.tables import IdentityRow, StaffRow, TokenRow
from foureyes.text import refuse_unseen

TOKEN_PREFIX = "fey"  # noqa: S105 - a token prefix, not a secret
LOGIN_GONE = "this credential no longer works: its login is no longer this person's"


# --- tokens --------------------------------------------------------------------------------


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    services: Services,
    staff_id: str,
    *,
    identity: str | None = None,
    label: str = "",
    lifetime: timedelta | None = timedelta(days=90),
) -> str:
    """A new bearer token for one person (returned once, stored hashed). A `label` holding
    what a reader cannot see is BadInput (`foureyes.text.refuse_unseen`: it goes to the log)."""
    refuse_unseen(label, "label")
    with services.database.transaction() as session:
        now = services.clock()
        row = session.get(StaffRow, staff_id)
        if row is None:
            raise NotFound(f"no staff member {staff_id!r}")
        login = identity or staff_id
        link = session.get(IdentityRow, login)
        if link is None or link.staff_id != staff_id:
            raise BadInput(f"{login!r} is not an identity of {staff_id}")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        session.add(
            TokenRow(
                id=token_id,
                staff_id=staff_id,
                identity=login,
                secret_sha256=_sha256(secret),
                label=label,
                created_at=now,
                expires_at=now + lifetime if lifetime else None,
            )
        )
        record(
            services,
            session,
            kind="token.issued",
            actor=None,
            row=None,
            payload={"staff": staff_id, "identity": login, "token_id": token_id, "label": label},
            now=now,
        )
    return f"{TOKEN_PREFIX}_{token_id}_{secret}"


@dataclass(frozen=True)
class TokenView:
    """One local token as the operator sees it: never its secret, nor the secret's hash."""

    id: str
    staff_id: str
    identity: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        """The token's state at `now`: revoked, expired or active (revoked wins over expired:
        it is what someone did about it)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _token_view(row: TokenRow) -> TokenView:
    return TokenView(
        id=row.id,
        staff_id=row.staff_id,
        identity=row.identity,
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def list_tokens(services: Services, staff_id: str | None = None) -> list[TokenView]:
    """Every local token (or one person's), by person then oldest first, expired and revoked
    ones included. NotFound when `staff_id` names no one on the staff."""
    with services.database.read() as session:
        query = select(TokenRow).order_by(TokenRow.staff_id, TokenRow.created_at, TokenRow.id)
        if staff_id is not None:
            if session.get(StaffRow, staff_id) is None:
                raise NotFound(f"no staff member {staff_id!r}")
            query = query.where(TokenRow.staff_id == staff_id)
        return [_token_view(row) for row in session.scalars(query)]


def revoke_token(services: Services, token_id: str) -> TokenView:
    """Revoke a local token at once: `revoked_at` is set to now and the `token.revoked` event
    written in the same transaction; from the next request on, the API refuses the token
    ("this token was revoked"), and the console sessions opened with it end in the same
    transaction (`sessions.end_token_sessions`, a `console.session_ended` event each). The
    revoked token's record is returned.

    NotFound for no token with that id; BadInput if it is already revoked (nothing changes and
    no event is written, so the log holds one revocation per token).
    """
    with services.database.transaction() as session:
        now = services.clock()
        # Locked, so two operators revoking the same token at once write one event, not two.
        row = session.scalar(select(TokenRow).where(TokenRow.id == token_id).with_for_update())
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        if row.revoked_at is not None:
            raise BadInput(f"token {token_id} was already revoked at {row.revoked_at.isoformat()}")
        revoke_row(services, session, row, now)
        sessions.end_token_sessions(services, session, row.id, now, f"token {row.id} revoked")
        return _token_view(row)


def revoke_row(
    services: Services, session: Session, row: TokenRow, now: datetime, reason: str | None = None
) -> None:
    """Revoke the locked token `row` at `now` with its `token.revoked` event (and `reason`), in
    the caller's transaction."""
    row.revoked_at = now
    payload: dict[str, Any] = {
        "staff": row.staff_id,
        "identity": row.identity,
        "token_id": row.id,
        "label": row.label,
    }
    if reason is not None:
        payload["reason"] = reason
    record(services, session, kind="token.revoked", actor=None, row=None, payload=payload, now=now)


def end_credentials(
    services: Services, session: Session, staff_id: str, now: datetime, reason: str
) -> list[str]:
    """For someone who may no longer act (terminated or suspended, by any route: the HR
    import, an approved `foureyes.staff.update`): revoke every live token of theirs and end
    every console session, each with its event, in the caller's transaction. Being allowed to
    act again later (a rehire, an undo, the next export) must not bring back a credential they
    had, or one stolen meanwhile; nor an identity provider's token issued before now
    (`logins.fence_holder`). Answers the revoked token ids."""
    revoked: list[str] = []
    for token in session.scalars(
        select(TokenRow)
        .where(TokenRow.staff_id == staff_id, TokenRow.revoked_at.is_(None))
        .order_by(TokenRow.id)
        .with_for_update()
    ):
        revoke_row(services, session, token, now, reason=reason)
        revoked.append(token.id)
    sessions.end_person_sessions(services, session, staff_id, now, reason)
    logins.fence_holder(session, staff_id, now)
    return revoked


def split_token(token: str) -> tuple[str, str]:
    """A local token's id and secret; Unauthenticated("malformed token") for anything else."""
    prefix, _, rest = token.strip().partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not token_id or not secret:
        raise Unauthenticated("malformed token")
    return token_id, secret


def authenticate(services: Services, token: str, *, where: str = "api", client: str = "") -> Actor:
    """The person behind a bearer token; Unauthenticated unless it is valid and they may act.
    A known person's token that no longer works is also noted (`dead_credentials`: an alert,
    at most one per token per hour) as tried at `where` from `client`: same 401 to the caller."""
    try:
        return _authenticate(services, token)
    except DeadCredential as exc:
        dead_credentials.note(services, exc, where=where, client=client)
        raise
    except RecordAltered as exc:  # its row or its person's, written outside foureyes
        services.report_altered(exc)
        raise Unauthenticated(exc.message) from exc


def _authenticate(services: Services, token: str) -> Actor:
    token_id, secret = split_token(token)
    # Every call reads the token and its person afresh (no cache of what they say: a
    # revocation, termination or suspension counts from the next request), in one statement
    # run on the driver (`OneRow`: this is on every API call, and SQLAlchemy's session and
    # result layers cost ten times what SQLite takes to run it).
    database = services.database
    row = _TOKEN_READ.fetch(database, {"token_id": token_id})
    now = services.clock()
    if row is None or not hmac.compare_digest(row[_SECRET], _sha256(secret)):
        raise Unauthenticated("unknown token")  # garbage: nobody's credential
    token_identity, revoked_at, expires_at, person = _checked(
        _TOKEN_READ.compiled(database), token_id, row
    )
    return _admit(person, token_identity, revoked_at, expires_at, now, token_id)


# The token check's statement, and the place of the secret's hash in its rows.
_TOKEN_READ = OneRow(TOKEN_AND_PERSON_AS_TEXT)
_SECRET = 0
_COLUMNS = tuple(str(column.key) for column in TOKEN_AND_PERSON_AS_TEXT.selected_columns)


@functools.lru_cache(maxsize=1024)
def _checked(
    compiled: Compiled, token_id: str, row: tuple[Any, ...]
) -> tuple[str, datetime | None, datetime | None, Staff]:
    """What a token's row (as `OneRow.fetch` read it) says once checked against the seals of
    the token and its person (RecordAltered if either differs): its login, revocation, expiry
    and person. A function of the row's bytes alone, so it is cached by them: a call reads
    the row afresh and finds an entry only for the very same bytes, for which this answers
    the same (revocations, expiry and the person's state are judged by the caller, at its
    `now`; a changed row or seal is other bytes). It saves parsing and hashing the same
    record on every call, nothing else."""
    values = compiled.values(row)
    fields = dict(zip(_COLUMNS, values, strict=True))
    for name in TOKEN_AND_PERSON_JSON:
        text = fields[name]
        fields[name] = None if text is None else json.loads(text)
    record: Any = SimpleNamespace(**fields)  # its columns as attributes, as a `Row` has them
    identities = tuple(record.identities or ())
    seals.check_token_record(record, identities, token_id)  # RecordAltered: not as sealed
    person = staff_from_record(record, identities)
    return record.token_identity, record.revoked_at, record.expires_at, person


def actor_from_record(
    record: Any, identities: Iterable[str], secret: str, now: datetime, *, token_id: str
) -> Actor:
    """The person a token record (a `TOKEN_AND_PERSON` row, or None when no token has that id)
    vouches for, given the token's secret: Unauthenticated unless the secret matches, the
    token is neither revoked nor expired at `now`, its login is still one of the person's
    `identities`, and the person may act. Once the secret matches, a refusal is a
    DeadCredential (the caller notes it: `dead_credentials.note`)."""
    if record is None or not hmac.compare_digest(record.secret_sha256, _sha256(secret)):
        raise Unauthenticated("unknown token")  # garbage: nobody's credential
    identities = tuple(identities)
    seals.check_token_record(record, identities, token_id)  # RecordAltered: not as sealed
    person = staff_from_record(record, identities)
    return _admit(
        person, record.token_identity, record.revoked_at, record.expires_at, now, token_id
    )


def _admit(
    person: Staff,
    token_identity: str,
    revoked_at: datetime | None,
    expires_at: datetime | None,
    now: datetime,
    token_id: str,
) -> Actor:
    """The actor a token whose secret matched and whose record is as sealed stands for:
    DeadCredential unless its person may act at `now`, it is neither revoked nor expired, and
    its login is still one of the person's."""
    credential = f"token:{token_id}"
    # The person first: a terminated person's tokens are revoked with them (the HR import), and
    # the evidence a dead credential leaves should say why they no longer work.
    _check_may_act(person, now, credential)
    if revoked_at is not None:
        raise DeadCredential(
            "this token was revoked", staff=person.id, credential=credential, reason="revoked"
        )
    if expires_at is not None and expires_at <= now:
        raise DeadCredential(
            "this token has expired", staff=person.id, credential=credential, reason="expired"
        )
    if token_identity not in person.identities:
        # The import that moved or removed the login revoked the token; this also holds for
        # one issued while that import ran, or a login row changed behind foureyes' back.
        raise DeadCredential(
            LOGIN_GONE, staff=person.id, credential=credential, reason="login no longer theirs"
        )
    return Actor(staff=person, identity=token_identity, credential=credential)


def authenticate_identity(
    services: Services,
    identity: str,
    *,
    account: logins.ProviderAccount | None = None,
    staff_id_is_login: bool = True,
    where: str = "api",
    client: str = "",
) -> Actor:
    """The person whose login name `identity` is, once an identity provider has vouched for it
    (a verified OIDC token's claim, from the provider's `account`). Unauthenticated unless the
    staff directory knows the name, the person may act now (the same floor as
    `authenticate`) and the login accepts `account` (`logins.check_and_bind`: bound to it, or
    bound to it now at its first sign-in; a token older than the login's last change of
    hands is refused). Without `staff_id_is_login` a person's staff id is not one of their
    logins here (`[oidc] staff_ids_are_logins`: a provider whose usernames people choose must
    not sign anyone in as "e-9001"). A known person's refused credential is noted as
    `authenticate` notes it."""
    try:
        return _authenticate_identity(services, identity, account, staff_id_is_login)
    except DeadCredential as exc:
        dead_credentials.note(services, exc, where=where, client=client)
        raise
    except RecordAltered as exc:  # the person's record or logins, written outside foureyes
        raise Unauthenticated(exc.message) from exc


def _authenticate_identity(
    services: Services,
    identity: str,
    account: logins.ProviderAccount | None,
    staff_id_is_login: bool,
) -> Actor:
    with services.database.transaction() as session:
        now = services.clock()
        person = services.person_of(session, identity)
        if person is None or (identity == person.id and not staff_id_is_login):
            # Unknown, or a staff id, which this provider may not vouch for: the same answer.
            # ascii(): the name comes from a token, and the message goes into a Latin-1 header.
            shown = ascii(identity[:100])
            raise Unauthenticated(f"{shown} is not the identity of anyone on the staff")
        credential = f"oidc:{identity[:100]}"
        _check_may_act(person, now, credential)
        if account is not None:
            logins.check_and_bind(services, session, identity, person, account, now)
        return Actor(staff=person, identity=identity, credential=credential)


def _check_may_act(person: Staff, now: datetime, credential: str) -> None:
    """Terminated, suspended or outside their contract: no credential of theirs works."""
    problem = person.floor_problem(now.date())
    if problem is not None:
        raise DeadCredential(
            f"this credential no longer works: {problem}",
            staff=person.id,
            credential=credential,
            reason=problem,
        )
