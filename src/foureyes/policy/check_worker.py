"""The child side of `foureyes.policy.sandbox`: compile and analyse one proposed policy.

Run as `python -m foureyes.policy.check_worker CPU_SECONDS MEMORY_BYTES` by the sandbox, never
by hand. It first caps its own CPU time (RLIMIT_CPU: SIGXCPU at the budget, SIGKILL a second
later) and address space (RLIMIT_AS), and forbids core dumps, before it reads anything; then
reads one JSON request from stdin (the proposed policy text, the policy in force, the staff
directory, the catalog and the server's notification channel names, all as data), compiles
the proposed text as a new one (its wording, `foureyes.policy.wording`), proves the
invariants, then runs its own tests (a failing one is an error naming it), and writes one
JSON verdict to stdout (with the account names the text compares `account.id`/`account.ref`
with, which the parent, holding the connectors, looks up: `foureyes.policy.literals`):

    {"ok": true}
    {"ok": true, "accounts": [{"value": "president", "path": "account.id", "where": "..."}]}
    {"ok": false, "violations": ["invariant ... violated: ...", ...]}
    {"ok": false, "error": {"reason": "...", "file": "...", "line": 3, "field": "..."}}
    {"ok": false, "budget": true}          (it ran out of memory or recursion depth)

It has no database, no settings and no credentials: only what is on stdin.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

MAX_VIOLATIONS = 20
# The most account names a proposed policy may compare with (each is looked up at submission).
MAX_ACCOUNTS = 200


def _limit(cpu_seconds: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _check(request: dict[str, Any]) -> dict[str, Any]:
    # Imported after the limits are set: the imports are ours, the input is not, but the
    # budget is simplest to reason about when it covers everything the child does.
    from foureyes.errors import FoureyesError, PolicyError  # noqa: PLC0415
    from foureyes.policy.analysis import check_invariants, check_update  # noqa: PLC0415
    from foureyes.policy.compiler import parse_new_policy, parse_policy  # noqa: PLC0415
    from foureyes.policy.directory import Directory  # noqa: PLC0415
    from foureyes.policy.literals import account_literals, check_staff_literals  # noqa: PLC0415
    from foureyes.policy.notify_channels import check_notify_channels  # noqa: PLC0415
    from foureyes.policy.sandbox import catalog_from_data, staff_from_data  # noqa: PLC0415
    from foureyes.policy.testing import refuse_failing_tests  # noqa: PLC0415
    from foureyes.policy.tier_reach import refuse_unreached_tiers  # noqa: PLC0415

    try:
        catalog = catalog_from_data(request["catalog"])
        people = [staff_from_data(item) for item in request["staff"]]
        directory = Directory(staff={person.id: person for person in people})
        # A new text: held to the wording rule; the text in force is compiled as it is.
        proposed = parse_new_policy(request["proposed"], catalog, file="proposed policy")
        # Its literals name someone: a staff id in the directory, no look-alike of one.
        check_staff_literals(proposed, directory)
        refuse_unreached_tiers(proposed)  # a tier no account reaches: a rule on it is void
        # Its `notify:` names are the server's channels: another is dropped silently.
        check_notify_channels(proposed, request.get("channels"))
        accounts = [
            {"value": item.value, "path": ".".join(item.path), "where": item.where(proposed)}
            for item in account_literals(proposed)
        ]
        if len(accounts) > MAX_ACCOUNTS:
            return {
                "ok": False,
                "error": {
                    "reason": f"the proposed policy compares more than {MAX_ACCOUNTS} account "
                    "names: each must be looked up on its platform; name fewer (pin them)"
                },
            }
        in_force = request["in_force"]
        if in_force is None:
            violations = check_invariants(proposed, directory)
        else:
            current = parse_policy(in_force["text"], catalog, file=f"policy v{in_force['version']}")
            violations = check_update(proposed, current, directory)
        if not violations:
            # Then its own tests (after the invariants, whose violation is the graver news; a
            # test naming a staff id reads the directory in force).
            refuse_failing_tests(proposed, directory=directory)
    except PolicyError as exc:
        return {
            "ok": False,
            "error": {"reason": exc.reason, "file": exc.file, "line": exc.line, "field": exc.field},
        }
    except FoureyesError as exc:
        return {"ok": False, "error": {"reason": exc.message}}
    if violations:
        return {
            "ok": False,
            "violations": [violation.describe() for violation in violations[:MAX_VIOLATIONS]],
        }
    return {"ok": True, "accounts": accounts} if accounts else {"ok": True}


def main(argv: list[str]) -> int:
    cpu_seconds, memory_bytes = int(argv[0]), int(argv[1])
    _limit(cpu_seconds, memory_bytes)
    try:
        request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
        verdict = _check(request)
    except (MemoryError, RecursionError):
        verdict = {"ok": False, "budget": True}
    sys.stdout.buffer.write(json.dumps(verdict).encode("utf-8"))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
