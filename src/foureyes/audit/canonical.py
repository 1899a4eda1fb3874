"""Canonical JSON (RFC 8785, JCS) and the SHA-256 digests taken over it.

Audit events and request digests are hashed over these bytes, so two processes that build the
same value must produce the same bytes, on any platform and Python version. RFC 8785 gives that:
object members sorted by their UTF-16 code units, no insignificant whitespace, ECMAScript number
formatting, minimal string escaping, UTF-8 output.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import rfc8785

from foureyes.errors import BadInput

__all__ = ["JsonValue", "canonical_digest", "canonical_json", "sha256_hex"]

# What canonical_json accepts: the JSON data model as Python builds it. Tuples are taken as arrays.
JsonValue: TypeAlias = (
    "bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)


def canonical_json(value: JsonValue) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of `value`.

    Accepts None, bool, int, float, str, list, tuple and dict (with str keys), nested. Raises
    `BadInput` for anything JSON cannot represent exactly: a float that is NaN or infinite, an
    integer outside the IEEE 754 safe range ±(2**53 - 1) (RFC 8785 §3.2.2.3 numbers are doubles,
    so larger ones would silently lose precision in other implementations), a non-str object
    key, a string with lone surrogates, any other type, or nesting too deep to serialise.

    An integral float of magnitude >= 2**53 is accepted and written without exponent (as RFC
    8785 formats doubles), so a Python JSON parser reads it back as an int that this function
    refuses; values that large belong in events as strings.
    """
    fast = _fast(value)
    if fast is not None:
        return fast
    # Check the two common mistakes ourselves so the message names the offending path; the
    # library's own errors still cover everything else.
    _check(value, "$")
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise BadInput(f"value cannot be canonicalised as JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadInput("value is nested too deeply to canonicalise as JSON") from exc
    except UnicodeError as exc:
        raise BadInput("value holds text that is not valid Unicode") from exc


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 of `data` (64 characters)."""
    return hashlib.sha256(data).hexdigest()


def canonical_digest(value: JsonValue) -> str:
    """Return `sha256_hex(canonical_json(value))`: the digest reviews and events are bound to."""
    return sha256_hex(canonical_json(value))


def _fast(value: object) -> bytes | None:
    """The same bytes as `rfc8785.dumps`, from the standard library's C encoder, for the
    values where the two agree by construction (None if `value` is not one): no floats (ECMAScript
    formats them otherwise), integers in the safe range, ASCII object keys (so that code-point
    order is UTF-16 order), plain dicts, lists, tuples and strings. Both escape exactly `"`,
    `\\` and U+0000..U+001F, with the same short forms and lowercase `\\u00xx`; text with
    a lone surrogate fails to encode and goes the slow way (which refuses it)."""
    if not _simple(value, 0):
        return None
    try:
        return _ENCODE(value).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        return None


# Built once: `json.dumps` with these options builds a new encoder on every call.
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_SAFE = 2**53 - 1
_LEAVES = frozenset({str, bool, type(None)})  # always simple; int only in the safe range


def _simple(value: object, depth: int) -> bool:
    """Whether `_fast` may encode `value` (an object or array `depth` levels down). The
    members of objects and arrays are checked in a loop here, not one call each: events and
    digests are flat objects of text, numbers and booleans, checked on every append."""
    kind = type(value)
    if kind in _LEAVES:
        return True
    if kind is int:
        return -_SAFE <= value <= _SAFE  # type: ignore[operator]
    if depth > 100:
        return False
    leaves, inner = _LEAVES, depth + 1
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str or not key.isascii():
                return False
            if type(item) not in leaves and not _simple(item, inner):
                return False
        return True
    if kind is list or kind is tuple:
        # A loop, not all() over a generator: that costs a frame switch per member.
        for item in value:  # type: ignore[attr-defined]  # noqa: SIM110
            if type(item) not in leaves and not _simple(item, inner):
                return False
        return True
    return False


def _check(value: object, path: str, depth: int = 0) -> None:
    """Reject non-finite floats and non-str keys, naming where they are (`$.a[2].b`)."""
    if depth > 500:
        raise BadInput("value is nested too deeply to canonicalise as JSON")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadInput(f"{path}: {value!r} is not a JSON number (NaN and infinity are not)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadInput(f"{path}: object key {key!r} is not a string")
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate: not text, and RFC 8785 sorts keys by their UTF-16 units.
                raise BadInput(f"{path}: object key {key!a} is not valid Unicode") from None
            _check(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1)
