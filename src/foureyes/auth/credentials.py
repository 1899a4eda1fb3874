"""Step-up credentials (security keys, device keys): what one is, when it counts, storing one.

A sign-in (a bearer token, a console session) lets a person *ask*; a step-up credential lets
them *decide* the most sensitive reviews. So a sign-in alone must never yield a credential that
counts. A credential is stored in one of three ways (`foureyes.workflow.enrolment`):

- vouched for: an assertion over `enrolment_challenge(new)` by a credential of the same person
  that counts now;
- governed: a `foureyes.staff.enrol_credential` request in the person's name, approved by
  another person (security), carried out by the governance connector;
- bootstrap: `foureyes serve --demo` (and the tests' worlds) before anyone can act.

Every credential has `counts_from`: the first two count only after the cool-down
(`[step_up] cooldown`, fixed when stored), bootstrap ones at once. Revocation is immediate,
and reaches back: an approval confirmed with a credential revoked since no longer counts
(`withdrawn`), at review and at the re-check before execution. This module holds only what
needs no other workflow module (the verifiers import it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session
from webauthn.helpers import decode_credential_public_key

from foureyes.auth.messages import device_key_id
from foureyes.errors import BadInput, Conflict, Forbidden, StepUpFailed
from foureyes.store import seals
from foureyes.store.tables import StepUpKeyRow, WebAuthnCredentialRow
from foureyes.text import refuse_unseen

ENROL_ACTION = "foureyes.staff.enrol_credential"
STAFF_ACCOUNT = "foureyes:staff"
WEBAUTHN = "webauthn"
DEVICE_KEY = "device-key"
KINDS = (WEBAUTHN, DEVICE_KEY)
MAX_NAME = 100


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """BadInput for anything but unpadded base64url."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadInput("a credential's bytes must be base64url") from exc


def webauthn_key_id(credential_id: bytes) -> str:
    """The id foureyes shows and records for a security key: SHA-256 of its credential id,
    32 hex digits."""
    return hashlib.sha256(credential_id).hexdigest()[:32]


@dataclass(frozen=True)
class NewCredential:
    """A credential to add: public material only (nothing here is secret)."""

    staff_id: str
    kind: str
    public_key: bytes  # WebAuthn: the COSE key; device key: the raw Ed25519 key
    name: str
    credential_id: bytes = b""  # WebAuthn only
    transports: tuple[str, ...] = ()
    aaguid: str = ""
    sign_count: int = 0

    @property
    def key_id(self) -> str:
        if self.kind == WEBAUTHN:
            return webauthn_key_id(self.credential_id)
        return device_key_id(self.public_key)

    def to_params(self) -> dict[str, Any]:
        """The params of a `foureyes.staff.enrol_credential` request."""
        params: dict[str, Any] = {
            "staff": self.staff_id,
            "kind": self.kind,
            "name": self.name,
            "public_key": b64url(self.public_key),
        }
        if self.kind == WEBAUTHN:
            params.update(
                credential_id=b64url(self.credential_id),
                transports=list(self.transports),
                aaguid=self.aaguid,
                sign_count=self.sign_count,
            )
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> NewCredential:
        """The credential a request's params name; BadInput if they do not make one."""
        kind = str(params.get("kind", ""))
        if kind not in KINDS:
            raise BadInput(f"a credential's kind is one of {', '.join(KINDS)}")
        credential = cls(
            staff_id=str(params.get("staff", "")),
            kind=kind,
            public_key=unb64url(str(params.get("public_key", ""))),
            name=" ".join(str(params.get("name", "")).split()),
            credential_id=unb64url(str(params.get("credential_id", ""))),
            transports=tuple(str(t) for t in params.get("transports", ())),
            aaguid=str(params.get("aaguid", "")),
            sign_count=int(params.get("sign_count", 0)),
        )
        credential.check()
        return credential

    def check(self) -> None:
        """BadInput for material that cannot be a credential of its kind."""
        if not self.staff_id:
            raise BadInput("name the person the credential is for")
        if not self.name or len(self.name) > MAX_NAME:
            raise BadInput(f"name the credential (1 to {MAX_NAME} characters)")
        # Its owner, security and the log read the name (the enrolment's request and notices).
        refuse_unseen(self.name, "credential's name")
        if self.kind == DEVICE_KEY:
            if len(self.public_key) != 32 or self.credential_id:
                raise BadInput("a device key is a 32-byte Ed25519 public key, nothing else")
            return
        if not self.credential_id or len(self.credential_id) > 1023:
            raise BadInput("a security key needs its credential id (1 to 1023 bytes)")
        try:
            decode_credential_public_key(self.public_key)
        except Exception as exc:  # the library raises several kinds for bad CBOR
            raise BadInput("the security key's public key is not a COSE key") from exc


def enrolment_challenge(credential: NewCredential) -> bytes:
    """What an existing credential signs to vouch for adding `credential`: this person, this
    kind, this key (its id and public key). Computed by the server, never taken from a client."""
    text = (
        f"foureyes enrol v1\nstaff {credential.staff_id}\nkind {credential.kind}\n"
        f"key {credential.key_id}\npublic-key {hashlib.sha256(credential.public_key).hexdigest()}\n"
    )
    return hashlib.sha256(text.encode()).digest()


def altered(row: StepUpKeyRow | WebAuthnCredentialRow) -> bool:
    """Whether the credential's row is not what the audit log last sealed for it (a key
    written in, un-revoked, given another owner or an earlier `counts_from` behind foureyes'
    back: `foureyes.store.seals`). Read again once before saying so: a revocation may have
    committed between reading the row and its seal."""
    session = object_session(row)
    if session is None:
        return True
    subject = seals.credential_ref(row)
    for attempt in (1, 2):
        if seals.sealed_now(session, subject) == seals.credential_digest(row):
            return False
        if attempt == 1:
            session.refresh(row)
    return True


