"""Submitting a request, and the dry run (`decisions`) that changes nothing."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jsonschema
from jsonschema.protocols import Validator
from sqlalchemy.exc import IntegrityError

from foureyes.connectors.base import ExecutionOrder
from foureyes.errors import BadInput, Forbidden, IdempotencyKeyReused
from foureyes.model import Account, DecisionRequest, Outcome, RequestContext, RequestState
from foureyes.notify import hooks as notify_hooks
from foureyes.policy.decision import Decision
from foureyes.policy.engine import decide
from foureyes.store.tables import RequestRow
from foureyes.workflow import idempotency, quota
from foureyes.workflow.records import params_digest, record, request_digest
from foureyes.workflow.services import Actor, Services, json_safe, with_pins

MAX_JUSTIFICATION = 500
_NO_TIME = timedelta(0)


@dataclass(frozen=True)
class Submission:
    """What a staff member asks for."""

    action: str
    account: str
    params: Mapping[str, Any] = field(default_factory=dict)
    justification: str | None = None
    break_glass: bool = False
    client: str | None = None
    reverts: str | None = None
    # The client's key for this submit: a retry with the same key asks for this request again
    # instead of a second one (see `submit_or_replay` and `foureyes.workflow.idempotency`).
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """What this asks for, as `idempotency.fingerprint` digests it."""
        return idempotency.fingerprint(
            action=self.action,
            account=self.account,
            params=self.params,
            justification=self.justification,
            break_glass=self.break_glass,
            reverts=self.reverts,
        )


@dataclass(frozen=True)
class Submitted:
    """A submit's answer: the request's id, and whether it is an earlier request that the
    submission's idempotency key named (`replayed`: nothing was recorded now)."""

    request_id: str
    replayed: bool = False


class Denied(Forbidden):
    """The policy denied the request. It is recorded (state `denied`); the error carries the
    request id and the decision so the caller sees why."""

    slug = "denied-by-policy"


# Validators by the id of their schema (each kept beside it, so a reused id is noticed). The
# schema is checked against its meta-schema once, when its validator is made: checking it on
# every call, as `jsonschema.validate` does, cost about 2 ms per request.
_validators: dict[int, tuple[Mapping[str, Any], Validator]] = {}
_MAX_VALIDATORS = 4096


def _params_validator(schema: Mapping[str, Any]) -> Validator:
    """The validator of an action's params schema (SchemaError if it is no JSON schema)."""
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    plain = dict(schema)
    kind = jsonschema.validators.validator_for(plain)
    kind.check_schema(plain)
    validator = kind(plain)
    if len(_validators) >= _MAX_VALIDATORS:  # catalogs are fixed; this only bounds a leak
        _validators.clear()
    _validators[id(schema)] = (schema, validator)
    return validator


def check_params(services: Services, submission: Submission) -> None:
    """Unknown platform or action, params failing the action's schema, or an order the
    platform says could never execute: BadInput (or NotFound), before anything is recorded."""
    try:
        platform, account_id = Account.split_ref(submission.account)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    connector = services.connector(platform)
    spec = connector.action(submission.action)
    validator = _params_validator(spec.params_schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(submission.params)))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "params"
        raise BadInput(f"params do not fit {submission.action}: {where}: {error.message}")
    connector.validate(
        ExecutionOrder(submission.action, account_id, dict(submission.params), idempotency_key="")
    )


def _check_justification(decision: Decision, justification: str | None) -> None:
    options = decision.options
    text = (justification or "").strip()
    if len(text) > MAX_JUSTIFICATION:
        raise BadInput(f"the justification is longer than {MAX_JUSTIFICATION} characters")
    if options.justification_required and not text:
        raise BadInput("this request needs a justification")
    for pattern in options.justification_patterns:
        if not re.fullmatch(pattern, text):
            raise BadInput(f"the justification must match {pattern} (e.g. a ticket id)")


