"""Submitting a batch: one action over a manifest of accounts, under one justification.

The order is the contract:

1. the manifest, line by line (`batch_manifest.parse`): malformed lines, an unknown platform or
   action, an account the platform does not know, the same account twice (by a second
   spelling, or by another name the platform resolves to the same account: a handle and a
   DID), more than `MAX_ITEMS`: `ManifestRefused` with one error per line; nothing recorded.
2. the policy (`foureyes.policy.batches.plan_batch`, never a decision of ours): every item is
   decided on its own with its resolved account and pins; it is `included`, `denied` (left out,
   with reasons) or `split_out` (its own ordinary request, decided and approved on its own). No
   batch rule for the action, or one the requester does not meet: `BatchRefused`.
3. the justification against the batch's requirement, and the params against the action's
   schema and the platform's check (for every included item): BadInput, nothing recorded.
4. one pending request per account (`routing.guard_batch`): an included account with a
   covered request or batch item pending refuses the whole batch (Conflict), no batch
   recorded but the refusal (`batch.refused`, in its own transaction: who, which action, how
   many accounts, which lines conflicted; the detectors count it); then the quotas,
   counting one use per included item: over quota refuses the
   whole batch (`BatchOverQuota`), nothing recorded.
5. the batch, its items, their quota usage and its `batch.submitted` event, in one
   transaction. Then the split-out items are submitted as ordinary requests (each in its own
   transaction, as any request), and their ids kept on the batch with a `batch.split_out`
   event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from foureyes.core import logstate
from foureyes.core.events import params_digest
from foureyes.core.services import Actor, Services, json_safe, with_pins
from foureyes.errors import (
    BadInput,
    Conflict,
    ConnectorError,
    Forbidden,
    FoureyesError,
    NotFound,
)
from foureyes.model import Account, ActionSpec
from foureyes.policy.batches import BatchPlan, plan_batch
from foureyes.policy.compiler import Policy
from foureyes.store.tables import BatchItemRow, BatchRow
from foureyes.workflow import (
    account_search,
    batch_events,
    batch_manifest,
    batch_notify,
    batch_quota,
    batch_recheck,
    batch_undo_guard,
    decide,
    quota_log,
    routing,
    submit,
)
from foureyes.workflow.account_names import reported_names
from foureyes.workflow.batch_manifest import Line, ManifestRefused

PENDING = "pending"
EMPTY = "empty"  # nothing rode in it: every item was denied or split out


@dataclass(frozen=True)
class BatchSubmission:
    """What a staff member asks for: the manifest as a list (`accounts`) or as CSV text."""

    action: str
    accounts: Sequence[Any] | None = None
    csv: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    justification: str | None = None
    client: str | None = None
    # Set by `batch_undo`: the batch this one reverses, and per position the item it reverses.
    reverts: str | None = None
    reverts_items: tuple[str, ...] = ()
    # The client's idempotency key and the fingerprint it stands for, stored with the batch
    # (set by `batch_idempotency.submit_or_replay`, which answers retries).
    idempotency_key: str | None = None
    idempotency_digest: str | None = None


def submit_batch(services: Services, actor: Actor, given: BatchSubmission) -> str:
    """Record a batch (the module's order) and return its id. Raises ManifestRefused,
    BatchRefused, BadInput or BatchOverQuota with nothing recorded."""
    logstate.refuse(services)
    params_digest(given.params)  # BadInput for params JSON cannot hold
    # What the person typed, before any account is looked up (`decide.check_typed`): an action
    # no platform has is then refused line by line (`resolve`).
    spec = services.catalog().actions.get(given.action) or ActionSpec(given.action)
    decide.check_typed(spec, given.params, given.justification)
    lines, malformed = batch_manifest.parse(given.accounts, given.csv)
    accounts = resolve(services, given.action, lines, malformed, actor=actor)
    # The pins and the plan (a read per account) are made before the write transaction, so
    # that deciding 10,000 accounts holds no lock others need; the transaction then checks
    # that the policy it was decided under is still the one in force.
    with services.database.read() as session:
        version, policy = services.policy_in_force(session)
        pins = services.pins_many(session, [a.ref for a in accounts])
        pinned = [with_pins(a, pins[a.ref]) for a in accounts]
    plan = _plan(policy, actor, given, pinned, services.clock())
    _check_asked(services, given, plan)
    names = _names(services, accounts)
    try:
        batch_id = _record(services, actor, given, (version, policy), plan, names)
    except routing.BatchBusy as busy:
        _record_refusal(services, actor, given, lines, accounts, plan, busy)
        raise
    if plan.split_out:
        split_out(services, actor, given, batch_id, plan)
    return batch_id


REFUSED = "batch.refused"


def _record_refusal(
    services: Services,
    actor: Actor,
    given: BatchSubmission,
    lines: Sequence[Line],
    accounts: Sequence[Account],
    plan: BatchPlan,
    busy: routing.BatchBusy,
) -> None:
    """The `batch.refused` event of a batch refused because some of its accounts have
    something pending, in its own transaction (the batch's rolled back): who, which action, how
    many accounts and which manifest lines conflicted. Not the accounts nor what is pending on
    them (requests the caller may not see): the lines point the caller's own manifest at them.
    Without it, a refused manifest would be a traceless test of 10,000 accounts at a time."""
    line_of = {a.ref: line.line for line, a in zip(lines, accounts, strict=False)}
    conflicting = sorted(line_of[a] for a in busy.accounts if a in line_of)
    with services.database.transaction() as session:
        services.audit.append(
            session,
            kind=REFUSED,
            actor=actor.id,
            account_ref=None,
            request_id=None,
            payload={
                "identity": actor.identity,
                "action": given.action,
                "client": given.client,
                "reason": "one_pending_per_account",
                "accounts": len(plan.included),
                "conflicts": len(busy.accounts),
                "lines": conflicting,
            },
            at=services.clock(),
        )


def _record(
    services: Services,
    actor: Actor,
    given: BatchSubmission,
    decided: tuple[int, Policy],
    plan: BatchPlan,
    names: Mapping[str, list[str]],
) -> str:
    """Step 4 and 5, in one transaction: the batch's id. Quota usage rows the log does not
    vouch for are alerted after it (a batch over quota rolls it back: `quota_log.Witness`)."""
    version, policy = decided
    witness = quota_log.Witness(services, version, kept=[])
    try:
        batch_id = _record_in(services, actor, given, (version, policy), plan, names, witness)
    finally:
        quota_log.alert_kept(witness)
    return batch_id


def _record_in(
    services: Services,
    actor: Actor,
    given: BatchSubmission,
    decided: tuple[int, Policy],
    plan: BatchPlan,
    names: Mapping[str, list[str]],
    witness: quota_log.Witness,
) -> str:
    version, policy = decided
    with services.database.transaction() as session:
        now = services.clock()
        if services.policy_in_force(session)[0] != version:
            raise Conflict("the policy changed while the batch was being decided: send it again")
        if given.reverts is not None:
            # Racing undos of the same items wait here, on the original batch's lock; the
            # undo that won is named only to whoever may see it (attack F1).
            batch_undo_guard.check_recordable(
                session,
                given.reverts,
                given.reverts_items,
                batch_undo_guard.named_to(services, session, actor),
            )
        included = plan.included
        # One pending request per account (the policy's option): an included item is a
        # pending request on its account; one that has something pending refuses the batch.
        routing.guard_batch(
            services, session, policy, actor, given.action, [i.account for i in included]
        )
        usage = batch_quota.check(
            session, policy, actor.id, given.action, [i.account for i in included], now, witness
        )
        batch_id = str(uuid.uuid4())
        item_ids = [str(uuid.uuid4()) for _ in included]
        usage.count(session, item_ids, now)
        made = (batch_id, version, now)
        tiers = frozenset(policy.document.detectors.protected_touched.tiers)
        _insert(services, session, actor, given, made, plan, (item_ids, names), tiers)
    return batch_id


def resolve(
    services: Services,
    action: str,
    lines: Sequence[Line],
    malformed: Sequence[dict[str, Any]] = (),
    *,
    actor: Actor | None = None,
) -> list[Account]:
    """The accounts the lines name, as their platforms answer (step 1): ManifestRefused with
    every line that is not one known account, or that names one an earlier line named (and
    the `malformed` lines' errors), by line.

    A line naming no account says "unknown account", as a single request's 404 does, and
    nothing more; each such line counts as one look-up miss of `actor`'s
    (`account_search.count_lookup`, shared with the account search and `GET
    /v1/accounts/{ref}`): a manifest is not a way to try 10,000 names at once where one by
    one they would be throttled. Past the limit: TooManyAttempts (429), nothing recorded and
    no line answered."""
    errors: list[dict[str, Any]] = list(malformed)
    first_of_spelling: dict[str, int] = {}
    first_platform: tuple[str, int] | None = None
    checked: list[tuple[Line, str]] = []
    for line in lines:
        ref = line.entry.strip()
        key = batch_manifest.spelling_key(ref)
        again = first_of_spelling.get(key)
        if again is not None:
            errors.append(batch_manifest.error(line, f"duplicate of line {again}"))
            continue
        first_of_spelling[key] = line.line
        platform = ref.partition(":")[0]
        if first_platform is not None and platform != first_platform[0]:
            why = f"a batch acts on one platform (line {first_platform[1]}'s {first_platform[0]})"
            errors.append(batch_manifest.error(line, why))
            continue
        first_platform = first_platform or (platform, line.line)
        try:
            decide.check_target(services, action, ref)
        except FoureyesError as exc:
            errors.append(batch_manifest.error(line, exc.message))
            continue
        checked.append((line, ref))
    answers = batch_recheck.resolve_many(services, [ref for _, ref in checked])
    found: list[Account] = []
    first_of_ref: dict[str, int] = {}
    for line, ref in checked:
        answer = answers[ref]
        if isinstance(answer, NotFound):
            if actor is not None:
                account_search.count_lookup(services, actor)
            errors.append(batch_manifest.error(line, "unknown account"))
            continue
        if isinstance(answer, ConnectorError):
            errors.append(batch_manifest.error(line, f"the platform did not answer: {answer}"))
            continue
        if isinstance(answer, FoureyesError):
            errors.append(batch_manifest.error(line, answer.message))
            continue
        again = first_of_ref.get(answer.ref)
        if again is not None:
            # Another name of an account already listed (a handle and a DID; a platform that
            # ignores case): one account is one item, whichever name it was given by.
            errors.append(
                batch_manifest.error(line, f"duplicate of line {again} (both are {answer.ref})")
            )
            continue
        first_of_ref[answer.ref] = line.line
        found.append(answer)
    if errors:
        raise ManifestRefused(sorted(errors, key=lambda e: int(e["line"])))
    return found


def _plan(
    policy: Policy, actor: Actor, given: BatchSubmission, accounts: list[Account], now: datetime
) -> BatchPlan:
    return plan_batch(
        policy,
        actor.staff,
        given.action,
        accounts,
        given.params,
        now,
        justification=given.justification,
        client=given.client,
    )


def _names(services: Services, accounts: Sequence[Account]) -> dict[str, list[str]]:
    """The handle and display name each account's platform reported (the `batch_lookalike`
    detector compares them; a DID says nothing about whom it looks like)."""
    connectors = {a.platform: services.connector(a.platform) for a in accounts}
    return {a.ref: reported_names(connectors[a.platform], a.attributes) for a in accounts}


def _check_asked(services: Services, given: BatchSubmission, plan: BatchPlan) -> None:
    """Step 3: the justification against the batch's bar, the params for every included item
    (the schema, the platform's own check)."""
    decide.check_justification_options(plan.requirement.options, given.justification)
    for item in plan.included:
        decide.check_payload(services, given.action, item.account, given.params)


def _insert(
    services: Services,
    session: Session,
    actor: Actor,
    given: BatchSubmission,
    made: tuple[str, int, datetime],
    plan: BatchPlan,
    items: tuple[list[str], Mapping[str, list[str]]],
    watched_tiers: frozenset[str] = frozenset(),
) -> None:
    """The batch row, its items (bulk, with the names their platform reported) and its
    `batch.submitted` event, which names the included and denied accounts of a tier the
    `protected_touched` detector watches (`tiers`: the detectors do not decide accounts)."""
    batch_id, version, now = made
    item_ids, names = items
    included = plan.included
    rows: list[dict[str, Any]] = []
    for position, (item, item_id) in enumerate(zip(included, item_ids, strict=True)):
        reverts = given.reverts_items[item.index] if given.reverts_items else None
        digest = batch_manifest.item_digest(
            item_id=item_id,
            position=position,
            account=item.account,
            action=given.action,
            params=given.params,
            justification=given.justification,
            requester=actor.id,
            reverts=reverts,
        )
        rows.append(
            {
                "id": item_id,
                "batch_id": batch_id,
                "position": position,
                "account_ref": item.account,
                "digest": digest,
                "reverts_item_id": reverts,
                "state": PENDING,
                "attempt": 0,
                "names": names.get(item.account) or None,
            }
        )
    root = batch_manifest.root([r["digest"] for r in rows])
    options = plan.requirement.options
    row = BatchRow(
        id=batch_id,
        state=PENDING if rows else EMPTY,
        requester_id=actor.id,
        requester_identity=actor.identity,
        action=given.action,
        params=json_safe(dict(given.params)),
        justification=given.justification,
        digest=root,
        item_count=len(rows),
        policy_version=version,
        plan=_stored_plan(plan),
        reverts_id=given.reverts,
        client=given.client,
        created_at=now,
        updated_at=now,
        expires_at=now + options.expires,
        not_before=None,
        finished_at=None if rows else now,
        split_requests=[],
        executed_count=0,
        failed_count=0,
        idempotency_key=given.idempotency_key,
        idempotency_digest=given.idempotency_digest if given.idempotency_key else None,
    )
    session.add(row)
    session.flush()
    if rows:
        session.execute(insert(BatchItemRow), rows)
    batch_events.record(
        services,
        session,
        row,
        "batch.submitted",
        actor=actor.id,
        now=now,
        payload={
            "identity": actor.identity,
            "credential": actor.credential,
            "item_count": len(rows),
            # What `batch_ledger` compares the row's deadline with.
            "expires_at": row.expires_at,
            "justification": given.justification,
            "policy_version": version,
            "reverts": given.reverts,
            "tiers": [
                {"account": i.account, "tier": i.decision.tier}
                for i in (*plan.included, *plan.denied)
                if i.decision.tier in watched_tiers
            ],
            **row.plan,
        },
    )
    batch_notify.submitted(services, session, row, now)


def _stored_plan(plan: BatchPlan) -> dict[str, Any]:
    """What the batch keeps of its plan: the bar, the counts, and the denied and split-out
    accounts with their reasons (the included ones are its items)."""
    stored: dict[str, Any] = json_safe(
        {
            "requirement": plan.requirement.to_dict(),
            "counts": dict(plan.counts),
            "denied": [{"account": i.account, "reasons": list(i.reasons)} for i in plan.denied],
            "split_out": [
                {"account": i.account, "reasons": list(i.reasons)} for i in plan.split_out
            ],
        }
    )
    return stored


SPLIT_CONFLICT = (
    "not recorded: something not yet ended on the account is in the way (for example another "
    "request pending on it); ask again once it ends"
)


def _kept(refused: FoureyesError) -> str:
    """What the batch keeps (and its `batch.split_out` event says) of why a split-out item
    was not recorded: shown to whoever may see the batch, so it never names another person's
    request or batch (attack F1). The undo guards' refusals name none (`UndoRefused`); any
    other Conflict may (one named to the caller alone, `routing`): a fixed text instead."""
    if isinstance(refused, Conflict) and not isinstance(refused, batch_undo_guard.UndoRefused):
        return SPLIT_CONFLICT
    return refused.message


def split_out(
    services: Services, actor: Actor, given: BatchSubmission, batch_id: str, plan: BatchPlan
) -> list[str]:
    """Submit each split-out item as an ordinary request (decided and approved one by one);
    keep their ids on the batch with a `batch.split_out` event. A request the policy denies
    is recorded denied, as any; one refused outright (BadInput) is named with why."""
    made: list[dict[str, Any]] = []
    for item in plan.split_out:
        # An undo's item stays bound to the item it reverses (`batch_undo_guard`).
        reverts_item = given.reverts_items[item.index] if given.reverts_items else None
        try:
            request_id = submit.submit(
                services,
                actor,
                submit.Submission(
                    action=given.action,
                    account=item.account,
                    params=given.params,
                    justification=given.justification,
                    client=given.client,
                    reverts_item=reverts_item,
                ),
            )
            made.append({"account": item.account, "request_id": request_id})
        except submit.Denied as denied:
            made.append({"account": item.account, "request_id": denied.details.get("request_id")})
        except (BadInput, Forbidden, Conflict) as refused:
            # A Conflict: an undo of the same item recorded meanwhile (or its batch altered:
            # alerted as at the undo's own recording).
            if isinstance(refused, batch_undo_guard.OriginalAltered) and given.reverts:
                batch_undo_guard.alert(services, given.reverts, refused.message, "undo")
            made.append({"account": item.account, "request_id": None, "error": _kept(refused)})
    batch_events.keep_split_requests(services, batch_id, made, actor=actor.id)
    return [m["request_id"] for m in made if m.get("request_id")]
