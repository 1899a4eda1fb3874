"""Adding a step-up credential after init, so that a stolen sign-in cannot decide.

`enrol`: a person adds a credential (a security key the console registered, a device key) for
themselves. With a `proof`, an assertion over `credentials.enrolment_challenge(new)` by one of
their credentials that counts now, it is stored at once; without one (their first credential,
or one replacing a lost key), a `foureyes.staff.enrol_credential` request is submitted in their
name and the governance connector stores it once another person (security, by the policy)
approved it (`carry_out`). The person never approves it: they are its requester, and
`carry_out` refuses a request their own approval carried.

Either way the stored credential counts for approvals only after the cool-down
(`Services.credential_cooldown`), and storing it raises a high `credential_enrolled` alert and
tells the person and the `security` channel, in the same transaction as the row and its event,
so that the real owner hears of a credential they did not add while it cannot yet decide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from foureyes.auth import registrations, step_up_failures, webauthn
from foureyes.auth.credentials import (
    ENROL_ACTION,
    STAFF_ACCOUNT,
    WEBAUTHN,
    NewCredential,
    b64url,
    enrolment_challenge,
    has_counting_credential,
    insert,
    refuse_if_stored,
    stored,
)
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Forbidden, RecordAltered, StepUpFailed
from foureyes.notify import enqueue
from foureyes.store import seals
from foureyes.workflow import outcome
from foureyes.workflow.submit import Submission, submit

ALERT = "credential_enrolled"
SECURITY_CHANNEL = "security"
DEVICE_KEY_EVENT = "staff.step_up_key"
KEYS_PAGE = "/console/security-keys"


@dataclass(frozen=True)
class Enrolled:
    """What `enrol` did: stored the key (`counts_from` set), or asked for approval
    (`request_id` set)."""

    key_id: str
    counts_from: datetime | None = None
    request_id: str | None = None


def enrol(
    services: Services,
    actor: Actor,
    credential: NewCredential,
    *,
    proof: Mapping[str, Any] | None = None,
    client: str | None = None,
) -> Enrolled:
    """Add `credential` for the actor: vouched for by `proof`, else by a governed request.

    Refused, nothing stored: a credential for someone else (Forbidden), one already enrolled
    (Conflict), a person the floor stops (Forbidden), a proof that is not a valid assertion over
    this credential's challenge by a credential of theirs that counts now (StepUpFailed, also
    counted and flagged: `step_up_failures`), any proof from someone who failed too many
    step-ups lately (TooManyAttempts). A governed request the policy denies is `Denied`.
    """
    credential.check()
    if credential.staff_id != actor.id:
        raise Forbidden("you add step-up credentials for yourself only")
    if proof is None:
        return _ask(services, actor, credential, client)
    try:
        with services.database.transaction() as session:
            now = services.clock()
            _may_act(actor, now)
            refuse_if_stored(session, credential)
            step_up_failures.refuse_if_throttled(session, actor.id, now)
            evidence = services.step_up.confirm(
                session,
                staff_id=actor.id,
                expected=enrolment_challenge(credential),
                assertion=proof,
            )
            counts_from = activate(
                services,
                session,
                credential,
                now=now,
                actor=actor.id,
                how={"vouched_by": evidence},
            )
    except StepUpFailed as exc:
        _flag_failed_proof(services, actor, credential, exc)
        raise
    return Enrolled(credential.key_id, counts_from=counts_from)


def enrol_security_key(
    services: Services,
    actor: Actor,
    pending: webauthn.PendingRegistration,
    *,
    name: str,
    credential: Mapping[str, Any],
    proof: Mapping[str, Any] | None = None,
) -> Enrolled:
    """The console's enrolment: verify the browser's registration response
    (`webauthn.verified_registration`), then `enrol` it, vouched for by `proof` (a
    `{"method": "webauthn", "credential": ...}` or device-key assertion over the challenge of
    `security_key_proof_options`) or, without one, by a governed request."""
    new = webauthn.verified_registration(services, actor, pending, name=name, credential=credential)
    return enrol(services, actor, new, proof=proof, client="console")


def security_key_proof_options(
    services: Services,
    actor: Actor,
    pending: webauthn.PendingRegistration,
    *,
    name: str,
    credential: Mapping[str, Any],
) -> dict[str, Any]:
    """Request options by which one of the actor's counting security keys vouches for the key
    the registration response describes (Conflict if they have none that counts)."""
    new = webauthn.verified_registration(services, actor, pending, name=name, credential=credential)
    return webauthn.proof_options(services, actor, new)


def console_proof_options(
    services: Services,
    actor: Actor,
    console_session: str,
    *,
    name: str,
    credential: Mapping[str, Any],
) -> dict[str, Any]:
    """`security_key_proof_options` for the enrolment in progress of a console session (the
    session's id in the store), which stays in progress (`registrations.pending`)."""
    pending = registrations.pending(services, console_session)
    return security_key_proof_options(services, actor, pending, name=name, credential=credential)


def enrol_console_key(
    services: Services,
    actor: Actor,
    console_session: str,
    *,
    name: str,
    credential: Mapping[str, Any],
    proof: Mapping[str, Any] | None = None,
) -> Enrolled:
    """`enrol_security_key` against the enrolment in progress of a console session, used up
    first whatever the outcome (`registrations.take`): one response per challenge, and no
    copy of a request or cookie brings it back (BadInput: none in progress)."""
    pending = registrations.take(services, console_session)
    return enrol_security_key(
        services, actor, pending, name=name, credential=credential, proof=proof
    )


def _ask(
    services: Services, actor: Actor, credential: NewCredential, client: str | None
) -> Enrolled:
    with services.database.transaction() as session:
        _may_act(actor, services.clock())
        refuse_if_stored(session, credential)
    return Enrolled(
        credential.key_id, request_id=request_enrolment(services, actor, credential, client)
    )


def request_enrolment(
    services: Services, requester: Actor, credential: NewCredential, client: str | None
) -> str:
    """Submit `foureyes.staff.enrol_credential` for `credential` as `requester` and tell the
    person it is for; returns the request id. The policy decides who approves (never the
    requester, never the person: `carry_out`). Once the request is recorded, a failure of the
    notice is OutcomeUnknown naming it (the request stands), never an error saying nothing
    changed."""
    what = _label(credential)
    request_id = submit(
        services,
        requester,
        Submission(
            ENROL_ACTION,
            STAFF_ACCOUNT,
            params=credential.to_params(),
            justification=f"add {what} {credential.name!r} ({credential.key_id})",
            client=client,
        ),
    )
    with (
        outcome.after(request_id, f"request {request_id} was recorded"),
        services.database.transaction() as session,
    ):
        enqueue(
            session,
            to_staff=credential.staff_id,
            kind="credential.requested",
            subject=f"foureyes: adding {what} {credential.name!r} to your account was asked for",
            body=(
                f"{requester.id} ({requester.identity}) asked to add {what} {credential.name!r} "
                f"(key id {credential.key_id}) as your step-up credential; security must approve "
                "it. If this was not you, cancel the request and tell security at once."
            ),
            link=f"/console/requests/{request_id}",
            now=services.clock(),
        )
    return request_id


def carry_out(
    services: Services,
    params: Mapping[str, Any],
    *,
    requester: str,
    approvers: Sequence[str],
    request_id: str,
    then: Callable[[Session, Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Store the credential an approved `foureyes.staff.enrol_credential` request names (the
    governance connector's execution); returns the summary to keep. BadInput (the execution
    fails, nothing stored): no approver, the person among the approvers, a person the floor
    stops, material that is no credential, a credential stored already for another key. A
    replay of a request that stored it already answers the same. `then(session, summary)`
    runs in the same transaction (the connector records the request's key there)."""
    credential = NewCredential.from_params(params)
    if not approvers:
        raise BadInput("a credential enrolment needs an approval by another person")
    if credential.staff_id in approvers:
        raise BadInput(f"{credential.staff_id} cannot approve their own step-up credential")
    with services.database.transaction() as session:
        now = services.clock()
        person = services.staff(session, credential.staff_id)
        problem = person.floor_problem(now.date())
        if problem is not None:
            raise BadInput(f"{credential.staff_id} cannot have a step-up credential: {problem}")
        existing = stored(session, credential)
        if existing is not None:
            # Stored already counts as carried out only if foureyes stored it: a row a DBA
            # wrote in ahead of the execution would end it `executed` with a key that never
            # counts (RecordAltered: the execution fails, security is alerted).
            subject = seals.credential_ref(existing)
            try:
                found, sealed, _ = seals.stored_state(session, subject, lock=False)
                seals.check_state(subject, found, sealed)
            except RecordAltered as exc:
                services.report_altered(exc)
                raise
            if (
                existing.staff_id != credential.staff_id
                or existing.public_key != credential.public_key
            ):
                raise BadInput("another credential is enrolled under this id")
            counts_from = existing.counts_from
        else:
            counts_from = activate(
                services,
                session,
                credential,
                now=now,
                actor=None,
                how={
                    "by_request": request_id,
                    "requester": requester,
                    "approvers": list(approvers),
                },
            )
        summary = {
            "staff": credential.staff_id,
            "kind": credential.kind,
            "key_id": credential.key_id,
            "counts_from": counts_from.isoformat(),
        }
        if then is not None:
            then(session, summary)
    return summary


def activate(
    services: Services,
    session: Session,
    credential: NewCredential,
    *,
    now: datetime,
    actor: str | None,
    how: Mapping[str, Any],
) -> datetime:
    """Store a credential that counts after the cool-down, with its enrolment event, a high
    `credential_enrolled` alert (to the `security` channel) and a message to its owner, all in
    the caller's transaction; returns from when it counts. The caller checked that it is not
    stored yet and why it may be."""
    counts_from = now + services.credential_cooldown
    insert(session, credential, now=now, counts_from=counts_from)
    payload = {**how, "counts_from": counts_from.isoformat()}
    if credential.kind == WEBAUTHN:
        webauthn.enrolment_event(services, session, credential, payload, actor=actor, now=now)
    else:
        record(
            services,
            session,
            kind=DEVICE_KEY_EVENT,
            actor=actor,
            row=None,
            payload={
                "staff": credential.staff_id,
                "key_id": credential.key_id,
                "public_key": b64url(credential.public_key),
                **payload,
            },
            now=now,
        )
    what = _label(credential)
    when = counts_from.strftime("%Y-%m-%d %H:%M UTC")
    raise_alert(
        services,
        session,
        NewAlert(
            detector=ALERT,
            severity="high",
            summary=(
                f"{what} {credential.name!r} was added for {credential.staff_id}; "
                f"it counts for approvals from {when}"
            ),
            staff=credential.staff_id,
            details={"key_id": credential.key_id, "kind": credential.kind, **payload},
        ),
        now=now,
        channels=(SECURITY_CHANNEL,),
    )
    enqueue(
        session,
        to_staff=credential.staff_id,
        kind="credential.enrolled",
        subject=f"foureyes: {what} {credential.name!r} was added to your account",
        body=(
            f"{what} {credential.name!r} (key id {credential.key_id}) was added as your step-up "
            f"credential. It counts for approvals from {when}. If you did not add it, revoke it "
            "on the Security keys page now and tell security."
        ),
        link=KEYS_PAGE,
        now=now,
    )
    return counts_from


def needs_approval(services: Services, staff_id: str) -> bool:
    """Whether a new credential of this person can only come through approval (they have no
    credential that counts now to vouch for it)."""
    with services.database.transaction() as session:
        return not has_counting_credential(session, staff_id, services.clock())


def _label(credential: NewCredential) -> str:
    return "a security key" if credential.kind == WEBAUTHN else "a device key"


def _may_act(actor: Actor, now: datetime) -> None:
    problem = actor.staff.floor_problem(now.date())
    if problem is not None:
        raise Forbidden(problem)


def _flag_failed_proof(
    services: Services, actor: Actor, credential: NewCredential, exc: StepUpFailed
) -> None:
    """A proof that fails is what someone holding a session but no key would send: counted
    against them, and security hears of it (after the refusal rolled back; at most once an
    hour per person and credential: `step_up_failures`)."""
    step_up_failures.note(
        services,
        actor,
        exc,
        summary=(
            f"{actor.id} ({actor.identity}) tried to add a step-up credential with a "
            "proof that failed"
        ),
        details={"key_id": credential.key_id, "where": "enrolment"},
    )
