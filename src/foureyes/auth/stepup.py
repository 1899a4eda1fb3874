"""Step-up for reviews: the reviewer proves possession of an enrolled key for *this* review.

The challenge is derived from the request digest, the reviewer and the verdict, so a captured
assertion approves that one request and nothing else. `DeviceKeyStepUp` verifies Ed25519
signatures from keys enrolled per person (the CLI's and API clients' keys);
`foureyes.auth.webauthn.WebAuthnStepUp` verifies security keys and passkeys, and
`StepUpByMethod` picks between them by the assertion's `method`. Only a credential that counts
signs anything that counts: not revoked and past its cool-down (`foureyes.auth.credentials`).
Each verifier also `confirm`s a challenge the server computed for something other than a review
(an existing credential vouching for a new one of the same person).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PublicKey,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.auth.credentials import (
    DEVICE_KEY,
    NewCredential,
    check_counts,
    insert,
)
from foureyes.auth.messages import challenge
from foureyes.core.services import StepUpVerifier
from foureyes.errors import BadInput, Forbidden, StepUpFailed
from foureyes.store.tables import StepUpKeyRow


class DeviceKeyStepUp:
    """Ed25519 signatures over a challenge by a key enrolled for the person that counts now
    (not revoked, past its cool-down)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
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
        evidence = self._check(session, reviewer_id, expected, assertion, "this review")
        return {"method": evidence["method"], "key_id": evidence["key_id"]}

    def confirm(
        self,
        session: Session,
        *,
        staff_id: str,
        expected: bytes,
        assertion: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        return self._check(session, staff_id, expected, assertion or {}, "this enrolment")

    def _check(
        self,
        session: Session,
        staff_id: str,
        expected: bytes,
        assertion: Mapping[str, Any],
        what: str,
    ) -> dict[str, Any]:
        key_id = str(assertion.get("key_id", ""))
        row = session.scalar(
            select(StepUpKeyRow).where(StepUpKeyRow.id == key_id, StepUpKeyRow.staff_id == staff_id)
        )
        if row is None:
            raise StepUpFailed("step-up failed: that key is not enrolled for you")
        check_counts(row, self._clock(), f"step-up key {key_id}")
        encoded = str(assertion.get("signature", ""))
        try:
            signature = base64.b64decode(encoded, validate=True)
            Ed25519PublicKey.from_public_bytes(row.public_key).verify(signature, expected)
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise StepUpFailed(
                f"step-up failed: the signature does not confirm {what}", key_id=key_id
            ) from exc
        return {"method": "device-key", "key_id": key_id, "signature": encoded}


class StepUpByMethod:
    """Chooses the verifier by the assertion's `method` (`{"method": "webauthn", ...}`); an
    assertion without one goes to `default` (the device-key form, `{"key_id", "signature"}`,
    which the CLI and API clients send). An unknown method is refused, never defaulted."""

    def __init__(self, by_method: Mapping[str, StepUpVerifier], default: StepUpVerifier) -> None:
        self.by_method = dict(by_method)
        self.default = default

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
        return self._by(assertion).verify(
            session,
            request_id=request_id,
            reviewer_id=reviewer_id,
            digest=digest,
            decision=decision,
            assertion=assertion,
        )

    def confirm(
        self,
        session: Session,
        *,
        staff_id: str,
        expected: bytes,
        assertion: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        return self._by(assertion).confirm(
            session, staff_id=staff_id, expected=expected, assertion=assertion
        )

    def _by(self, assertion: Mapping[str, Any] | None) -> StepUpVerifier:
        if assertion and "method" in assertion:
            method = assertion["method"]
            found = self.by_method.get(method) if isinstance(method, str) else None
            if found is None:
                known = ", ".join(sorted(self.by_method))
                raise BadInput(f"unknown step-up method {method!r} (known: {known})")
            return found
        return self.default


def bootstrap_key(session: Session, staff_id: str, public_key: bytes, now: datetime) -> str:
    """Enrol an Ed25519 public key that counts at once; returns its key id. Only for the
    operator's bootstrap before anyone can act (`foureyes serve --demo` initialising its data
    directory): every later key goes through `foureyes.workflow.enrolment`. The caller writes
    the audit event in the same transaction."""
    credential = NewCredential(staff_id, DEVICE_KEY, public_key, name="device key")
    credential.check()
    if session.get(StepUpKeyRow, credential.key_id) is None:
        insert(session, credential, now=now, counts_from=now)
    return credential.key_id
