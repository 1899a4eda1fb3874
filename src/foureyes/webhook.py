"""Signing and verifying foureyes webhooks: what a receiver of the `http` connector needs.

foureyes signs every request it sends to a webhook receiver (the approved action, POSTed as JSON,
and the account look-ups, GETs with an empty body) with HMAC-SHA256 under a secret shared with
the receiver, in one header:

    Foureyes-Signature: t=1764082800,n=<nonce>,v3=<64 lowercase hex digits>

`t` is the Unix time of signing, `n` a fresh random nonce (hex); `v3` is the lowercase hex
HMAC-SHA256 of `t LF n LF METHOD LF target LF body`: the request method in capitals, the
request target exactly as it is on the request line (path and query, percent-encoded as sent)
and the body's exact bytes, each part ended by a line feed, which none before the body can
hold. So a signature holds for one method on one path with one body: a captured
`GET /accounts/alice` verifies neither as `GET /accounts/president` nor as `GET
/accounts/alice` with another body. A header may carry several `v3` values (for instance while
a secret is being rotated); one matching is enough. (`v1` and `v2`, which joined the parts
with dots that a target or a body can hold too, are no longer sent nor accepted.)

A receiver calls `verify(headers, method, target, body, secret)` before it trusts anything in
the request. It checks the signature in constant time and refuses a timestamp more than
`tolerance` seconds away from its own clock. Within that window the same request can be
replayed; docs/webhooks.md says what a receiver keeps (durably, so a restart does not reopen
the window) to refuse that.

Answers are signed too, so that foureyes believes only what the receiver said (not a proxy's
error page, nor an answer captured earlier and played back): the receiver puts

    Foureyes-Answer-Signature: t=1764082801,v3=<64 lowercase hex digits>

on every answer, the HMAC-SHA256 under the same secret of `t LF STATUS LF METHOD LF target LF
sha256hex(request body) LF <the request's Foureyes-Signature header, as received> LF answer
body` (`sign_answer`). foureyes sends a fresh random nonce (`n=`) in
each request's signature header, so an answer holds for that one request alone; the connector
checks it (`verify_answer`) and takes an answer without a valid one as a platform failure,
never as success.

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
    "ANSWER_SIGNATURE_HEADER",
    "DEFAULT_TOLERANCE",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "HeaderSource",
    "SignatureError",
    "answer_signature",
    "request_signature",
    "sign",
    "sign_answer",
    "signature",
    "verify",
    "verify_answer",
]

SIGNATURE_HEADER = "Foureyes-Signature"
ANSWER_SIGNATURE_HEADER = "Foureyes-Answer-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE = 300
_SCHEME = "v3"
_MAX_HEADER = 4096


class SignatureError(ValueError):
    """The request is not signed by someone who holds the secret, or not recently enough.
    The message says which, without echoing anything secret."""


class HeaderSource(Protocol):
    """Anything with `items()`: a dict, `http.server`'s `self.headers`, a framework's headers."""

    def items(self) -> Iterable[tuple[str, Any]]: ...


def signature(
    method: str,
    target: str,
    body: bytes,
    secret: str | bytes,
    timestamp: int,
    nonce: str = "",
) -> str:
    """The hex HMAC-SHA256 of `timestamp LF nonce LF METHOD LF target LF body` under `secret`.
    Line feeds, which neither the first four (digits, hex, a token, a request target) can
    hold, keep the parts apart: no other method, target and body give the same message."""
    if not method.isascii() or not method.isalpha():
        raise ValueError(f"not a request method: {method[:20]!r}")
    _check_target(target)
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    head = f"{int(timestamp)}\n{nonce}\n{method.upper()}\n{target}\n".encode("ascii")
    return hmac.new(key, head + body, hashlib.sha256).hexdigest()


def sign(
    method: str,
    target: str,
    body: bytes,
    secret: str | bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """The `Foureyes-Signature` header value for `METHOD target` with `body`, signed now (or
    at `timestamp`). `target` is the request line's path and query, as sent. A `nonce` (hex,
    fresh for each request) goes into the header as `n=`: the receiver's signed answer covers
    the header, so it holds for this request alone."""
    moment = int(time.time()) if timestamp is None else int(timestamp)
    if nonce is None:
        return f"t={moment},{_SCHEME}={signature(method, target, body, secret, moment)}"
    if not _is_nonce(nonce):
        raise ValueError("a nonce is 1 to 64 lowercase hex digits")
    mac = signature(method, target, body, secret, moment, nonce)
    return f"t={moment},n={nonce},{_SCHEME}={mac}"


def _is_nonce(value: str) -> bool:
    return 0 < len(value) <= 64 and all(c in "0123456789abcdef" for c in value)


def request_signature(headers: HeaderSource) -> str:
    """The request's `Foureyes-Signature` header as received (several joined by commas, as
    `verify` reads them; empty when there is none): what a signed answer covers."""
    return ",".join(
        str(value) for name, value in headers.items() if name.lower() == SIGNATURE_HEADER.lower()
    )


def answer_signature(
    status: int,
    body: bytes,
    secret: str | bytes,
    timestamp: int,
    *,
    method: str,
    target: str,
    request_body: bytes,
    request_signature: str,
) -> str:
    """The hex HMAC-SHA256 of an answer (see the module docstring)."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    # Line feeds keep the parts apart (none of those before the body can hold one).
    parts = (
        str(int(timestamp)),
        str(int(status)),
        method.upper(),
        target,
        hashlib.sha256(request_body).hexdigest(),
        request_signature,
    )
    if any("\n" in part or "\r" in part for part in parts):
        raise ValueError("a line break in a signed answer's request")
    joined = "\n".join(parts).encode("ascii", "replace") + b"\n"
    return hmac.new(key, joined + body, hashlib.sha256).hexdigest()


