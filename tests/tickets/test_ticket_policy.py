"""The policy key `justification: {ticket: <system>}`: what it makes a decision require, and
that no batch carries a ticket unchecked (a ticket names one account; a batch has many)."""

from __future__ import annotations

import pytest

from foureyes.errors import PolicyError
from foureyes.model import DecisionRequest, RequestContext
from foureyes.policy.batches import ItemClass, plan_batch
from foureyes.policy.engine import decide
from tests.factories import NOW, STANDARD_TIERS, account, policy_from, staff

TOMAS = staff("e-3001", groups=("trust-safety",), manager="e-9001")
RULES = """
rules:
  - id: lock-with-ticket
    effect: allow
    actions: [account.lock]
    when: '"trust-safety" in staff.groups'
    justification: {ticket: rt}
  - id: lock-with-case
    effect: allow
    actions: [account.lock]
    when: '"trust-safety" in staff.groups'
    justification: {pattern: '^.*$', ticket: desk}
"""
BATCH = """
batches:
  - id: b
    actions: [account.lock]
    tiers: [standard]
    max_items: 10
    approvals: 2
    approvers: '"trust-safety" in approver.groups'
"""


def test_a_ticket_rule_requires_a_justification_and_each_named_system() -> None:
    policy = policy_from(STANDARD_TIERS + RULES)
    request = DecisionRequest(TOMAS, "account.lock", account("bob"), RequestContext(now=NOW))
    options = decide(policy, request).options
    assert options.justification_required
    assert options.justification_tickets == ("desk", "rt")
    assert options.to_dict()["justification_tickets"] == ["desk", "rt"]


def test_a_decision_without_tickets_is_stored_as_before() -> None:
    policy = policy_from(STANDARD_TIERS + RULES.replace("ticket: rt", "required: true"))
    request = DecisionRequest(TOMAS, "account.lock", account("bob"), RequestContext(now=NOW))
    without = policy_from(
        STANDARD_TIERS + RULES.replace("ticket: rt", "required: true").replace(", ticket: desk", "")
    )
    assert "justification_tickets" in decide(policy, request).options.to_dict()
    assert "justification_tickets" not in decide(without, request).options.to_dict()


@pytest.mark.parametrize("system", ["'rt/x'", "''", "'a b'", "[rt]", "1"])
def test_a_ticket_system_name_is_a_plain_name(system: str) -> None:
    with pytest.raises(PolicyError):
        policy_from(STANDARD_TIERS + RULES.replace("ticket: rt", f"ticket: {system}"))


def test_a_batch_rule_cannot_require_a_ticket() -> None:
    text = STANDARD_TIERS + RULES + BATCH + "    justification: {ticket: rt}\n"
    with pytest.raises(PolicyError, match="a batch rule cannot require a ticket"):
        policy_from(text)


def test_an_item_whose_rules_require_a_ticket_is_split_out_of_a_batch() -> None:
    policy = policy_from(STANDARD_TIERS + RULES + BATCH)
    planned = plan_batch(
        policy, TOMAS, "account.lock", [account("bob"), account("eve")], {}, NOW, justification="x"
    )
    assert {item.classification for item in planned.items} == {ItemClass.SPLIT_OUT}
    assert all("require a ticket" in " ".join(item.reasons) for item in planned.items)
