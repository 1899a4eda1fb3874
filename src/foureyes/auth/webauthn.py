"""Security keys and passkeys (WebAuthn) for step-up: enrolment, revocation, and confirming one
review.

A review that a rule marks `step_up` is confirmed with an assertion whose challenge is
`stepup.challenge(request_id=, digest=, reviewer_id=, decision=)`: the server computes it from the
request it holds, never from the client, so an assertion approves exactly that request (by id and
content), by that person, with that verdict, and nothing else. What was signed is kept in the
review event (`WebAuthnStepUp`), with the key id whose public key the enrolment event carries, so
an auditor can check it offline (`evidence_confirms`).

User verification is *required* (a PIN or biometric on the key, not only a touch): step-up
exists so that a stolen laptop session plus a key lying next to it is not enough, and keys
without a PIN cannot be enrolled. Attestation is "none": foureyes trusts the person's signed-in
console session to say whose key it is, not the vendor's certificate.

Enrolment is two steps: `registration_options` gives the browser options and a
`PendingRegistration` (bound to the person, expiring after five minutes) that the console keeps
on the server, under the console session, until one response is checked against it
(`foureyes.auth.registrations`); `verified_registration` checks the authenticator's response
against it. Whether the key is then stored, and from when it counts, is not decided here: the
signed-in session is not enough (`foureyes.workflow.enrolment`). `proof_options` are the request
options for an existing key of the person to vouch for the new one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    options_to_json,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from foureyes.auth.credentials import (
    WEBAUTHN,
    NewCredential,
    check_counts,
    counting_webauthn,
    enrolment_challenge,
    webauthn_key_id,
)
from foureyes.auth.messages import challenge
from foureyes.auth.stepup import DeviceKeyStepUp, StepUpByMethod
from foureyes.config import WebAuthnSettings
from foureyes.errors import BadInput, Conflict, Forbidden, NotFound, StepUpFailed
from foureyes.model import RequestState, ReviewDecision
from foureyes.store.tables import RequestRow, WebAuthnCredentialRow

if TYPE_CHECKING:
    from foureyes.core.services import Actor, Services, StepUpVerifier

METHOD = "webauthn"
TIMEOUT_MS = 120_000
REGISTRATION_LIFETIME = timedelta(minutes=5)
MAX_NAME = 100
ENROLLED = "staff.security_key_enrolled"
REVOKED = "staff.security_key_revoked"


@dataclass(frozen=True)
class RelyingParty:
    """Who security keys are bound to: the RP ID (a domain) and the origins allowed to sign."""

    id: str
    name: str
    origins: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: WebAuthnSettings) -> RelyingParty:
        return cls(settings.rp_id, settings.rp_name, tuple(settings.origins))


DEMO_RELYING_PARTY = RelyingParty.from_settings(WebAuthnSettings())


key_id_of = webauthn_key_id  # SHA-256 of the credential id, 32 hex digits


def user_handle(staff_id: str) -> bytes:
    """The WebAuthn user handle of a person: stable, and not their id in clear (the spec asks
    that it carry no personal information; authenticators may show or sync it)."""
    return hashlib.sha256(f"foureyes webauthn user\n{staff_id}".encode()).digest()


@dataclass(frozen=True)
class KeyView:
    """One step-up key as its owner sees it (no key material)."""

    id: str
    name: str
    transports: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    counts_from: datetime | None = None
    kind: str = "webauthn"  # or "device-key" (`foureyes.auth.keys.list_credentials`)


@dataclass(frozen=True)
class PendingRegistration:
    """An enrolment in progress: the challenge the browser was given, for whom, until when."""

    staff_id: str
    challenge: bytes
    expires_at: datetime


# --- enrolment -----------------------------------------------------------------------------


def _active_descriptors(session: Session, staff_id: str) -> list[PublicKeyCredentialDescriptor]:
    """Every key of the person's that is not revoked (counting or still cooling down)."""
    rows = session.scalars(
        select(WebAuthnCredentialRow)
        .where(
            WebAuthnCredentialRow.staff_id == staff_id,
            WebAuthnCredentialRow.revoked_at.is_(None),
        )
        .order_by(WebAuthnCredentialRow.created_at)
    )
    return _descriptors(rows)