def check_counts(row: StepUpKeyRow | WebAuthnCredentialRow, now: datetime, label: str) -> None:
    """StepUpFailed for a credential whose row the audit log does not vouch for (`altered`),
    a revoked credential, or one still in its cool-down (with when it counts and why it
    waits)."""
    if altered(row):
        raise StepUpFailed(
            f"step-up failed: {label} is not what the audit log recorded for it (its record "
            "was changed outside foureyes)",
            key_id=row.id,
        )
    if row.revoked_at is not None:
        raise StepUpFailed(f"step-up failed: {label} was revoked", key_id=row.id)
    if now < row.counts_from:
        raise StepUpFailed(
            f"step-up failed: {label} was added on {_when(row.created_at)} and counts for "
            f"approvals only from {_when(row.counts_from)} (a new credential waits so that its "
            "owner, who was told of it, can revoke it if it was not them)",
            key_id=row.id,
        )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def counting_webauthn(
    session: Session, staff_id: str, now: datetime
) -> list[WebAuthnCredentialRow]:
    """The person's security keys that count now (not revoked, past their cool-down)."""
    return list(
        session.scalars(
            select(WebAuthnCredentialRow)
            .where(
                WebAuthnCredentialRow.staff_id == staff_id,
                WebAuthnCredentialRow.revoked_at.is_(None),
                WebAuthnCredentialRow.counts_from <= now,
            )
            .order_by(WebAuthnCredentialRow.created_at, WebAuthnCredentialRow.id)
        )
    )


def has_counting_credential(session: Session, staff_id: str, now: datetime) -> bool:
    """Whether the person has any credential (security key or device key) that counts now."""
    if counting_webauthn(session, staff_id, now):
        return True
    return (
        session.scalar(
            select(StepUpKeyRow.id)
            .where(
                StepUpKeyRow.staff_id == staff_id,
                StepUpKeyRow.revoked_at.is_(None),
                StepUpKeyRow.counts_from <= now,
            )
            .limit(1)
        )
        is not None
    )


def stored(
    session: Session, credential: NewCredential
) -> StepUpKeyRow | WebAuthnCredentialRow | None:
    """The row already holding this credential (by key id, or a security key's credential id)."""
    if credential.kind == DEVICE_KEY:
        return session.get(StepUpKeyRow, credential.key_id)
    return session.scalar(
        select(WebAuthnCredentialRow).where(
            (WebAuthnCredentialRow.credential_id == credential.credential_id)
            | (WebAuthnCredentialRow.id == credential.key_id)
        )
    )


def row_of(session: Session, key_id: str) -> StepUpKeyRow | WebAuthnCredentialRow | None:
    """The credential with this key id, of either kind (their ids differ in length: 16 hex
    digits for a device key, 32 for a security key)."""
    if len(key_id) == 32:
        return session.get(WebAuthnCredentialRow, key_id)
    return session.get(StepUpKeyRow, key_id)


def withdrawn(session: Session, reviewer_id: str, evidence: Mapping[str, Any] | None) -> str | None:
    """Why an approval confirmed with `evidence` (a review's recorded step-up) no longer
    counts: the credential it names was revoked, or is not the reviewer's (fail closed: a
    recorded step-up whose credential cannot be found proves nothing now). None for a review
    without step-up, or one whose credential still stands."""
    if evidence is None:
        return None
    key_id = str(evidence.get("key_id", ""))
    row = row_of(session, key_id) if key_id else None
    if row is None or row.staff_id != reviewer_id:
        return f"{reviewer_id}'s approval was confirmed with a credential that is not theirs"
    if altered(row):
        return (
            f"{reviewer_id}'s approval was confirmed with step-up credential {key_id}, whose "
            "record was changed outside foureyes"
        )
    if row.revoked_at is not None:
        return (
            f"{reviewer_id}'s approval was confirmed with step-up credential {key_id}, "
            f"revoked on {_when(row.revoked_at)}"
        )
    return None


def refuse_holder_approval(action: str, params: Mapping[str, Any], reviewer_id: str) -> None:
    """Forbidden for the person a credential enrolment names approving it: nobody approves
    their own step-up credential (refused before anything is recorded; `carry_out` checks it
    again)."""
    if action == ENROL_ACTION and str(params.get("staff", "")) == reviewer_id:
        raise Forbidden("you cannot approve the enrolment of your own step-up credential")


def refuse_if_stored(session: Session, credential: NewCredential) -> None:
    if stored(session, credential) is not None:
        raise Conflict("this credential is already enrolled", key_id=credential.key_id)


def insert(
    session: Session, credential: NewCredential, *, now: datetime, counts_from: datetime
) -> None:
    """Add the credential's row (the caller has checked it is not stored, and writes its event
    in the same transaction)."""
    if credential.kind == DEVICE_KEY:
        session.add(
            StepUpKeyRow(
                id=credential.key_id,
                staff_id=credential.staff_id,
                public_key=credential.public_key,
                created_at=now,
                counts_from=counts_from,
            )
        )
    else:
        session.add(
            WebAuthnCredentialRow(
                id=credential.key_id,
                credential_id=credential.credential_id,
                staff_id=credential.staff_id,
                name=credential.name,
                public_key=credential.public_key,
                sign_count=credential.sign_count,
                transports=list(credential.transports),
                aaguid=credential.aaguid,
                created_at=now,
                counts_from=counts_from,
            )
        )
    try:
        session.flush()
    except IntegrityError as exc:  # stored by a concurrent request between check and insert
        raise Conflict("this credential is already enrolled", key_id=credential.key_id) from exc
