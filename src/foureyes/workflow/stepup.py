"""Step-up for reviews: the reviewer proves possession of an enrolled key for *this* review.

The challenge is derived from the request digest, the reviewer and the verdict, so a captured
assertion approves that one request and nothing else. `DeviceKeyStepUp` verifies Ed25519
signatures from keys enrolled per person (the CLI's and API clients' keys);
`foureyes.workflow.webauthn.WebAuthnStepUp` verifies security keys and passkeys, and
`StepUpByMethod` picks between them by the assertion's `method`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.errors import BadInput, Forbidden, StepUpFailed
from foureyes.store.tables import StepUpKeyRow


def challenge(*, request_id: str, digest: str, reviewer_id: str, decision: str) -> bytes:
    """The bytes a reviewer's key signs for one review: this request (its id, so that two
    requests with identical content do not accept each other's assertions), exactly what it
    asks (its digest), this reviewer and this verdict."""
    text = (
        f"foureyes step-up v2\nrequest-id {request_id}\nrequest {digest}\n"
        f"reviewer {reviewer_id}\ndecision {decision}\n"
    )
    return hashlib.sha256(text.encode()).digest()


class StepUpVerifier(Protocol):
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
        """Check the assertion; return the evidence to record. Raise Forbidden if it fails."""
        ...


class DeviceKeyStepUp:
    """Ed25519 signatures over `challenge(...)` by a key enrolled for the reviewer."""

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
        key_id = str(assertion.get("key_id", ""))
        row = session.scalar(
            select(StepUpKeyRow).where(
                StepUpKeyRow.id == key_id, StepUpKeyRow.staff_id == reviewer_id
            )
        )
        if row is None or row.revoked_at is not None:
            raise StepUpFailed("step-up failed: that key is not enrolled for you")
        try:
            signature = base64.b64decode(str(assertion.get("signature", "")), validate=True)
            Ed25519PublicKey.from_public_bytes(row.public_key).verify(
                signature,
                challenge(
                    request_id=request_id, digest=digest, reviewer_id=reviewer_id, decision=decision
                ),
            )
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise StepUpFailed(
                "step-up failed: the signature does not confirm this review"
            ) from exc
        return {"method": "device-key", "key_id": key_id}


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
        verifier = self.default
        if assertion and "method" in assertion:
            method = assertion["method"]
            found = self.by_method.get(method) if isinstance(method, str) else None
            if found is None:
                known = ", ".join(sorted(self.by_method))
                raise BadInput(f"unknown step-up method {method!r} (known: {known})")
            verifier = found
        return verifier.verify(
            session,
            request_id=request_id,
            reviewer_id=reviewer_id,
            digest=digest,
            decision=decision,
            assertion=assertion,
        )


def key_id_of(key: Ed25519PrivateKey | bytes) -> str:
    """The id of a step-up key: the first 16 hex digits of SHA-256 of its public key."""
    public = (
        key
        if isinstance(key, bytes)
        else key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    return hashlib.sha256(public).hexdigest()[:16]


def enroll_key(session: Session, staff_id: str, public_key: bytes, now: datetime) -> str:
    """Enrol an Ed25519 public key for step-up; returns its key id."""
    if len(public_key) != 32:
        raise BadInput("a step-up key is a 32-byte Ed25519 public key")
    key_id = key_id_of(public_key)
    if session.get(StepUpKeyRow, key_id) is None:
        session.add(
            StepUpKeyRow(id=key_id, staff_id=staff_id, public_key=public_key, created_at=now)
        )
    return key_id
