"""Submitting a request, and the dry run (`decisions`) that changes nothing. Both decide with
`foureyes.workflow.decide.rule`."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import JSON, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from foureyes.audit.log import Event
from foureyes.connectors.tickets import Ticket, TicketSystemUnavailable
from foureyes.core import logstate, redaction
from foureyes.core.commitments import DIGEST_VERSION, PARAMS, new_salt
from foureyes.core.events import params_digest, record, request_digest, salted_digest
from foureyes.core.services import Actor, Services, json_safe, with_pins
from foureyes.errors import BadInput, Forbidden, IdempotencyKeyReused, OutcomeUnknown, Unavailable
from foureyes.model import Account, DecisionRequest, Outcome, RequestContext, RequestState
from foureyes.notify import hooks as notify_hooks
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision
from foureyes.store.tables import RequestRow
from foureyes.workflow import (
    decide,
    denials,
    idempotency,
    quota,
    quota_log,
    routing,
    undo_once,
    views,
)
from foureyes.workflow import tickets as ticket_checks
from foureyes.workflow.execute import ExecutionOutcome, carry_out_at_once
from foureyes.workflow.integrity import ACCOUNT_SNAPSHOT
from foureyes.workflow.outcome import after as outcome_after
from foureyes.workflow.outcome import lost_commit

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
    # A batch undo's item split out as this request: the batch item it reverses (set by
    # `batch_submit.split_out`; held by the undo guards, `batch_undo_guard`).
    reverts_item: str | None = None
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
    # What was carried out in the submit's own transaction (`at_once`), if anything.
    carried_out: ExecutionOutcome | None = None
    # With `carried_out`: the request's view as `views.request_view` reads it just after the
    # COMMIT, built from what the transaction wrote (`views.recorded_view`), so the answer
    # reads nothing again; None when it was not built (read it).
    view: dict[str, Any] | None = None


class Denied(Forbidden):
    """The policy denied the request. It is recorded (state `denied`); the error carries the
    request id and the decision so the caller sees why."""

    slug = "denied-by-policy"


class _PayloadUnchecked(Exception):
    """The submit transaction's decision lets the person ask, but the first look's did not, so
    the payload was not checked (the policy in force changed in between): look again."""


def dry_run(
    services: Services, actor: Actor | Callable[[], Actor], submission: Submission
) -> Decision:
    """The decision a submission would get now, with its reasons (`decide.rule`: the rules,
    then the justification and the payload, then the quotas, counted but not used). Changes
    nothing; a denial leaves rate-limited evidence (`foureyes.workflow.denials`).

    `actor` may be the check that finds the caller (the API's token check): it runs first, in
    the read-only transaction that reads the pins and the policy (its own read joins it), so
    nothing else happens for a caller it refuses. A platform kept in foureyes' database (the
    demo) is read in that transaction too (one snapshot, one transaction per dry run); any
    other platform is looked up after it, outside our transactions (a slow platform must not
    hold a connection and a snapshot open), as the payload's check and the quotas' count are."""
    ref = submission.account
    account: Account | None = None
    with services.database.read() as session:
        caller = actor() if callable(actor) else actor
        spec = decide.check_target(services, submission.action, ref)
        decide.check_typed(spec, submission.params, submission.justification)
        pins, _, policy = services.pins_and_policy(session, ref)
        now = services.clock()
        if services.stored_here(ref):
            account = services.resolve_account(ref)
    if account is None:
        account = services.resolve_account(ref)
    request = decision_request(caller, submission, with_pins(account, pins), now)
    ruling = decide.rule(
        policy,
        request,
        check_payload=functools.partial(payload_check, services, submission),
        count_quotas=decide.peek_quotas(services, policy, request),
        dry_run=True,
    )
    return dry_run_answer(services, caller, submission, ruling)


def dry_run_answer(
    services: Services, actor: Actor, submission: Submission, ruling: decide.Ruling
) -> Decision:
    """A dry run's answer to `ruling`: its decision, or its refusal raised; a denial leaves its
    evidence first."""
    if ruling.refused is not None:
        raise ruling.refused
    denials.after_dry_run(services, attempt(actor, submission), ruling.decision)
    return ruling.decision


def payload_check(services: Services, submission: Submission) -> None:
    """`decide.check_payload` for `submission`."""
    decide.check_payload(services, submission.action, submission.account, submission.params)


def attempt(actor: Actor, submission: Submission) -> denials.Attempt:
    return denials.Attempt(actor, submission.action, submission.account, submission.client)


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

    Decided by `decide.rule`: an unknown action or account raises and records nothing. A
    request the policy (or a quota) denies is recorded as `denied` and then raises `Denied`,
    its params never looked at. For someone the policy lets ask, params failing the schema or
    the platform's check, or a missing or malformed justification, raise BadInput: no request
    is recorded, only the refusal's `request.refused` audit event. Allowed requests are
    `approved` (or `scheduled` when a rule sets a delay) and left for `execute`; break-glass
    ones are approved at once too.
    With an idempotency key, as `submit_or_replay` (a replay returns the earlier id).
    """
    return submit_or_replay(services, actor, submission).request_id