def _descriptors(rows: Iterable[WebAuthnCredentialRow]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=row.credential_id,
            transports=[AuthenticatorTransport(t) for t in row.transports],
        )
        for row in rows
    ]


def registration_options(
    services: Services, actor: Actor
) -> tuple[dict[str, Any], PendingRegistration]:
    """Options for `navigator.credentials.create()` (JSON, base64url bytes) for the actor's own
    new key, excluding the keys they already have, and the pending registration to keep."""
    rp = relying_party(services)
    with services.database.transaction() as session:
        now = services.clock()
        _may_act(actor, now)
        exclude = _active_descriptors(session, actor.id)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=actor.identity,
        user_id=user_handle(actor.id),
        user_display_name=actor.staff.name or actor.identity,
        timeout=TIMEOUT_MS,
        # No `authenticatorAttachment`: the browser offers every kind it has, a hardware key
        # (USB, NFC) as well as a platform passkey (Touch ID, Windows Hello, Android) or a
        # phone nearby (hybrid). Passkey providers keep discoverable credentials, and some make
        # only those: "preferred" lets them, without refusing keys that have no room for one.
        # User verification stays required for every kind.
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=exclude,
    )
    pending = PendingRegistration(actor.id, options.challenge, now + REGISTRATION_LIFETIME)
    return json.loads(options_to_json(options)), pending


def verified_registration(
    services: Services,
    actor: Actor,
    pending: PendingRegistration,
    *,
    name: str,
    credential: Mapping[str, Any],
) -> NewCredential:
    """The new key the browser's registration response describes, verified; nothing stored.

    Refused: a pending registration for someone else or expired, a bad name (BadInput); a
    response that does not verify for this challenge, origin and RP ID, or without user
    verification, or from an embedded page (Forbidden).
    """
    rp = relying_party(services)
    label = " ".join(name.split())
    if not label or len(label) > MAX_NAME:
        raise BadInput(f"name the key (1 to {MAX_NAME} characters), e.g. 'blue YubiKey'")
    now = services.clock()
    if pending.staff_id != actor.id or now >= pending.expires_at:
        raise BadInput("this security key enrolment has expired or is not yours: start again")
    try:
        parsed = parse_registration_credential_json(dict(credential))
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=pending.challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            require_user_verification=True,
        )
        cross_origin = parse_client_data_json(parsed.response.client_data_json).cross_origin
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise Forbidden(f"the security key's response was refused: {exc}") from None
    if cross_origin:
        raise Forbidden("the security key's response came from an embedded (cross-origin) page")
    return NewCredential(
        staff_id=actor.id,
        kind=WEBAUTHN,
        public_key=verified.credential_public_key,
        name=label,
        credential_id=verified.credential_id,
        transports=tuple(sorted({t.value for t in parsed.response.transports or ()})),
        aaguid=verified.aaguid,
        sign_count=verified.sign_count,
    )


def proof_options(services: Services, actor: Actor, new: NewCredential) -> dict[str, Any]:
    """Options for `navigator.credentials.get()` by which one of the actor's security keys that
    count now vouches for adding `new` (the challenge is `enrolment_challenge(new)`). Conflict
    when they have none: the new key then needs security's approval instead."""
    with services.database.transaction() as session:
        allowed = _descriptors(counting_webauthn(session, actor.id, services.clock()))
    if not allowed:
        raise Conflict(
            "none of your security keys counts yet: adding this one needs security's approval"
        )
    rp = relying_party(services)
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=enrolment_challenge(new),
        timeout=TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    result: dict[str, Any] = json.loads(options_to_json(options))
    return result


