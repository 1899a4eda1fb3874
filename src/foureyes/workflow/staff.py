"""The staff directory in the store: HR imports, local tokens, and authentication.

The HR export is the source of truth for who works here: `import_directory` applies it (every
change an audit event); people missing from it are marked `terminated`, never deleted, and their
open requests are cancelled. Tokens are random secrets of which only the SHA-256 is stored; the
operator lists them and revokes one at once (`list_tokens`, `revoke_token`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from foureyes.auth import dead_credentials
from foureyes.core.events import move, record
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, DeadCredential, NotFound, Unauthenticated
from foureyes.model import RequestState, Staff, StaffStatus
from foureyes.policy.directory import Directory
from foureyes.store.queries import (
    IDENTITIES_OF,
    TOKEN_AND_PERSON,
    staff_from_record,
    staff_from_row,
)
from foureyes.store.tables import IdentityRow, RequestRow, StaffRow, TokenRow

TOKEN_PREFIX = "fey"  # noqa: S105 - a token prefix, not a secret
OPEN_STATES = (RequestState.PENDING, RequestState.APPROVED, RequestState.SCHEDULED)


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    terminated: list[str] = field(default_factory=list)
    cancelled_requests: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.terminated)


def approver_groups(services: Services, session: Session) -> frozenset[str]:
    """Groups that some `approvers` condition of the policy in force names."""
    try:
        _, policy = services.policy_in_force(session)
    except Exception:
        return frozenset()
    groups: set[str] = set()
    for rule in policy.rules:
        if rule.approvers is None:
            continue
        for path, values in rule.approvers.mentions.items():
            if path[-1] == "groups":
                groups.update(str(v) for v in values)
    return frozenset(groups)


def import_directory(
    services: Services, directory: Directory, *, actor: str = "hr-import"
) -> ImportReport:
    """Apply an HR export: add, change, terminate. Idempotent; one transaction."""
    report = ImportReport()
    with services.database.transaction() as session:
        now = services.clock()
        watched = approver_groups(services, session)
        existing = {row.id: row for row in session.scalars(select(StaffRow))}
        for person in directory.staff.values():
            row = existing.get(person.id)
            values = _values(person)
            if row is None:
                row = StaffRow(id=person.id, updated_at=now, gained_approver_groups=[], **values)
                session.add(row)
                report.added.append(person.id)
                session.flush()
                _set_identities(session, person)
                record(
                    services,
                    session,
                    kind="staff.added",
                    actor=actor,
                    row=None,
                    payload={"staff": person.id, **values},
                    now=now,
                )
                continue
            diff = {k: [getattr(row, k), v] for k, v in values.items() if getattr(row, k) != v}
            if diff:
                gained = sorted((set(person.groups) - set(row.groups)) & watched)
                for key, (_, new) in diff.items():
                    setattr(row, key, new)
                row.updated_at = now
                if gained:
                    row.gained_approver_groups = sorted(
                        set(row.gained_approver_groups) | set(gained)
                    )
                report.changed[person.id] = diff
                record(
                    services,
                    session,
                    kind="staff.changed",
                    actor=actor,
                    row=None,
                    payload={"staff": person.id, "changes": diff, "gained_approver_groups": gained},
                    now=now,
                )
            _set_identities(session, person)
        for staff_id, row in existing.items():
            if staff_id in directory.staff or row.status == StaffStatus.TERMINATED.value:
                continue
            row.status = StaffStatus.TERMINATED.value
            row.updated_at = now
            report.terminated.append(staff_id)
            record(
                services,
                session,
                kind="staff.terminated",
                actor=actor,
                row=None,
                payload={"staff": staff_id, "reason": "missing from the HR export"},
                now=now,
            )
            report.cancelled_requests += cancel_open_requests(services, session, staff_id, now)
    return report


def cancel_open_requests(
    services: Services, session: Session, staff_id: str, now: datetime
) -> list[str]:
    """Cancel every request of someone who no longer works here."""
    rows = session.scalars(
        select(RequestRow)
        .where(
            RequestRow.requester_id == staff_id,
            RequestRow.state.in_([s.value for s in OPEN_STATES]),
        )
        .with_for_update()
    )
    cancelled = []
    for row in rows:
        move(
            services,
            session,
            row,
            RequestState.CANCELLED,
            actor=None,
            kind="request.cancelled",
            now=now,
            reason=f"requester {staff_id} was terminated",
        )
        cancelled.append(row.id)
    return cancelled


def _values(person: Staff) -> dict[str, Any]:
    return {
        "name": person.name,
        "email": person.email,
        "groups": list(person.groups),
        "employment": person.employment,
        "vendor": person.vendor,
        "region": person.region,
        "manager": person.manager,
        "starts": person.starts,
        "ends": person.ends,
        "status": person.status,
        "attributes": dict(person.attributes),
    }


def _set_identities(session: Session, person: Staff) -> None:
    wanted = set(person.identities) | {person.id}
    current = set(
        session.scalars(select(IdentityRow.identity).where(IdentityRow.staff_id == person.id))
    )
    for identity in wanted - current:
        other = session.get(IdentityRow, identity)
        if other is not None:
            raise BadInput(f"identity {identity!r} already belongs to {other.staff_id}")
        session.add(IdentityRow(identity=identity, staff_id=person.id))
    if current - wanted:
        session.execute(
            delete(IdentityRow).where(
                IdentityRow.staff_id == person.id, IdentityRow.identity.in_(current - wanted)
            )
        )


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
    """A new bearer token for one person (returned once, stored hashed)."""
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
    ("this token was revoked") and console sessions opened with it end. The revoked token's
    record is returned.

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
        row.revoked_at = now
        record(
            services,
            session,
            kind="token.revoked",
            actor=None,
            row=None,
            payload={
                "staff": row.staff_id,
                "identity": row.identity,
                "token_id": row.id,
                "label": row.label,
            },
            now=now,
        )
        return _token_view(row)


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


def _authenticate(services: Services, token: str) -> Actor:
    token_id, secret = split_token(token)
    # Every call reads the token and its person afresh (no cache: a revocation, termination
    # or suspension counts from the next request), in one read-only transaction of two
    # queries run on the connection: this is on every API call, and loading ORM objects
    # instead cost three times as much.
    with services.database.read() as session:
        now = services.clock()
        connection = session.connection()
        row = connection.execute(TOKEN_AND_PERSON, {"token_id": token_id}).one_or_none()
        identities = () if row is None else connection.scalars(IDENTITIES_OF, {"staff_id": row.id})
        return actor_from_record(row, identities, secret, now, token_id=token_id)


def actor_from_record(
    record: Any, identities: Iterable[str], secret: str, now: datetime, *, token_id: str
) -> Actor:
    """The person a token record (a `TOKEN_AND_PERSON` row, or None when no token has that id)
    vouches for, given the token's secret: Unauthenticated unless the secret matches, the
    token is neither revoked nor expired at `now`, and the person may act. Once the secret
    matches, a refusal is a DeadCredential (the caller notes it: `dead_credentials.note`)."""
    if record is None or not hmac.compare_digest(record.secret_sha256, _sha256(secret)):
        raise Unauthenticated("unknown token")  # garbage: nobody's credential
    credential = f"token:{token_id}"
    if record.revoked_at is not None:
        raise DeadCredential(
            "this token was revoked", staff=record.id, credential=credential, reason="revoked"
        )
    if record.expires_at is not None and record.expires_at <= now:
        raise DeadCredential(
            "this token has expired", staff=record.id, credential=credential, reason="expired"
        )
    person = staff_from_record(record, identities)
    _check_may_act(person, now, credential)
    return Actor(staff=person, identity=record.token_identity)


def authenticate_identity(
    services: Services, identity: str, *, where: str = "api", client: str = ""
) -> Actor:
    """The person whose login name `identity` is, once an identity provider has vouched for it
    (a verified OIDC token's claim). Unauthenticated unless the staff directory knows the name
    and the person may act now: the same floor as `authenticate`, and a known person who may
    not act is noted as `authenticate` notes it."""
    try:
        return _authenticate_identity(services, identity)
    except DeadCredential as exc:
        dead_credentials.note(services, exc, where=where, client=client)
        raise


def _authenticate_identity(services: Services, identity: str) -> Actor:
    with services.database.transaction() as session:
        now = services.clock()
        person = services.person_of(session, identity)
        if person is None:
            # ascii(): the name comes from a token, and the message goes into a Latin-1 header.
            shown = ascii(identity[:100])
            raise Unauthenticated(f"{shown} is not the identity of anyone on the staff")
        _check_may_act(person, now, f"oidc:{identity[:100]}")
        return Actor(staff=person, identity=identity)


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


def list_staff(services: Services) -> list[Staff]:
    with services.database.transaction() as session:
        return [
            staff_from_row(session, row)
            for row in session.scalars(select(StaffRow).order_by(StaffRow.id))
        ]
