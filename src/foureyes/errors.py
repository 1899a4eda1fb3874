"""One exception tree for the whole of foureyes.

Every error foureyes raises on purpose is a `FoureyesError`. Each class carries the HTTP status
the API answers with and a problem type slug; the message is a one-line human diagnosis, safe to
show to the person who caused it (it never contains a secret). Routes and the CLI map these in one
place each; operations only raise them.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FoureyesError(Exception):
    """Base of every deliberate foureyes error."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    # True when this error repeats the answer to an earlier call: a submit retried with the
    # idempotency key of one the policy denied answers that denial again. The API adds
    # `Idempotent-Replayed: true` to such a problem.
    replayed: bool = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return self.message


class BadInput(FoureyesError):
    """Input that foureyes cannot accept: malformed, unknown names, failing a schema."""

    status = 422
    slug = "bad-input"


class IdempotencyKeyReused(BadInput):
    """A submit carries the idempotency key of an earlier request of the same person that asked
    for something else (another action, account, params, justification or break-glass). Nothing
    is recorded; a new request needs a new key. Carries the earlier `request_id`."""

    slug = "idempotency-key-reused"


class PolicyError(BadInput):
    """A policy (or staff directory) that does not load; names the file, line and field."""

    slug = "invalid-policy"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        **details: Any,
    ) -> None:
        where = ""
        if file is not None:
            where = file if line is None else f"{file}:{line}"
        if field:
            where = f"{where}: {field}" if where else field
        super().__init__(f"{where}: {message}" if where else message, **details)
        self.file = file
        self.line = line
        self.field = field
        self.reason = message


class NotFound(FoureyesError):
    """A named thing (staff member, account, action, request) does not exist."""

    status = 404
    slug = "not-found"


class Unauthenticated(FoureyesError):
    """No credential, or one that does not verify."""

    status = 401
    slug = "unauthenticated"


class DeadCredential(Unauthenticated):
    """A known person's own credential that no longer works (revoked, expired, or its owner
    terminated, suspended or outside their contract): the same 401 to the caller, and evidence
    for oversight (`foureyes.auth.dead_credentials`). What it is about is kept in attributes,
    never in `details`, which the API would show the caller."""

    def __init__(self, message: str, *, staff: str, credential: str, reason: str) -> None:
        super().__init__(message)
        self.staff = staff
        self.credential = credential  # e.g. "token:<id>", "oidc:<login>"
        self.reason = reason  # "revoked", "expired", or the person's floor problem


class Forbidden(FoureyesError):
    """The caller is known but may not do this (including a policy denial)."""

    status = 403
    slug = "forbidden"


class StepUpFailed(Forbidden):
    """A step-up assertion was presented and did not confirm this review (another review's,
    another person's key, a bad signature, a cloned key). Unlike a missing step-up, it is a
    sign of an attack, so foureyes raises an alert as well as refusing."""


class Conflict(FoureyesError):
    """The thing changed under the caller: a stale state, a digest mismatch, a double review."""

    status = 409
    slug = "conflict"


class InvariantViolation(FoureyesError):
    """A policy would make possible what one of its invariants says must never be."""

    status = 422
    slug = "invariant-violated"


class Unavailable(FoureyesError):
    """Something foureyes depends on (the database, a platform) cannot serve now, and nothing
    changed. (When something did, or may have, it is the subclass `OutcomeUnknown`.)"""

    status = 503
    slug = "unavailable"


class OutcomeUnknown(Unavailable):
    """A call that changed something, or may have, failed before it could say what it did:
    the database failed during a COMMIT, or after the request was recorded (while carrying it
    out, or reading it back). Never an answer that nothing changed. Carries `outcome:
    "unknown"` and, whenever one is concerned, the `request_id` to look up; a submit is
    retried safely only with the same idempotency key (a retry without one records a second
    request)."""

    slug = "outcome-unknown"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **{**details, "outcome": "unknown"})


class RecordAltered(Unavailable):
    """A store record that decisions or sign-ins read (a person's directory record, a token, a
    console session, a step-up credential, an account's pins) is not what the audit log last
    sealed for it: it was written outside foureyes (`foureyes.store.seals`). Nothing is decided
    or signed in on it until it is restored, and security is alerted (`record_tampered`). What
    it is about is kept in attributes (`record`, `staff`, `found`, `sealed`: digests), not in
    `details`, which the API would show the caller."""

    slug = "record-altered"

    def __init__(
        self, message: str, *, record: str, staff: str | None, found: str | None, sealed: str | None
    ) -> None:
        super().__init__(message)
        self.record = record  # e.g. "foureyes:staff/e-3002"
        self.staff = staff
        self.found = found
        self.sealed = sealed


class ConnectorError(FoureyesError):
    """A platform call failed. `transient` errors may be retried; the others may not."""

    status = 502
    slug = "connector-error"

    def __init__(self, message: str, *, transient: bool, **details: object) -> None:
        super().__init__(message, **details)
        self.transient = transient
