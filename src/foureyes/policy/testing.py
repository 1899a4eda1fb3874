"""Run the unit tests a policy carries in its `tests:` section (`foureyes policy test`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from foureyes.errors import BadInput, BatchRefused, FoureyesError
from foureyes.model import DecisionRequest, parse_duration
from foureyes.policy.batches import BatchPlan, plan_batch
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision
from foureyes.policy.directory import Directory
from foureyes.policy.engine import decide
from foureyes.policy.schema import PolicyTestSpec
from foureyes.policy.subjects import account_from, context_from, staff_from

DEFAULT_TEST_PLATFORM = "chirp"
_NAMED = 5  # failing tests named in a refusal
_NAME = 80  # characters of a test's name quoted in a refusal


@dataclass(frozen=True)
class PolicyTestResult:
    name: str
    failures: tuple[str, ...]
    decision: Decision | None
    plan: BatchPlan | None = None  # a batch test's plan

    @property
    def passed(self) -> bool:
        return not self.failures


def run_policy_test(
    policy: Policy,
    test: PolicyTestSpec,
    *,
    directory: Directory | None = None,
    now: datetime | None = None,
    platform: str = DEFAULT_TEST_PLATFORM,
) -> PolicyTestResult:
    """Decide the test's request (or plan its batch) and compare with what it expects; never
    raises on its data."""
    moment = now or datetime.now(UTC)
    if test.batch is not None:
        return run_batch_test(policy, test, directory=directory, now=moment, platform=platform)
    assert test.account is not None  # PolicyTestSpec's validator
    assert test.expect is not None
    try:
        context = context_from(policy, test.context, moment)
        request = DecisionRequest(
            staff=staff_from(test.staff, context.now.date(), directory),
            action=test.action,
            account=account_from(policy, test.account, platform),
            context=context,
            params=test.params,
            justification=test.justification,
            break_glass=test.break_glass,
        )
    except (ValueError, TypeError) as exc:
        return PolicyTestResult(test.name, (f"cannot build the request: {exc}",), None)
    decision = decide(policy, request)
    expect = test.expect
    failures = []
    if decision.outcome != expect.outcome:
        failures.append(f"outcome: expected {expect.outcome.value}, got {decision.outcome.value}")
    if expect.rule is not None and expect.rule not in decision.matched_ids:
        matched = ", ".join(decision.matched_ids) or "none"
        failures.append(f"rule: expected {expect.rule} to match; matched: {matched}")
    if expect.min_people is not None and decision.min_people != expect.min_people:
        failures.append(f"min_people: expected {expect.min_people}, got {decision.min_people}")
    if expect.step_up is not None and decision.options.step_up != expect.step_up:
        failures.append(f"step_up: expected {expect.step_up}, got {decision.options.step_up}")
    if expect.delay is not None and decision.options.delay != parse_duration(expect.delay):
        failures.append(f"delay: expected {expect.delay}, got {decision.options.delay}")
    return PolicyTestResult(test.name, tuple(failures), decision)


def run_batch_test(
    policy: Policy,
    test: PolicyTestSpec,
    *,
    directory: Directory | None = None,
    now: datetime,
    platform: str = DEFAULT_TEST_PLATFORM,
) -> PolicyTestResult:
    """Plan the test's batch (`plan_batch`) and compare with what it expects."""
    batch = test.batch
    assert batch is not None
    expect = batch.expect
    try:
        context = context_from(policy, test.context, now)
        staff = staff_from(test.staff, context.now.date(), directory)
        accounts = [account_from(policy, account, platform) for account in batch.accounts]
    except (ValueError, TypeError) as exc:
        return PolicyTestResult(test.name, (f"cannot build the batch: {exc}",), None)
    try:
        plan = plan_batch(
            policy,
            staff,
            test.action,
            accounts,
            test.params,
            context.now,
            justification=test.justification,
        )
    except BatchRefused as exc:
        refused = () if expect.refused else (f"refused: expected a plan, got: {exc}",)
        return PolicyTestResult(test.name, refused, None)
    except FoureyesError as exc:
        return PolicyTestResult(test.name, (f"cannot plan the batch: {exc}",), None)
    failures: list[str] = []
    if expect.refused:
        failures.append("refused: expected the batch to be refused, it was planned")
    counts = plan.counts
    for kind, wanted in (
        ("included", expect.included),
        ("split_out", expect.split_out),
        ("denied", expect.denied),
    ):
        if wanted is not None and counts[kind] != wanted:
            failures.append(f"{kind}: expected {wanted}, got {counts[kind]}")
    if expect.split_out_ids is not None:
        got = sorted(item.decision.subject["account"]["id"] for item in plan.split_out)
        if got != sorted(expect.split_out_ids):
            failures.append(f"split_out_ids: expected {sorted(expect.split_out_ids)}, got {got}")
    requirement = plan.requirement
    if expect.min_people is not None and requirement.min_people != expect.min_people:
        failures.append(f"min_people: expected {expect.min_people}, got {requirement.min_people}")
    if expect.approvals is not None and requirement.approvals != expect.approvals:
        failures.append(f"approvals: expected {expect.approvals}, got {requirement.approvals}")
    return PolicyTestResult(test.name, tuple(failures), None, plan)


def run_policy_tests(
    policy: Policy, *, directory: Directory | None = None, now: datetime | None = None
) -> list[PolicyTestResult]:
    return [run_policy_test(policy, t, directory=directory, now=now) for t in policy.tests]


def refuse_failing_tests(
    policy: Policy, *, directory: Directory | None = None, now: datetime | None = None
) -> None:
    """BadInput naming the failing ones (and why) when any of `policy`'s own tests fails: a
    policy whose author's tests say it does not do what it claims is not accepted (attack F1:
    a look-alike letter made a deny rule match nobody, and its own test said so)."""
    results = run_policy_tests(policy, directory=directory, now=now)
    failed = [result for result in results if not result.passed]
    if not failed:
        return
    named = "; ".join(
        f"{_quoted(result.name)} ({', '.join(result.failures)})" for result in failed[:_NAMED]
    )
    more = f"; and {len(failed) - _NAMED} more" if len(failed) > _NAMED else ""
    raise BadInput(f"{len(failed)} of the policy's own {len(results)} tests fail: {named}{more}")


def _quoted(name: str) -> str:
    """A test's name, quoted (escaped as `repr` does) and cut short."""
    return repr(name if len(name) <= _NAME else name[: _NAME - 1] + "…")
