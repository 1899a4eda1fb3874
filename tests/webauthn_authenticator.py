"""A software WebAuthn authenticator for tests: an EC P-256 key (ES256) that answers
`navigator.credentials.create()` with a real "none"-attestation registration response and
`navigator.credentials.get()` with real assertions (authenticatorData with the RP ID hash, flags
and signature counter; clientDataJSON; an ECDSA signature over both), as the browser would send
them to the server (JSON with base64url bytes).

Written here, independently of the `webauthn` package under test (its own CBOR encoder too), and
with knobs for what an attacker or a broken key would do: another origin or RP ID, no user
verification, a counter that goes backwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_AT = 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value: Any) -> bytes:
    """Just enough CBOR (RFC 8949) for a COSE key and an attestation object."""
    if isinstance(value, bool) or value is None:
        raise TypeError("not needed here")
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(f"cannot encode {type(value).__name__}")


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size, fmt in ((24, 1, ">B"), (25, 2, ">H"), (26, 4, ">I"), (27, 8, ">Q")):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + struct.pack(fmt, n)
    raise ValueError("too large")


class SoftAuthenticator:
    """One credential on one authenticator, bound to `rp_id`, used from `origin`."""

    def __init__(
        self,
        rp_id: str = "localhost",
        origin: str = "http://localhost:8400",
        *,
        counter: bool = True,
    ) -> None:
        self.rp_id = rp_id
        self.origin = origin
        self.counter = counter  # False: always 0, as many passkeys (synced ones) report
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.user_handle: bytes | None = None

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _auth_data(self, rp_id: str | None, flags: int, attested: bytes = b"") -> bytes:
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.sign_count) + attested

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
    ) -> dict[str, Any]:
        """The RegistrationResponseJSON for creation `options` (as the server sent them)."""
        excluded = {unb64url(c["id"]) for c in options.get("excludeCredentials", [])}
        if self.credential_id in excluded:
            raise ValueError("InvalidStateError: this authenticator is already registered")
        self.user_handle = unb64url(options["user"]["id"])
        attested = (
            bytes(16)  # AAGUID: none
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self.cose_public_key()
        )
        flags = FLAG_UP | FLAG_AT | (FLAG_UV if user_verified else 0)
        auth_data = self._auth_data(rp_id, flags, attested)
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data(
            "webauthn.create", options["challenge"], origin or self.origin
        )
        return self._credential_json(
            {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["usb"],
            }
        )

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
    ) -> dict[str, Any]:
        """The AuthenticationResponseJSON for request `options`; the counter (if it keeps one)
        moves on by one."""
        allowed = {unb64url(c["id"]) for c in options.get("allowCredentials", [])}
        if allowed and self.credential_id not in allowed:
            raise ValueError("NotAllowedError: no allowed credential on this authenticator")
        if self.counter:
            self.sign_count += 1
        auth_data = self._auth_data(rp_id, FLAG_UP | (FLAG_UV if user_verified else 0))
        client_data = self._client_data("webauthn.get", options["challenge"], origin or self.origin)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64url(self.user_handle)
        return self._credential_json(response)

    def _credential_json(self, response: dict[str, Any]) -> dict[str, Any]:
        """This key's PublicKeyCredential as JSON around `response` (an attestation or an
        assertion), as a browser posts it."""
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "cross-platform",
        }
