"""What a rule that escalates may say (routing attack run L2, L3): attempts to leave an
exclusion where the escalation group slips past it, to make `after` or reminders pointless, and
to escalate past another rule's exclusion unreported."""

from __future__ import annotations

from datetime import timedelta

import pytest

from foureyes.errors import PolicyError
from foureyes.policy.engine import decide
from foureyes.policy.escalation_rules import escalation_gaps, group_selection_problem
from foureyes.workflow.reminders import ESCALATED_ROUND, due_round
from tests.factories import NOW, STANDARD_TIERS, account, policy_from, request, staff

RULE = """
rules:
  - id: esc
    effect: require
    actions: [account.deactivate]
    approvals: 1
    approvers: 'APPROVERS'
    escalate:
      after: AFTER
      to: '"security" in approver.groups'
      remind_every: EVERY
"""


def _policy(approvers: str = '"trust-safety" in approver.groups', after="30m", every="15m"):  # type: ignore[no-untyped-def]
    text = RULE.replace("APPROVERS", approvers).replace("AFTER", after).replace("EVERY", every)
    return policy_from(STANDARD_TIERS + text)


@pytest.mark.parametrize(
    "approvers",
    [
        '"trust-safety" in approver.groups && !("contractors" in approver.groups)',
        '!("contractors" in approver.groups)',
        '"trust-safety" in approver.groups && approver.groups.all(g, g != "contractors")',
        '"trust-safety" in approver.groups && !approver.groups.exists(g, g == "contractors")',
        '"trust-safety" in approver.groups && size(approver.groups) < 5',
        '("trust-safety" in approver.groups) == true',
        '"contractors" in approver.groups ? false : "trust-safety" in approver.groups',
        '"trust-safety" in approver.groups || !("x" in approver.groups)',
        'approver.groups.exists(g, g == "trust-safety")',
        '"trust-safety" in approver.groups && true',
    ],
)
def test_an_escalating_rule_selects_by_positive_group_tests_only(approvers: str) -> None:
    # Each of these keeps someone out (or could) by something other than a group selection:
    # the escalation group would slip past it. Refused, naming `exclude`.
    with pytest.raises(PolicyError, match=r"positive group tests only.*exclude"):
        _policy(approvers)


@pytest.mark.parametrize(
    "approvers",
    [
        '"trust-safety" in approver.groups',
        '"trust-safety" in approver.groups || "leads" in approver.groups',
        '("trust-safety" in approver.groups && "oncall" in approver.groups)'
        ' || "leads" in approver.groups',
    ],
)
def test_positive_group_selections_compile(approvers: str) -> None:
    assert _policy(approvers).rules[0].escalation is not None
    assert group_selection_problem(approvers) is None


@pytest.mark.parametrize(
    ("after", "every"), [("1s", "15m"), ("59s", "15m"), ("30m", "1s"), ("30m", "30s")]
)
def test_after_and_reminders_have_a_floor_of_a_minute(after: str, every: str) -> None:
    with pytest.raises(PolicyError, match="at least 1m"):
        _policy(after=after, every=every)
    assert _policy(after="1m", every="1m").rules[0].escalation is not None


SIBLINGS = (
    STANDARD_TIERS
    + """
rules:
  - id: significant
    effect: require
    actions: [account.deactivate]
    approvals: 1
    approvers: '"trust-safety" in approver.groups && approver.id != requester.manager'
  - id: security
    effect: require
    actions: [account.deactivate]
    approvals: 1
    approvers: '"security" in approver.groups'
    EXCLUDE
    escalate:
      after: 30m
      to: '"trust-safety" in approver.groups'
"""
)


def test_an_escalation_past_another_rules_exclusion_is_reported() -> None:
    # The example policy's shape: the manager exclusion lives in a sibling rule; escalating
    # the security factor to trust-safety lets the requester's manager fill it.
    gaps = escalation_gaps(policy_from(SIBLINGS.replace("EXCLUDE", "")))
    assert [(g.rule, g.other) for g in gaps] == [("security", "significant")]
    assert "approver.id != requester.manager" in gaps[0].describe()
    assert "manager" in gaps[0].describe()


@pytest.mark.parametrize(
    "exclude",
    [
        "exclude: 'approver.id == requester.manager'",
        "exclude: 'approver.id==requester.manager || approver.employment == \"contractor\"'",
    ],
)
def test_an_escalation_that_repeats_the_exclusion_is_not_reported(exclude: str) -> None:
    assert escalation_gaps(policy_from(SIBLINGS.replace("EXCLUDE", exclude))) == []


def test_a_sibling_exclude_is_reported_too() -> None:
    text = SIBLINGS.replace(
        "approvers: '\"trust-safety\" in approver.groups && approver.id != requester.manager'",
        "approvers: '\"trust-safety\" in approver.groups'\n"
        "    exclude: 'approver.employment == \"contractor\"'",
    ).replace("EXCLUDE", "")
    gaps = escalation_gaps(policy_from(text))
    assert len(gaps) == 1
    assert 'approver.employment == "contractor"' in gaps[0].describe()


# --- reminder rounds: the escalation group's first message is the escalation notice ----------


def _decision(after: str, every: str):  # type: ignore[no-untyped-def]
    policy = _policy(after=after, every=every)
    return decide(
        policy, request(staff("e-2001", groups=("support",)), "account.deactivate", account("bob"))
    )


@pytest.mark.parametrize(
    ("after", "every"), [("30m", "15m"), ("30m", "10m"), ("60m", "7m"), ("30m", "45m")]
)
def test_the_escalation_notice_comes_before_any_later_reminder(after: str, every: str) -> None:
    decision = _decision(after, every)
    sent: set[int] = set()
    first_notice = None
    minute = 0
    while minute <= 200:
        found = due_round(decision, NOW, NOW + timedelta(minutes=minute), sent)
        if found is not None and found not in sent:  # the worker sends each round once
            sent.add(found)
            if found == ESCALATED_ROUND:
                first_notice = minute
            else:
                # A reminder after the escalation's time only once the notice went out.
                period = int(every[:-1])
                if found * period >= int(after[:-1]):
                    assert ESCALATED_ROUND in sent
            continue  # the worker's next pass, same minute
        minute += 1
    assert first_notice == int(after[:-1])
    assert sent.issuperset({ESCALATED_ROUND})
