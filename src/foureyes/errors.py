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


class BadCursor(BadInput):
    """A paging cursor this server did not give out for this list (forged, from another list,
    or past the end): 400, nothing read."""

    status = 400
    slug = "bad-cursor"


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
    sign of an attack, so foureyes raises an alert as well as refusing
    (`foureyes.auth.step_up_failures`)."""

    def __init__(self, message: str, *, key_id: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        # The presented credential when it is one of the person's own (its key id), else None:
        # what the alert is limited per besides the person. An attribute, never in `details`,
        # which the API would show.
        self.key_id = key_id


class TooManyAttempts(FoureyesError):
    """Too many failed attempts within a window (console sign-ins from one address, step-ups
    by one person: `foureyes.auth.attempts`): refused, whatever this attempt holds, until the
    oldest failure leaves the window (`retry_after`, in seconds, in the details)."""

    status = 429
    slug = "too-many-attempts"


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


class LogHeadAltered(Unavailable):
    """The audit log's head (the `audit_head` row: how many events the log holds, which every
    append takes its place from) does not match the events: it was moved or deleted outside
    foureyes. Nothing can be appended until it is restored, so every change is refused whole
    (nothing is half-written); `foureyes audit verify` says more."""

    slug = "log-head-altered"


class LogRolledBack(Unavailable):
    """The audit log is not consistent with its witness's latest checkpoint: events the witness
    saw are gone or rewritten (a rollback). Nothing is submitted, reviewed or executed until an
    operator restores the log or starts a new witness (`foureyes.core.logstate`)."""

    slug = "log-rolled-back"


class ConnectorError(FoureyesError):
    """A platform call failed. `transient` errors may be retried; the others may not.
    `outcome_unknown`: the call may have reached the platform and been applied (it was cut
    short by its deadline, or its answer was lost or could not be believed): an execution
    that fails so is reconciled from the platform's record, never retried nor failed blindly."""

    status = 502
    slug = "connector-error"

    def __init__(
        self, message: str, *, transient: bool, outcome_unknown: bool = False, **details: object
    ) -> None:
        super().__init__(message, **details)
        self.transient = transient
        self.outcome_unknown = outcome_unknown


class BatchRefused(Forbidden):
    """A batch the policy refuses as a whole: no batch rule names its action (deny by default),
    or the batch rule does not let this person ask for one. Nothing is recorded."""

    slug = "batch-refused"