def enrolment_event(
    services: Services,
    session: Session,
    credential: NewCredential,
    payload: Mapping[str, Any],
    *,
    actor: str | None,
    now: datetime,
) -> None:
    """The `staff.security_key_enrolled` event of a stored key, with its public key (what an
    auditor checks review evidence against), in the caller's transaction."""
    rp = relying_party(services)
    services.audit.append(
        session,
        kind=ENROLLED,
        actor=actor,
        account_ref=None,
        request_id=None,
        payload={
            "staff": credential.staff_id,
            "key_id": credential.key_id,
            "name": credential.name,
            "credential_id": bytes_to_base64url(credential.credential_id),
            "public_key": bytes_to_base64url(credential.public_key),
            "aaguid": credential.aaguid,
            "transports": list(credential.transports),
            "sign_count": credential.sign_count,
            "rp_id": rp.id,
            **payload,
        },
        at=now,
    )


def revoke(services: Services, actor: Actor, key_id: str) -> None:
    """Revoke one of the actor's own keys (kept, so past evidence stays verifiable).

    NotFound for a key that is not theirs (whose it is, is not told); Conflict if already
    revoked. The `staff.security_key_revoked` event is written in the same transaction.
    """
    with services.database.transaction() as session:
        now = services.clock()
        row = session.scalar(
            select(WebAuthnCredentialRow)
            .where(WebAuthnCredentialRow.id == key_id, WebAuthnCredentialRow.staff_id == actor.id)
            .with_for_update()
        )
        if row is None:
            raise NotFound(f"you have no security key {key_id!r}")
        if row.revoked_at is not None:
            raise Conflict(f"security key {row.name!r} is already revoked", key_id=key_id)
        row.revoked_at = now
        services.audit.append(
            session,
            kind=REVOKED,
            actor=actor.id,
            account_ref=None,
            request_id=None,
            payload={"staff": actor.id, "identity": actor.identity, "key_id": key_id},
            at=now,
        )


def list_keys(services: Services, staff_id: str) -> list[KeyView]:
    """A person's security keys, oldest first, revoked ones included."""
    with services.database.transaction() as session:
        rows = session.scalars(
            select(WebAuthnCredentialRow)
            .where(WebAuthnCredentialRow.staff_id == staff_id)
            .order_by(WebAuthnCredentialRow.created_at, WebAuthnCredentialRow.id)
        )
        return [
            KeyView(
                row.id,
                row.name,
                tuple(row.transports),
                row.created_at,
                row.last_used_at,
                row.revoked_at,
                row.counts_from,
            )
            for row in rows
        ]


# --- confirming a review -------------------------------------------------------------------


def assertion_options(
    services: Services, actor: Actor, request_id: str, decision: str
) -> dict[str, Any]:
    """Options for `navigator.credentials.get()` that confirm the actor's `decision` on one
    pending request: the challenge is computed here from the request's digest.

    NotFound for no such request; Conflict when it is no longer pending or the actor has no
    security key that counts now (none, or only ones in their cool-down); BadInput for a
    decision other than approve or deny.
    """
    with services.database.transaction() as session:
        row = session.get(RequestRow, request_id)
        if row is None:
            raise NotFound(f"no request {request_id!r}")
        if row.state != RequestState.PENDING:
            raise Conflict(f"the request is {row.state}, not pending", request_id=row.id)
        digest = row.digest
    return challenge_options(services, actor, request_id, digest, decision)


def challenge_options(
    services: Services, actor: Actor, subject_id: str, digest: str, decision: str
) -> dict[str, Any]:
    """Options for `navigator.credentials.get()` whose challenge is the actor's `decision` on
    the pending thing `subject_id` with `digest` (a request, or a batch and its Merkle root):
    the caller has checked it exists, is pending and is the actor's to see. Conflict when the
    actor has no security key that counts now; BadInput for a decision other than approve or
    deny."""
    try:
        verdict = ReviewDecision(decision).value
    except ValueError:
        raise BadInput("decision must be 'approve' or 'deny'") from None
    with services.database.read() as session:
        allowed = _descriptors(counting_webauthn(session, actor.id, services.clock()))
        cooling = not allowed and bool(_active_descriptors(session, actor.id))
    if cooling:
        raise Conflict(
            "your security key is still in its cool-down after being added: it counts for "
            "approvals later (see the Security keys page)"
        )
    if not allowed:
        raise Conflict("you have no security key enrolled: add one on the Security keys page")
    rp = relying_party(services)
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge(
            request_id=subject_id, digest=digest, reviewer_id=actor.id, decision=verdict
        ),
        timeout=TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    result: dict[str, Any] = json.loads(options_to_json(options))
    return result


