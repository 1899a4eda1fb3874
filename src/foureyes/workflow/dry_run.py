"""The dry run for a caller with a local token (`fey_…`), as the API's hot path runs it.

The same decision as `submit.dry_run` (`decide.rule`), from the same inputs, checked in the
same order (the token, then the action, then the policy in force and the account, then the
rules, and only if they let the person ask the justification, the params and the quotas), but
read in one statement (`store.dry_run_reads`) and awaited on the event loop: no thread hop and,
on PostgreSQL, one round trip instead of seven. What is left of most dry runs (the token's
hash, the policy's evaluation, the params' schema) is CPU work of a fraction of a millisecond,
done on the loop; what may block goes to the thread pool: compiling a policy version this
process has not seen yet, looking the account up on a platform outside foureyes' database,
counting quotas, checking a proposed policy (foureyes' own platform), recording a denial.

Callers with an identity provider's token take `submit.dry_run` (their token check may fetch
the provider's keys).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from anyio.to_thread import run_sync

from foureyes.auth import dead_credentials
from foureyes.auth.tokens import actor_from_record, split_token
from foureyes.core.services import Services, with_pins
from foureyes.errors import DeadCredential, NotFound, RecordAltered, Unauthenticated, Unavailable
from foureyes.model import Outcome
from foureyes.policy.catalog import FOUREYES_PLATFORM
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision
from foureyes.store import seals
from foureyes.store.dry_run_reads import DryRunReader
from foureyes.workflow import decide, denials, quota
from foureyes.workflow.submit import Submission, attempt, decision_request, payload_check

T = TypeVar("T")


async def _in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function` on anyio's worker threads (the pool the web server's sync routes use), so a
    blocking read never stalls the event loop."""
    return await run_sync(functools.partial(function, *args, **kwargs))


async def dry_run_for_token(
    services: Services, reader: DryRunReader, token: str, submission: Submission
) -> Decision:
    """The decision `submission` would get now, for the holder of local token `token`.
    Unauthenticated (401) unless the token verifies and its person may act; then as
    `submit.dry_run` (`decide.rule`: the rules, the justification and payload, the quotas).
    Changes nothing; a denial leaves rate-limited evidence (`foureyes.workflow.denials`)."""
    token_id, secret = split_token(token)
    ref = submission.account
    platform, _, account_id = ref.partition(":")
    connector = services.connectors.get(platform)
    lookup = connector.local_lookup() if connector is not None else None
    reads = await reader.read_async(
        token_id, ref, account_id, None if lookup is None else lookup.query
    )
    now = services.clock()
    try:
        actor = actor_from_record(reads.record, reads.identities, secret, now, token_id=token_id)
        # The pins as the log last sealed them (a pin deleted behind foureyes' back would
        # take the account out of a protected tier).
        seals.check(
            seals.ref(seals.PINS_KIND, ref),
            seals.pins_digest(ref, reads.pins),
            reads.pins_seal,
            staff=None,
            what=f"the pins of {ref}",
        )
    except DeadCredential as exc:  # evidence, noted off the loop; the caller still gets a 401
        client = submission.client or ""  # the caller's address, as every other path notes it
        await _in_thread(dead_credentials.note, services, exc, where="api", client=client)
        raise
    except RecordAltered as exc:  # a row written outside foureyes: alerted off the loop
        await _in_thread(services.report_altered, exc)
        if exc.record.startswith(seals.ref(seals.PINS_KIND, "")):
            raise
        raise Unauthenticated(exc.message) from exc  # the token, or its person
    spec = decide.check_target(services, submission.action, ref)  # the ref's form, platform, action
    decide.check_typed(spec, submission.params, submission.justification)  # what was typed
    if reads.policy_version is None:
        raise Unavailable("no policy is loaded: run `foureyes init` first")
    if not services.rollback_checked(reads.policy_version):
        await _in_thread(_refuse_rollback, services, reads.policy_version)
    policy = services.compiled_policy(reads.policy_version)
    if policy is None:
        policy = await _in_thread(_compile, services, reads.policy_version)
    if lookup is None:
        account = await _in_thread(services.resolve_account, ref)
    elif reads.account is None:
        raise NotFound(f"no account {ref!r} on {platform}")
    else:
        account = lookup.account(reads.account)
    request = decision_request(actor, submission, with_pins(account, reads.pins), now)
    rule = functools.partial(
        decide.rule,
        policy,
        request,
        check_payload=functools.partial(payload_check, services, submission),
        count_quotas=decide.peek_quotas(services, policy, request),
        dry_run=True,
    )
    # The rules, the justification and a platform's own check of the params are CPU work of
    # a fraction of a millisecond: on the loop. What may block goes to the thread pool: the
    # quotas' count (a read of the store), and foureyes' own platform, whose check of a
    # proposed policy parses it and proves its invariants (only once the rules let the person
    # ask: `decide.rule`).
    if platform == FOUREYES_PLATFORM or quota.any_matches(policy.quotas, submission.action):
        ruling = await _in_thread(rule)
    else:
        ruling = rule()
    if ruling.refused is not None:
        raise ruling.refused
    decision = ruling.decision
    if decision.outcome == Outcome.DENIED:  # its evidence, as `submit.dry_run_answer` leaves it
        count = denials.dry_run_denied(services, actor.id, now)
        if count is not None:  # a write to the store (rate-limited): in the thread pool
            evidence = attempt(actor, submission)
            await _in_thread(denials.record_dry_run_denial, services, evidence, decision, count)
    return decision


def _refuse_rollback(services: Services, version: int) -> None:
    with services.database.read() as session:
        services.refuse_rollback(session, version)


def _compile(services: Services, version: int) -> Policy:
    """Policy `version`, read and compiled (then cached by `services`)."""
    with services.database.read() as session:
        return services.policy_version(session, version)