def dry_run(
    services: Services, actor: Actor | Callable[[], Actor], submission: Submission
) -> Decision:
    """The decision a submission would get now, with its reasons. Changes nothing.

    `actor` may be the check that finds the caller (the API's token check): it runs first, in
    the read-only transaction that reads the pins and the policy (its own read joins it), so
    nothing else happens for a caller it refuses. A platform kept in foureyes' database (the
    demo) is read in that transaction too (one snapshot, one transaction per dry run); any
    other platform is looked up after it, outside our transactions (a slow platform must not
    hold a connection and a snapshot open)."""
    ref = submission.account
    account: Account | None = None
    with services.database.read() as session:
        caller = actor() if callable(actor) else actor
        check_params(services, submission)
        pins = services.pins(session, ref)
        _, policy = services.policy_in_force(session)
        now = services.clock()
        if services.stored_here(ref):
            account = services.resolve_account(ref)
    if account is None:
        account = services.resolve_account(ref)
    return decide(policy, decision_request(caller, submission, with_pins(account, pins), now))


def decision_request(
    actor: Actor, submission: Submission, account: Account, now: datetime
) -> DecisionRequest:
    return DecisionRequest(
        staff=actor.staff,
        action=submission.action,
        account=account,
        context=RequestContext(now=now, client=submission.client),
        params=submission.params,
        justification=submission.justification,
        break_glass=submission.break_glass,
    )


def submit(services: Services, actor: Actor, submission: Submission) -> str:
    """Record a request and its decision; return its id.

    Bad input (unknown action or account, params failing the schema, a missing or malformed
    justification) raises and records nothing. A request the policy denies is recorded as
    `denied` and then raises `Denied`. Allowed requests are `approved` (or `scheduled` when a
    rule sets a delay) and left for `execute`; break-glass ones are approved at once too.
    With an idempotency key, as `submit_or_replay` (a replay returns the earlier id).
    """
    return submit_or_replay(services, actor, submission).request_id


def submit_or_replay(services: Services, actor: Actor, submission: Submission) -> Submitted:
    """`submit`, keeping the promise of the submission's idempotency key.

    Without a key, every call records a new request. With one (1 to 200 printable ASCII
    characters, else BadInput), scoped to the requester (the person, whichever identity):

    - the key unused: the request is recorded with it, as `submit` does;
    - the key used by an earlier request that asked for the same (`Submission.fingerprint`):
      nothing is recorded and nothing is decided or looked up again; the answer is the earlier
      one: `Submitted(id, replayed=True)`, or, if the policy denied that request at submit,
      `Denied` again with the same message, id and decision, marked `replayed`;
    - the key used for something else: `IdempotencyKeyReused`, nothing recorded.

    Two submits racing with one key: the unique index on (requester_id, idempotency_key)
    lets one insert; the other's transaction fails and it answers the winner's request as a
    replay (or `IdempotencyKeyReused` if they asked for different things).
    """
    key = submission.idempotency_key
    if key is None:
        return Submitted(_record(services, actor, submission, None))
    idempotency.check_key(key)
    asked = submission.fingerprint()
    # Looked up first, so that a replay neither asks the platform again nor takes the lock.
    with services.database.read() as session:
        earlier = idempotency.find(session, actor.id, key)
    if earlier is not None:
        return _replay(earlier, asked)
    try:
        return Submitted(_record(services, actor, submission, (key, asked)))
    except IntegrityError:
        # Another submit with this key committed between the look-up and our insert (on
        # PostgreSQL the insert waited for it; SQLite's write lock orders them the same way).
        with services.database.read() as session:
            earlier = idempotency.find(session, actor.id, key)
        if earlier is None:
            raise  # not the key's index: some other integrity error
        return _replay(earlier, asked)


def _replay(earlier: idempotency.Earlier, asked: str) -> Submitted:
    """The answer to a submit whose key made `earlier`, as it was answered the first time."""
    if earlier.fingerprint != asked:
        raise IdempotencyKeyReused(
            "this idempotency key was used for another request "
            f"({earlier.request_id}): a new request needs a new key",
            request_id=earlier.request_id,
        )
    if earlier.denied_by_policy:
        denied = Denied(
            "; ".join(str(reason) for reason in earlier.decision.get("reasons", ())),
            request_id=earlier.request_id,
            decision=dict(earlier.decision),
        )
        denied.replayed = True
        raise denied
    return Submitted(earlier.request_id, replayed=True)