def sign_answer(
    status: int,
    body: bytes,
    secret: str | bytes,
    *,
    method: str,
    target: str,
    request_body: bytes,
    request_signature: str,
    timestamp: int | None = None,
) -> str:
    """The `Foureyes-Answer-Signature` header value for an answer (`status`, `body`) to the
    request `METHOD target` whose body was `request_body` and whose `Foureyes-Signature` header
    was `request_signature` (`request_signature(headers)`; empty if it had none). A receiver
    signs every answer, refusals included."""
    moment = int(time.time()) if timestamp is None else int(timestamp)
    mac = answer_signature(
        status,
        body,
        secret,
        moment,
        method=method,
        target=target,
        request_body=request_body,
        request_signature=request_signature,
    )
    return f"t={moment},{_SCHEME}={mac}"


def verify_answer(
    headers: HeaderSource,
    status: int,
    body: bytes,
    secret: str | bytes,
    *,
    method: str,
    target: str,
    request_body: bytes,
    request_signature: str,
) -> None:
    """Check the `Foureyes-Answer-Signature` of an answer to the request described (as
    `sign_answer`): SignatureError when it is missing, malformed or does not match. The
    request's nonce makes the answer fresh, so its timestamp is not checked against a clock."""
    if not secret:
        raise SignatureError("no secret to verify with")
    values = [
        str(value)
        for name, value in headers.items()
        if name.lower() == ANSWER_SIGNATURE_HEADER.lower()
    ]
    if not values:
        raise SignatureError(f"no {ANSWER_SIGNATURE_HEADER} header")
    header = ",".join(values)
    if len(header) > _MAX_HEADER:
        raise SignatureError(f"the {ANSWER_SIGNATURE_HEADER} header is too long")
    timestamp, _, candidates = _parse(header, ANSWER_SIGNATURE_HEADER)
    expected = answer_signature(
        status,
        body,
        secret,
        timestamp,
        method=method,
        target=target,
        request_body=request_body,
        request_signature=request_signature,
    )
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("ascii"))
    if not matched:
        raise SignatureError("the answer's signature does not match")


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
    malformed, when no `v3` signature matches (compared in constant time), or when the
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
    if not any(name.lower() == SIGNATURE_HEADER.lower() for name, _ in headers.items()):
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    header = request_signature(headers)
    if len(header) > _MAX_HEADER:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is too long")
    timestamp, nonce, candidates = _parse(header)
    expected = signature(method, target, body, secret, timestamp, nonce)
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


def _parse(header: str, name: str = SIGNATURE_HEADER) -> tuple[int, str, list[str]]:
    """The timestamp, the nonce (empty when there is none) and the signatures of a header."""
    timestamp: int | None = None
    nonce: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {name} header")
        if key == "t":
            if (
                timestamp is not None
                or not (value.isascii() and value.isdigit())
                or len(value) > 12
            ):
                raise SignatureError(f"malformed timestamp in the {name} header")
            timestamp = int(value)
        elif key == "n":
            if nonce is not None or not _is_nonce(value):
                raise SignatureError(f"malformed nonce in the {name} header")
            nonce = value
        elif key == _SCHEME:
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise SignatureError(f"malformed {_SCHEME} signature")
            candidates.append(value)
        # Other schemes (v1 and v2 too) are ignored, so that a new one can be added alongside.
    if timestamp is None:
        raise SignatureError(f"no timestamp in the {name} header")
    if not candidates:
        raise SignatureError(f"no {_SCHEME} signature in the {name} header")
    return timestamp, nonce or "", candidates
