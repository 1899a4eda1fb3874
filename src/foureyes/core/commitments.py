"""Salted commitments: what foureyes shows and logs instead of a request's values.

A request's digest (what reviewers approve and step-up keys sign) and the audit log's hashes of
its params and undo params are SHA-256 over canonical JSON that includes the request's random
salt (`new_salt`, 256 bits, stored in the request row only). Without the salt, a hash cannot be
used to test a guess of a value it covers (an undo's restored address); with the row, anyone
can check it. docs/digests.md says why the salt is never shown nor logged.

Below `foureyes.core.services` (which checks a policy update's commitment with it), so it
imports nothing of foureyes but canonical JSON: callers pass JSON-ready values.
"""

from __future__ import annotations

import hashlib
import secrets

from foureyes.audit.canonical import JsonValue, canonical_json

__all__ = ["DIGEST_VERSION", "PARAMS", "SALT_BYTES", "UNDO_PARAMS", "new_salt", "salted_sha256"]

# The version of a request's digest and commitments made now; its `request.submitted` event
# says it (`digest_version`). Events without it are of unsalted, version 2 (or older) requests.
DIGEST_VERSION = 3
SALT_BYTES = 32  # 256 random bits, as 64 hex digits

# What a commitment is to (`of`): one request's params, and the undo params its execution left.
PARAMS = "params"
UNDO_PARAMS = "undo_params"


def new_salt() -> str:
    """A fresh random salt for one request (`secrets`, hex)."""
    return secrets.token_hex(SALT_BYTES)


def salted_sha256(salt: str, of: str, values: JsonValue) -> str:
    """SHA-256 of the canonical JSON of `{"v": 3, "of": of, "salt": salt, "values": values}`
    (`values` JSON-ready). `of` keeps one request's commitments apart from each other, and all
    of them from its digest (whose body has no `of`)."""
    body: JsonValue = {"v": DIGEST_VERSION, "of": of, "salt": salt, "values": values}
    return hashlib.sha256(canonical_json(body)).hexdigest()