class WebAuthnStepUp:
    """Verifies `{"method": "webauthn", "credential": <PublicKeyCredential JSON>}` for one review
    (`verify`), or over a challenge the server computed for something else (`confirm`).

    Refused (Forbidden): a key that is not the reviewer's, is revoked, or is still in its
    cool-down (`credentials.check_counts`, which says from when it counts); a challenge other than
    this review's (another request, verdict or reviewer: a replay); an origin or RP ID not ours;
    no user verification; a signature counter that did not move forward (a cloned
    authenticator); a bad signature. The challenge names the request's id, so even a key that
    keeps no counter cannot carry an assertion over to an identical request. On success the
    key's counter and last use are updated in the review's transaction and the evidence to
    record is returned.
    """

    def __init__(self, rp: RelyingParty, clock: Callable[[], datetime] | None = None) -> None:
        self.relying_party = rp
        self._clock = clock or (lambda: datetime.now(UTC))

    def verify(
        self,
        session: Session,
        *,
        request_id: str,
        reviewer_id: str,
        digest: str,
        decision: str,
        assertion: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if not assertion:
            raise Forbidden("this review needs step-up: confirm it with your security key")
        expected = challenge(
            request_id=request_id, digest=digest, reviewer_id=reviewer_id, decision=decision
        )
        return self._check(session, reviewer_id, expected, assertion, "review")

    def confirm(
        self,
        session: Session,
        *,
        staff_id: str,
        expected: bytes,
        assertion: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        return self._check(session, staff_id, expected, assertion or {}, "enrolment")

    def _check(
        self,
        session: Session,
        reviewer_id: str,
        expected: bytes,
        assertion: Mapping[str, Any],
        what: str,
    ) -> dict[str, Any]:
        credential = _parse_assertion(assertion.get("credential"))
        row = session.scalar(
            select(WebAuthnCredentialRow)
            .where(WebAuthnCredentialRow.credential_id == credential.raw_id)
            .with_for_update()
        )
        if row is None or row.staff_id != reviewer_id:
            raise StepUpFailed("step-up failed: that security key is not enrolled for you")
        now = self._clock()
        check_counts(row, now, f"security key {row.name!r}")
        handle = credential.response.user_handle
        if handle is not None and handle != user_handle(reviewer_id):
            raise StepUpFailed(
                "step-up failed: the security key answered for another person", key_id=row.id
            )
        rp = self.relying_party
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=expected,
                expected_rp_id=rp.id,
                expected_origin=list(rp.origins),
                credential_public_key=row.public_key,
                credential_current_sign_count=row.sign_count,
                require_user_verification=True,
            )
            client = parse_client_data_json(credential.response.client_data_json)
        except (WebAuthnException, ValueError, TypeError) as exc:
            raise StepUpFailed(_why(str(exc), what), key_id=row.id) from None
        if client.cross_origin:
            raise StepUpFailed(
                "step-up failed: the assertion came from an embedded page", key_id=row.id
            )
        row.sign_count = verified.new_sign_count
        row.last_used_at = now
        response = credential.response
        return {
            "method": METHOD,
            "key_id": row.id,
            "credential_id": bytes_to_base64url(credential.raw_id),
            "authenticator_data": bytes_to_base64url(response.authenticator_data),
            "client_data_json": bytes_to_base64url(response.client_data_json),
            "signature": bytes_to_base64url(response.signature),
            "user_handle": bytes_to_base64url(handle) if handle is not None else None,
            "sign_count": verified.new_sign_count,
            "user_verified": verified.user_verified,
            "rp_id": rp.id,
        }


def _parse_assertion(value: Any) -> AuthenticationCredential:
    if not isinstance(value, Mapping):
        raise BadInput("a WebAuthn step-up needs `credential`: the browser's PublicKeyCredential")
    try:
        return parse_authentication_credential_json(dict(value))
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise BadInput(f"the WebAuthn assertion is malformed: {exc}") from None


def _why(message: str, what: str = "review") -> str:
    """The library's reason, in the reviewer's terms where it matters."""
    if "challenge" in message:
        return f"step-up failed: the security key confirmed another {what}, not this one"
    if "sign count" in message:
        return (
            "step-up failed: the security key's signature counter went backwards "
            "(a cloned authenticator?); use another key and tell security"
        )
    if "User verification" in message:
        return "step-up failed: the security key did not verify you (PIN or biometric)"
    return f"step-up failed: {message}"


def evidence_confirms(
    evidence: Mapping[str, Any],
    *,
    public_key: bytes,
    request_id: str,
    digest: str,
    reviewer_id: str,
    decision: str,
    rp_id: str,
    origins: list[str],
) -> bool:
    """Whether recorded evidence (a review event's `step_up`) is a valid user-verified assertion
    by `public_key` (from the key's enrolment event) for exactly this review: what an auditor
    runs offline. The signature counter is not judged here (it needs the history)."""
    try:
        credential_id = str(evidence["credential_id"])
        credential = {
            "id": credential_id,
            "rawId": credential_id,
            "type": "public-key",
            "response": {
                "authenticatorData": str(evidence["authenticator_data"]),
                "clientDataJSON": str(evidence["client_data_json"]),
                "signature": str(evidence["signature"]),
            },
        }
        verify_authentication_response(
            credential=credential,
            expected_challenge=challenge(
                request_id=request_id, digest=digest, reviewer_id=reviewer_id, decision=decision
            ),
            expected_rp_id=rp_id,
            expected_origin=origins,
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (KeyError, WebAuthnException, ValueError, TypeError):
        return False
    return evidence.get("key_id") == key_id_of(base64url_to_bytes(credential_id))


NOT_CONFIGURED = (
    "security keys (WebAuthn) are not configured: set rp_id and origins in the settings' "
    "[webauthn] table (embedding: pass relying_party=RelyingParty(rp_id, name, origins) to "
    "Guard.open or build_services)"
)


class _WebAuthnNotConfigured:
    """Stands in for WebAuthn when no relying party was given: every assertion is refused with
    the setting to add, rather than checked against a relying party nobody chose."""

    def verify(self, session: Session, **_: Any) -> dict[str, Any]:
        raise BadInput(NOT_CONFIGURED)

    def confirm(self, session: Session, **_: Any) -> dict[str, Any]:
        raise BadInput(NOT_CONFIGURED)


def step_up_verifier(
    rp: RelyingParty | None, clock: Callable[[], datetime] | None = None
) -> StepUpByMethod:
    """The step-up foureyes uses: WebAuthn for `{"method": "webauthn", ...}`, device-key
    signatures (the CLI and API clients' Ed25519 keys) otherwise. Without `rp` there is no
    default relying party: WebAuthn is refused (BadInput naming the setting), device keys work."""
    device = DeviceKeyStepUp(clock)
    keys: StepUpVerifier = _WebAuthnNotConfigured() if rp is None else WebAuthnStepUp(rp, clock)
    return StepUpByMethod({METHOD: keys, "device-key": device}, device)


def relying_party(services: Services) -> RelyingParty:
    """The relying party the services verify WebAuthn step-up against (so options and
    verification always agree)."""
    verifier = services.step_up
    if isinstance(verifier, StepUpByMethod):
        webauthn = verifier.by_method.get(METHOD)
        if isinstance(webauthn, WebAuthnStepUp):
            return webauthn.relying_party
    raise NotFound(NOT_CONFIGURED)


def _may_act(actor: Actor, now: datetime) -> None:
    problem = actor.staff.floor_problem(now.date())
    if problem is not None:
        raise Forbidden(problem)
