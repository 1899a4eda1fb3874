"""Signing and verifying foureyes webhooks: what a receiver of the `http` connector needs.

foureyes signs every request it sends to a webhook receiver (the approved action, POSTed as JSON,
and the account look-ups, GETs with an empty body) with HMAC-SHA256 under a secret shared with
the receiver, in one header:

    Foureyes-Signature: t=1764082800,v2=<64 lowercase hex digits>

`t` is the Unix time of signing; `v2` is the lowercase hex HMAC-SHA256 of
`t + "." + METHOD + "." + target + "." + body`: the request method in capitals, the request
target exactly as it is on the request line (path and query, percent-encoded as sent) and the
body's exact bytes. So a signature holds for one method on one path with one body: a captured
`GET /accounts/alice` does not verify as `GET /accounts/president`. A header may carry several
`v2` values (for instance while a secret is being rotated); one matching is enough. (`v1`,
which covered only the body, is no longer sent nor accepted.)

A receiver calls `verify(headers, method, target, body, secret)` before it trusts anything in
the request. It checks the signature in constant time and refuses a timestamp more than
`tolerance` seconds away from its own clock. Within that window the same request can be
replayed; docs/webhooks.md says what a receiver keeps (durably, so a restart does not reopen
the window) to refuse that.

This module needs only the standard library: a receiver may copy it instead of installing
foureyes (see examples/webhook_receiver.py).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = [
    "DEFAULT_TOLERANCE",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "HeaderSource",
    "SignatureError",
    "sign",
    "signature",
    "verify",
]

SIGNATURE_HEADER = "Foureyes-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE = 300
_SCHEME = "v2"
_MAX_HEADER = 4096


class SignatureError(ValueError):
    """The request is not signed by someone who holds the secret, or not recently enough.
    The message says which, without echoing anything secret."""


class HeaderSource(Protocol):
    """Anything with `items()`: a dict, `http.server`'s `self.headers`, a framework's headers."""

    def items(self) -> Iterable[tuple[str, Any]]: ...


def signature(method: str, target: str, body: bytes, secret: str | bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `timestamp.METHOD.target.body` under `secret`."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    message = b".".join(
        (
            str(int(timestamp)).encode("ascii"),
            method.upper().encode("ascii"),
            target.encode("ascii"),
            body,
        )
    )
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(
    method: str, target: str, body: bytes, secret: str | bytes, *, timestamp: int | None = None
) -> str:
    """The `Foureyes-Signature` header value for `METHOD target` with `body`, signed now (or
    at `timestamp`). `target` is the request line's path and query, as sent."""
    _check_target(target)
    moment = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={moment},{_SCHEME}={signature(method, target, body, secret, moment)}"


def verify(
    headers: HeaderSource,
    method: str,
    target: str,
    body: bytes,
    secret: str | bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check the `Foureyes-Signature` header of the request `METHOD target` whose body is `body`
    (`target`: the request line's path and query, exactly as received, not decoded).

    Returns the signed timestamp. Raises SignatureError when the header is missing or
    malformed, when no `v2` signature matches (compared in constant time), or when the
    timestamp is more than `tolerance` seconds before or after `now` (default: the clock).
    Header names are matched without regard to case.
    """
    if not secret:
        raise SignatureError("no secret to verify with")
    try:
        _check_target(target)
        method.encode("ascii")
    except (ValueError, UnicodeEncodeError):
        raise SignatureError("the request target is not a plain ASCII path") from None
    values = [
        str(value) for name, value in headers.items() if name.lower() == SIGNATURE_HEADER.lower()
    ]
    if not values:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    header = ",".join(values)
    if len(header) > _MAX_HEADER:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is too long")
    timestamp, candidates = _parse(header)
    expected = signature(method, target, body, secret, timestamp)
    matched = False
    for candidate in candidates:
        # Compare every candidate: how many there are is public, which one matched is not.
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("ascii"))
    if not matched:
        raise SignatureError("the signature does not match")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            f"the signature's timestamp is {int(current - timestamp)} s away from now "
            f"(tolerance {tolerance} s): a replay, or a clock that is off"
        )
    return timestamp


def _check_target(target: str) -> None:
    """A request target is an origin-form path (`/…`), ASCII as on the wire."""
    if not target.startswith("/") or not target.isascii() or any(c in target for c in " \r\n"):
        raise ValueError(f"not an origin-form request target: {target[:80]!r}")


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER} header")
        if key == "t":
            if (
                timestamp is not None
                or not (value.isascii() and value.isdigit())
                or len(value) > 12
            ):
                raise SignatureError(f"malformed timestamp in the {SIGNATURE_HEADER} header")
            timestamp = int(value)
        elif key == _SCHEME:
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise SignatureError(f"malformed {_SCHEME} signature")
            candidates.append(value)
        # Other schemes (v1 too) are ignored, so that a new one can be added alongside v2.
    if timestamp is None:
        raise SignatureError(f"no timestamp in the {SIGNATURE_HEADER} header")
    if not candidates:
        raise SignatureError(f"no {_SCHEME} signature in the {SIGNATURE_HEADER} header")
    return timestamp, candidates