def submit_or_replay(
    services: Services,
    actor: Actor,
    submission: Submission,
    *,
    asked: str | None = None,
    at_once: bool = False,
) -> Submitted:
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

    `asked` replaces the submission's own fingerprint where the client asked in other words
    (an undo: `idempotency.undo_fingerprint`). A submit whose COMMIT's answer is lost raises
    OutcomeUnknown naming the request it may have recorded (`foureyes.workflow.outcome`).

    `at_once`: a request the policy allows at once on a platform kept in foureyes' database
    is carried out in the submit's transaction (`execute.carry_out_at_once`: one COMMIT for
    the request, its claim, the platform's change and the outcome) and `carried_out` says
    how it went; otherwise it is None and the request is left to `execute`.
    """
    logstate.refuse(services)  # nothing is asked for on a log rolled back or with a moved head
    key = submission.idempotency_key
    if key is None:
        return _record(services, actor, submission, None, at_once)
    idempotency.check_key(key)
    asked = submission.fingerprint() if asked is None else asked
    # Looked up first, so that a replay neither asks the platform again nor takes the lock.
    with services.database.read() as session:
        earlier = idempotency.find(session, actor.id, key)
    if earlier is not None:
        return replay(earlier, asked)
    try:
        return _record(services, actor, submission, (key, asked), at_once)
    except IntegrityError:
        # Another submit with this key committed between the look-up and our insert (on
        # PostgreSQL the insert waited for it; SQLite's write lock orders them the same way).
        with services.database.read() as session:
            earlier = idempotency.find(session, actor.id, key)
        if earlier is None:
            raise  # not the key's index: some other integrity error
        return replay(earlier, asked)


def replay(earlier: idempotency.Earlier, asked: str) -> Submitted:
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


def _under_platform_ref(submission: Submission, ref: str) -> Submission:
    """`submission` kept, locked and counted under the platform's own reference for its account
    (as a batch's items are): two spellings of one account are one account to
    one_pending_per_account, quotas and the views."""
    return submission if ref == submission.account else replace(submission, account=ref)


def _record(
    services: Services,
    actor: Actor,
    submission: Submission,
    keyed: tuple[str, str] | None,
    at_once: bool = False,
) -> Submitted:
    """Decide and record the submission (as `submit` describes); `keyed` is its idempotency
    key and fingerprint, stored with it; `at_once` as in `submit_or_replay`. The request (and
    what was carried out with it), or Denied after recording a denial.

    `decide.rule` decides, twice: a first look (in a read transaction) says whether the rules
    let this person ask at all and, only if they do, checks the justification and the payload
    outside our transactions (the platform's `validate` may call it, or parse and analyse a
    proposed policy); then the submit transaction decides again on what is in force then,
    counts the quotas under their locks and records the request. A refused justification or
    payload records no request but leaves a `request.refused` event."""
    spec = decide.check_target(services, submission.action, submission.account)
    params_digest(submission.params)  # BadInput for params JSON cannot hold, before anything
    decide.check_typed(spec, submission.params, submission.justification)
    looked: _Looked | None = None
    if services.stored_here(submission.account):
        # A platform kept in foureyes' database (the demo): the account and the first look's
        # inputs in one read transaction (one snapshot, one BEGIN).
        with services.database.read() as session:
            account = services.resolve_account(submission.account)
            submission = _under_platform_ref(submission, account.ref)
            looked = _look(services, session, submission.account)
    else:
        account = services.resolve_account(submission.account)  # the platform, outside our lock
        submission = _under_platform_ref(submission, account.ref)
    # The id is chosen before the submit transaction, so that a COMMIT whose answer is lost
    # can name the request it may have recorded.
    request_id = str(uuid.uuid4())
    for _ in range(_LOOKS):
        checked, tickets = _first_look(services, actor, submission, account, looked)
        looked = None  # a second look reads again
        try:
            return _decide_and_record(
                services,
                actor,
                submission,
                keyed,
                (request_id, account),
                (checked, at_once),
                tickets,
            )
        except _PayloadUnchecked:
            continue  # the policy in force changed between the two looks: look again
    raise Unavailable("the policy in force changed while this was submitted: submit it again")


_LOOKS = 3


_Looked = tuple[frozenset[str], int, Policy, datetime]


def _look(services: Services, session: Session, ref: str) -> _Looked:
    """What the first look decides on: the account's pins, the policy in force (its version
    and itself) and the time, read in `session`."""
    pins, version, policy = services.pins_and_policy(session, ref)
    return pins, version, policy, services.clock()


def _first_look(
    services: Services,
    actor: Actor,
    submission: Submission,
    account: Account,
    looked: _Looked | None = None,
) -> tuple[bool, tuple[Ticket, ...]]:
    """Whether the rules in force let `actor` ask (then the justification and the payload
    were checked: BadInput, with its evidence, when they do not fit), and the tickets the
    rules require, checked (`workflow.tickets`: refused or unavailable, with its evidence).
    `looked`: its inputs, read already (`_look`); else read here."""
    if looked is None:
        with services.database.read() as session:
            looked = _look(services, session, submission.account)
    pins, version, policy, now = looked
    ruling = decide.rule(
        policy,
        decision_request(actor, submission, with_pins(account, pins), now),
        check_payload=functools.partial(payload_check, services, submission),
        count_quotas=decide.no_quotas,
    )
    if ruling.refused is not None:
        denials.refused(
            services,
            attempt(actor, submission),
            reason=ruling.refused.message,
            outcome=ruling.decision.outcome,
            policy_version=version,
        )
        raise ruling.refused
    if ruling.decision.outcome == Outcome.DENIED:
        return False, ()
    try:
        tickets = ticket_checks.check(
            services,
            ticket_checks.required_by(ruling.decision),
            submission.justification,
            submission.account,
        )
    except (BadInput, TicketSystemUnavailable) as refused:
        denials.refused(
            services,
            attempt(actor, submission),
            reason=refused.message,
            outcome=ruling.decision.outcome,
            policy_version=version,
        )
        raise
    return True, tickets


def _decide_and_record(
    services: Services,
    actor: Actor,
    submission: Submission,
    keyed: tuple[str, str] | None,
    target: tuple[str, Account],
    how: tuple[bool, bool],
    tickets: tuple[Ticket, ...] = (),
) -> Submitted:
    """The submit transaction: decide (`decide.rule`, the quotas locked and counted) and
    record the request under the id `target` names, on its account. `how`: whether the
    payload was checked (if it was not and the rules in force now let the person ask,
    _PayloadUnchecked, nothing recorded), and whether to carry it out at once here
    (`submit_or_replay`'s `at_once`; never with tickets: they are asked again at execution).
    Its audit events are appended together at the end (`AuditLog.group`). The COMMIT of a
    request whose answer is lost is OutcomeUnknown naming it."""
    request_id, account = target
    refusing: list[BadInput] = []  # the unit's last run refused, not recorded, the request

    def unit(session: Session) -> _Recorded:
        # Re-runnable (`Database.together`): everything it answers is made afresh here.
        refused: BadInput | None = None
        carried_out: ExecutionOutcome | None = None
        row: RequestRow | None = None
        appended: list[Event] = []
        refusing.clear()
        now = services.clock()
        pins, version, policy = services.pins_and_policy(session, submission.account)
        pinned = with_pins(account, pins)

        def payload_checked() -> None:
            if not how[0]:
                raise _PayloadUnchecked

        def tickets_checked() -> None:
            # The policy in force now requires a ticket the first look did not check.
            if ruling.decision.outcome != Outcome.DENIED and not ticket_checks.covers(
                tickets, ruling.decision
            ):
                raise _PayloadUnchecked

        def count_quotas(outcome: Outcome) -> quota.QuotaCheck:
            # Quotas are part of the decision (workflow/quota.py): locked and counted
            # here, in this transaction; over quota is a denial naming the quota and when
            # it resets.
            return quota.check(
                session,
                policy.quotas,
                staff_id=actor.id,
                action=submission.action,
                account_ref=submission.account,
                outcome=outcome,
                now=now,
                witness=quota_log.Witness(services, version),
            )

        ruling = decide.rule(
            policy,
            decision_request(actor, submission, pinned, now),
            check_payload=payload_checked,
            count_quotas=count_quotas,
        )
        decision = ruling.decision
        if ruling.refused is not None:
            # A justification the policy in force now asks for (it changed since the
            # first look): refused as there, its evidence in this transaction.
            refused = ruling.refused
            refusing.append(refused)
            denials.record_refusal(
                services,
                session,
                attempt(actor, submission),
                reason=refused.message,
                outcome=decision.outcome,
                policy_version=version,
                now=now,
            )
        else:
            tickets_checked()
            # An undo: racing undos of the request (its row's lock) or of the batch item
            # (its batch's lock) wait here, and one of them is recorded (attack F3).
            undo_once.check_recordable(
                services, session, actor, submission.reverts, submission.reverts_item
            )
            # One pending request per account (the policy's option): the account's lock,
            # and in `refuse` mode a Conflict while another one is pending.
            routing.guard_one_pending(
                services,
                session,
                policy,
                actor,
                submission.action,
                submission.account,
                decision.outcome,
            )
            # An allowed request's events (submitted, and when carried out here its
            # claim and outcome) are appended together at the end: the head lock is
            # taken once, just before the COMMIT. (Not a pending one's: its routing
            # reads the queue's `request.submitted` events back.)
            allowed = decision.outcome == Outcome.ALLOWED
            grouped = services.audit.group(session) if allowed else _not_grouped()
            with grouped as appended:
                row = _insert(
                    services,
                    session,
                    actor,
                    submission,
                    keyed,
                    (request_id, version, pinned, now),
                    ruling,
                    tickets,
                )
                if how[1] and not tickets:  # carried out at once
                    # Its cards (the requester's, once carried out) read nothing again.
                    notify_hooks.recorded_here(session, row.id, actor.staff.name)
                    carried_out = carry_out_at_once(
                        services, session, row, actor, pinned, now, policy=policy, first=True
                    )
        return _Recorded(decision, refused, row, carried_out, appended)

    try:
        decision, refused, row, carried_out, appended = services.database.together(unit)
    except OutcomeUnknown as exc:
        if refusing:
            raise  # no request was being recorded, only the refusal's evidence
        raise lost_commit(request_id, f"request {request_id}") from exc
    if refused is not None:
        raise refused
    if decision.outcome == Outcome.DENIED:
        raise Denied(
            "; ".join(decision.reasons),
            request_id=request_id,
            decision=decision.to_dict(),
        )
    if carried_out is None or row is None:
        return Submitted(request_id)
    # Committed: a failure building the answer must name the request, never say nothing changed.
    with outcome_after(request_id, f"request {request_id} was recorded"):
        view = views.recorded_view(services, row, appended)
    return Submitted(request_id, carried_out=carried_out, view=view)


# The request's INSERT, built once; every column is given (`_write`).
_INSERT_REQUEST = insert(RequestRow)
_REQUEST_COLUMNS = tuple(column.key for column in RequestRow.__table__.columns)
# JSON columns: a None is left out of the INSERT (SQL NULL, as the ORM leaves an attribute
# never set: `result`, `undo_params`), never bound (JSON's `null`, which the immutability
# trigger would then take for a value set once).
_REQUEST_JSON = frozenset(
    column.key for column in RequestRow.__table__.columns if isinstance(column.type, JSON)
)


def _write(session: Session, row: RequestRow) -> None:
    """INSERT `row` (every column set) in the session's transaction, and make it the session's
    as though it had been loaded: later changes to it (its moves) are flushed as an UPDATE.
    The same row the ORM's own insert writes, for a fraction of a unit of work's cost; the
    requests table is not sealed (`core.sealing`), so no sealing hook is bypassed."""
    values = {key: getattr(row, key) for key in _REQUEST_COLUMNS}
    session.connection().execute(
        _INSERT_REQUEST,
        {k: v for k, v in values.items() if v is not None or k not in _REQUEST_JSON},
    )
    make_transient_to_detached(row)
    session.add(row)


class _Recorded(NamedTuple):
    """What the submit transaction decided and wrote (`_decide_and_record`)."""

    decision: Decision
    refused: BadInput | None
    row: RequestRow | None
    carried_out: ExecutionOutcome | None
    appended: list[Event]


@contextlib.contextmanager
def _not_grouped() -> Iterator[list[Event]]:
    """In place of `AuditLog.group` where events are appended one by one: no list to fill."""
    yield []


def _insert(
    services: Services,
    session: Session,
    actor: Actor,
    submission: Submission,
    keyed: tuple[str, str] | None,
    decided: tuple[str, int, Account, datetime],
    ruling: decide.Ruling,
    tickets: tuple[Ticket, ...] = (),
) -> RequestRow:
    """Record the request `ruling` decided (under `request_id`, by policy `version`, on
    `account`, at `now`), its quota usage, its audit event and its notifications, in the
    submit transaction."""
    request_id, version, account, now = decided
    decision = ruling.decision
    state = {
        Outcome.DENIED: RequestState.DENIED,
        Outcome.PENDING: RequestState.PENDING,
        Outcome.ALLOWED: RequestState.APPROVED,
    }[decision.outcome]
    not_before = None
    if decision.outcome == Outcome.ALLOWED and decision.options.delay and not decision.break_glass:
        state, not_before = RequestState.SCHEDULED, now + decision.options.delay
    # A delay stops the clock: what waits for its requester once the delay has run (a
    # read, a login_as) keeps the whole `expires` window (as in `review._approve`).
    expires_at = now + decision.options.expires + (not_before - now if not_before else _NO_TIME)
    glass = decision.options.break_glass
    # Secret like the private values its hashes hide: in the row only (docs/digests.md).
    salt = new_salt()
    row = RequestRow(
        id=request_id,
        state=state.value,
        requester_id=actor.id,
        requester_identity=actor.identity,
        action=submission.action,
        account_ref=submission.account,
        params=dict(submission.params),
        justification=submission.justification,
        digest=request_digest(
            salt=salt,
            action=submission.action,
            account=submission.account,
            params=submission.params,
            justification=submission.justification,
            policy_version=version,
            requester=actor.id,
            break_glass=decision.break_glass,
            reverts=submission.reverts,
        ),
        policy_version=version,
        decision=decision.to_dict(),
        account_snapshot=json_safe(dict(account.attributes)),
        break_glass=decision.break_glass,
        reverts_id=submission.reverts,
        reverts_item_id=submission.reverts_item,
        not_before=not_before,
        expires_at=expires_at,
        post_review_due=now + glass.within if glass is not None else None,
        created_at=now,
        updated_at=now,
        finished_at=now if state.final else None,
        client=submission.client,
        idempotency_key=None if keyed is None else keyed[0],
        idempotency_digest=None if keyed is None else keyed[1],
        salt=salt,
        result=None,
        reason=None,
        undo_params=None,
    )
    _write(session, row)
    if ruling.usage is not None:
        ruling.usage.count(session, row.id, now)  # quota usage, in the request's own transaction
    ticket_checks.record(session, row.id, ticket_checks.SUBMIT, tickets, now)
    record(
        services,
        session,
        kind="request.submitted",
        actor=actor.id,
        row=row,
        payload={
            "identity": actor.identity,
            # Which credential asked (`token:<id>`, `oidc:<login>`; never a secret).
            "credential": actor.credential,
            "state": state.value,
            # The digest and this commitment are salted (the salt is not logged): the log's
            # readers cannot test guesses of the params (`events.request_digest`).
            "digest_version": DIGEST_VERSION,
            "params_salted_sha256": salted_digest(salt, PARAMS, submission.params),
            # ... and to the account's attributes the re-decisions during review read.
            "account_snapshot_salted_sha256": salted_digest(
                salt, ACCOUNT_SNAPSHOT, row.account_snapshot
            ),
            "justification": submission.justification,
            "policy_version": version,
            "decision": decision.to_dict(),
            "client": submission.client,
            "reverts": submission.reverts,
            # What `integrity` compares the row's `reverts_item_id` with.
            **({"reverts_item": submission.reverts_item} if submission.reverts_item else {}),
            # The tickets the rules require, as their system answered (`workflow.tickets`).
            **({"tickets": ticket_checks.summaries(tickets)} if tickets else {}),
        },
        now=now,
    )
    # Notifications: the reviewers it needs (and the policy's `notify` channels) hear of
    # it through the outbox, in this same transaction (delivered later by the worker).
    notify_hooks.request_submitted(
        session, row, decision, now, params=redaction.notified_params(services, session, row)
    )
    if decision.outcome == Outcome.PENDING:
        # Nobody reachable who could approve it: flagged now, not found out when it expires.
        routing.flag_unreachable(services, session, row, decision, now)
    return row
