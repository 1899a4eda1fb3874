"""Answering a call whose change committed, or may have, when a later step of it fails.

Most calls are one transaction: if it fails before its COMMIT nothing changed, and `Unavailable`
says so; if the connection is lost during the COMMIT, the store raises `OutcomeUnknown`. Some
calls are several: a submit records the request, then carries out what the policy allows at
once (the claim, the platform call, the result: further transactions), then reads the request
back for the answer; a review, a cancel, an undo read the request back after their COMMIT. A
failure after the first COMMIT must never be answered as if nothing changed: the request is
there, and the worker may carry it out minutes later. Every such failure — the database gone,
a refusal, a bug — becomes `OutcomeUnknown` carrying the request's id, what is known to have
been done, and how to find out the rest (look the request up; retry a submit only with the
same idempotency key, which answers this request instead of recording another).

Operations and routes wrap the steps that follow a COMMIT in `after`; a call whose own (one)
transaction names a request wraps it in `naming`, so that a lost COMMIT names the request too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from foureyes.errors import FoureyesError, OutcomeUnknown, Unavailable

__all__ = ["LOOK", "after", "carrying_out", "lost_commit", "naming"]

log = logging.getLogger(__name__)

# What the person should do about an unknown outcome (every message ends with it).
LOOK = (
    "look the request up before trying again (a submit retried with the same idempotency key "
    "answers this request instead of recording another; without one it records a second)"
)


def _failure(exc: BaseException) -> str:
    """What failed, in words safe to show the caller (a FoureyesError's message is; the
    database's own words are not, and an Unavailable's advice to "try again" is wrong here)."""
    if isinstance(exc, OutcomeUnknown):
        return "the connection to the database was lost during a commit"
    if isinstance(exc, Unavailable):
        return "the database (or a platform) became unavailable"
    if isinstance(exc, FoureyesError):
        return exc.message
    return "an internal error occurred (it has been logged)"


def _cause(exc: BaseException) -> str:
    return exc.slug if isinstance(exc, FoureyesError) else "internal-error"


@contextmanager
def after(request_id: str, done: str) -> Iterator[None]:
    """The block runs after `done` committed (e.g. "request X was recorded"). Any exception in
    it — a database failure, a refusal, a bug (logged here with its traceback, as the API's
    catch-all would have) — is raised as OutcomeUnknown naming `request_id`, saying what was
    done, what failed after it, and to look before trying again."""
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, FoureyesError):
            log.exception("after %s: unexpected error", done)
        raise OutcomeUnknown(
            f"{done}, but then {_failure(exc)}: what happened after that is unknown; {LOOK}",
            request_id=request_id,
            cause=_cause(exc),
        ) from exc


@contextmanager
def naming(request_id: str, what: str) -> Iterator[None]:
    """The block is one transaction that changes request `request_id` (`what` it does, e.g.
    "your review of request X"). A COMMIT whose answer was lost (OutcomeUnknown from the store)
    names the request; any other error passes unchanged (nothing was committed)."""
    try:
        yield
    except OutcomeUnknown as exc:
        if "request_id" in exc.details:
            raise
        raise lost_commit(request_id, what) from exc


def lost_commit(request_id: str, what: str) -> OutcomeUnknown:
    """The OutcomeUnknown of a transaction recording `what` about request `request_id`
    whose COMMIT's answer was lost."""
    return OutcomeUnknown(
        f"{what} may have been recorded (the connection to the database was lost during the "
        f"commit); {LOOK}",
        request_id=request_id,
        cause=OutcomeUnknown.slug,
    )


@contextmanager
def carrying_out(request_id: str) -> Iterator[None]:
    """The block carries out request `request_id` (`execute`: a claim, the platform call, the
    result, each in its own transaction). A refusal (4xx: not approved, not yours) passes
    unchanged: it is raised before anything changes. A database failure or a bug may come after
    the claim committed or the platform acted, so it is OutcomeUnknown naming the request (the
    platform call carries the request id as its idempotency key, and an interrupted execution
    is reconciled: it is never carried out twice)."""
    try:
        yield
    except FoureyesError as exc:
        if exc.status < 500 or "request_id" in exc.details:
            raise
        raise _unknown_execution(request_id, exc) from exc
    except Exception as exc:
        log.exception("carrying out request %s: unexpected error", request_id)
        raise _unknown_execution(request_id, exc) from exc


def _unknown_execution(request_id: str, exc: BaseException) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"while request {request_id} was being carried out, {_failure(exc)}: whether it was "
        f"carried out is unknown (it is never carried out twice); {LOOK}",
        request_id=request_id,
        cause=_cause(exc),
    )
