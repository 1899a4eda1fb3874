"""What a reviewer's key signs, and the id of a device key: pure functions the staff CLI
shares with the server. This module imports neither the database nor the web framework, so
that `foureyes review --step-up-key` starts at once."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography is imported only where a key is used (`key_id_of`)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["challenge", "device_key_id", "key_id_of"]


def challenge(*, request_id: str, digest: str, reviewer_id: str, decision: str) -> bytes:
    """The bytes a reviewer's key signs for one review: this request (its id, so that two
    requests with identical content do not accept each other's assertions), exactly what it
    asks (its digest), this reviewer and this verdict."""
    text = (
        f"foureyes step-up v2\nrequest-id {request_id}\nrequest {digest}\n"
        f"reviewer {reviewer_id}\ndecision {decision}\n"
    )
    return hashlib.sha256(text.encode()).digest()


def device_key_id(public_key: bytes) -> str:
    """The id of a device key: the first 16 hex digits of SHA-256 of its public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def key_id_of(key: Ed25519PrivateKey | bytes) -> str:
    """The id of a step-up key (a private key, or its raw public key): `device_key_id`."""
    # Here, not at the top: the staff commands that sign nothing never load cryptography.
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: PLC0415

    public = (
        key
        if isinstance(key, bytes)
        else key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    return device_key_id(public)
