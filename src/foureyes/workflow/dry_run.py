"""The dry run for a caller with a local token (`fey_…`), as the API's hot path runs it.

The same decision as `submit.dry_run`, from the same inputs, checked in the same order (the
token, then the action and its params, then the policy in force and the account), but read in
one statement (`store.dry_run_reads`) and awaited on the event loop: no thread hop and, on
PostgreSQL, one round trip instead of seven. What is left of a dry run (the token's hash, the
params' schema, the policy's evaluation) is CPU work of a fraction of a millisecond, done on
the loop; the rare slow parts go to the thread pool: compiling a policy version this process
has not seen yet, and looking the account up on a platform outside foureyes' database.

Callers with an identity provider's token take `submit.dry_run` (their token check may fetch
the provider's keys).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from foureyes.errors import NotFound, Unavailable
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision
from foureyes.policy.engine import decide
from foureyes.store.dry_run_reads import DryRunReader
from foureyes.workflow.services import Services, with_pins
from foureyes.workflow.staff import actor_from_record, split_token
from foureyes.workflow.submit import Submission, check_params, decision_request


async def dry_run_for_token(
    services: Services, reader: DryRunReader, token: str, submission: Submission
) -> Decision:
    """The decision `submission` would get now, for the holder of local token `token`.
    Unauthenticated (401) unless the token verifies and its person may act; then as
    `submit.dry_run`. Changes nothing."""
    token_id, secret = split_token(token)
    ref = submission.account
    platform, _, account_id = ref.partition(":")
    connector = services.connectors.get(platform)
    lookup = connector.local_lookup() if connector is not None else None
    reads = await reader.read_async(
        token_id, ref, account_id, None if lookup is None else lookup.query
    )
    now = services.clock()
    actor = actor_from_record(reads.record, reads.identities, secret, now)
    check_params(services, submission)  # the account ref's form, the platform, the action
    if reads.policy_version is None:
        raise Unavailable("no policy is loaded: run `foureyes init` first")
    policy = services.compiled_policy(reads.policy_version)
    if policy is None:
        policy = await run_in_threadpool(_compile, services, reads.policy_version)
    if lookup is None:
        account = await run_in_threadpool(services.resolve_account, ref)
    elif reads.account is None:
        raise NotFound(f"no account {ref!r} on {platform}")
    else:
        account = lookup.account(reads.account)
    return decide(policy, decision_request(actor, submission, with_pins(account, reads.pins), now))


def _compile(services: Services, version: int) -> Policy:
    """Policy `version`, read and compiled (then cached by `services`)."""
    with services.database.read() as session:
        return services.policy_version(session, version)