def _record(
    services: Services,
    actor: Actor,
    submission: Submission,
    keyed: tuple[str, str] | None,
) -> str:
    """Decide and record the submission (as `submit` describes); `keyed` is its idempotency
    key and fingerprint, stored with it. The id, or Denied after recording a denial."""
    check_params(services, submission)
    account = services.resolve_account(submission.account)  # the platform, outside our lock
    with services.database.transaction() as session:
        now = services.clock()
        account = with_pins(account, services.pins(session, submission.account))
        version, policy = services.policy_in_force(session)
        decision = decide(policy, decision_request(actor, submission, account, now))
        usage: quota.QuotaCheck | None = None
        if decision.outcome != Outcome.DENIED:
            _check_justification(decision, submission.justification)
            # Quotas are part of the decision (workflow/quota.py): locked and counted here, in
            # this transaction; over quota is a denial naming the quota and when it resets.
            usage = quota.check(
                session,
                policy.quotas,
                staff_id=actor.id,
                action=submission.action,
                account_ref=submission.account,
                now=now,
            )
            if usage.exceeded is not None:
                decision = dataclasses.replace(
                    decision,
                    outcome=Outcome.DENIED,
                    reasons=(*decision.reasons, usage.exceeded.reason),
                )
                usage = None
        state = {
            Outcome.DENIED: RequestState.DENIED,
            Outcome.PENDING: RequestState.PENDING,
            Outcome.ALLOWED: RequestState.APPROVED,
        }[decision.outcome]
        not_before = None
        if (
            decision.outcome == Outcome.ALLOWED
            and decision.options.delay
            and not decision.break_glass
        ):
            state, not_before = RequestState.SCHEDULED, now + decision.options.delay
        # A delay stops the clock: what waits for its requester once the delay has run (a
        # read, a login_as) keeps the whole `expires` window (as in `review._approve`).
        expires_at = now + decision.options.expires + (not_before - now if not_before else _NO_TIME)
        glass = decision.options.break_glass
        row = RequestRow(
            id=str(uuid.uuid4()),
            state=state.value,
            requester_id=actor.id,
            requester_identity=actor.identity,
            action=submission.action,
            account_ref=submission.account,
            params=dict(submission.params),
            justification=submission.justification,
            digest=request_digest(
                action=submission.action,
                account=submission.account,
                params=submission.params,
                justification=submission.justification,
                policy_version=version,
            ),
            policy_version=version,
            decision=decision.to_dict(),
            account_snapshot=json_safe(dict(account.attributes)),
            break_glass=decision.break_glass,
            reverts_id=submission.reverts,
            not_before=not_before,
            expires_at=expires_at,
            post_review_due=now + glass.within if glass is not None else None,
            created_at=now,
            updated_at=now,
            finished_at=now if state.final else None,
            client=submission.client,
            idempotency_key=None if keyed is None else keyed[0],
            idempotency_digest=None if keyed is None else keyed[1],
        )
        session.add(row)
        session.flush()
        if usage is not None:
            usage.count(session, row.id, now)  # quota usage, in the request's own transaction
        record(
            services,
            session,
            kind="request.submitted",
            actor=actor.id,
            row=row,
            payload={
                "identity": actor.identity,
                "state": state.value,
                "params_sha256": params_digest(submission.params),
                "justification": submission.justification,
                "policy_version": version,
                "decision": decision.to_dict(),
                "client": submission.client,
                "reverts": submission.reverts,
            },
            now=now,
        )
        # Notifications: the reviewers it needs (and the policy's `notify` channels) hear of
        # it through the outbox, in this same transaction (delivered later by the worker).
        notify_hooks.request_submitted(session, row, decision, now)
        request_id = row.id
    if decision.outcome == Outcome.DENIED:
        raise Denied(
            "; ".join(decision.reasons),
            request_id=request_id,
            decision=decision.to_dict(),
        )
    return request_id
