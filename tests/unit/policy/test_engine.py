"""The decision semantics of DESIGN.md, one behaviour per test, on the example policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from foureyes.model import Outcome
from foureyes.policy.engine import decide, satisfied
from tests.factories import (
    STANDARD_TIERS,
    TODAY,
    account,
    approve,
    deny,
    example_policy,
    policy_from,
    request,
    staff,
)

POLICY = example_policy()
KIM = staff(
    "c-1001",
    groups=("support",),
    employment="contractor",
    days_left=30,
    manager="e-3001",
    identities=("kim", "kim.vendor"),
)
ANA = staff("e-2001", groups=("support",), manager="e-3001")
TOMAS = staff("e-3001", groups=("trust-safety",), manager="e-9001")
MEI = staff("e-3002", groups=("trust-safety",), manager="e-9001")
SAM = staff("e-3003", groups=("trust-safety",), manager="e-9001")
LEE = staff("c-3004", groups=("trust-safety",), employment="contractor", days_left=120)
INES = staff("e-4001", groups=("security",), manager="e-9001")
RAVI = staff("e-5001", groups=("legal",))
PRESIDENT = account("president", followers=41_700_000, verified=True)
ALICE = account("alice", followers=1200)


def test_the_2017_incident_is_held_for_three_approvals() -> None:
    decision = decide(POLICY, request(KIM, "account.deactivate", PRESIDENT))
    assert decision.outcome == Outcome.PENDING
    assert decision.tier == "vit"
    assert [(f.rule, f.approvals) for f in decision.factors] == [
        ("vit-significant-changes", 2),
        ("vit-security-sign-off", 1),
    ]
    assert decision.min_people == 4
    assert decision.options.step_up is True
    assert decision.options.delay == timedelta(minutes=10)
    assert decision.options.expires == timedelta(hours=4)
    assert decision.options.justification_required
    assert decision.options.justification_patterns == ("^(CASE|INC)-[0-9]+$",)
    assert decision.options.notify == ("security",)


def test_a_departing_contractor_is_refused_by_the_deny_rule() -> None:
    last_day = staff("c-1001", groups=("support",), employment="contractor", days_left=0)
    decision = decide(POLICY, request(last_day, "account.deactivate", PRESIDENT))
    assert decision.outcome == Outcome.DENIED
    assert "departing-contractors-read-only" in decision.matched_ids
    assert decision.reasons == ("denied by rule departing-contractors-read-only",)
    assert decision.min_people is None


def test_deny_wins_even_when_require_rules_also_match() -> None:
    last_day = staff("c-1", groups=("support",), employment="contractor", days_left=1)
    decision = decide(POLICY, request(last_day, "account.change_email", PRESIDENT))
    assert decision.outcome == Outcome.DENIED
    assert set(decision.matched_ids) >= {
        "departing-contractors-read-only",
        "vit-significant-changes",
    }


def test_default_deny_when_no_rule_matches() -> None:
    decision = decide(POLICY, request(ANA, "account.view_private", ALICE))
    assert decision.outcome == Outcome.DENIED
    assert decision.matched == ()
    assert decision.reasons[0].startswith("denied by default")


def test_only_allow_rules_allow_at_once() -> None:
    decision = decide(POLICY, request(ANA, "account.lock", ALICE))
    assert decision.outcome == Outcome.ALLOWED
    assert decision.matched_ids == ("support-standard-accounts",)
    assert decision.min_people == 1


@pytest.mark.parametrize(
    ("person", "problem"),
    [
        (staff("x", groups=("support",), status="terminated"), "is terminated"),
        (staff("x", groups=("support",), status="suspended"), "is suspended"),
        (staff("x", groups=("support",), days_left=-1), "ended on"),
        (staff("x", groups=("support",), starts=TODAY + timedelta(days=3)), "starts on"),
    ],
)
def test_the_floor_refuses_people_who_may_not_act(person: object, problem: str) -> None:
    decision = decide(POLICY, request(person, "account.lock", ALICE))  # type: ignore[arg-type]
    assert decision.outcome == Outcome.DENIED
    assert decision.matched == ()
    assert problem in decision.reasons[0]


def test_the_floor_refuses_unknown_actions_and_unresolved_accounts() -> None:
    assert "unknown action" in decide(POLICY, request(ANA, "account.nuke", ALICE)).reasons[0]
    assert "does not resolve" in decide(POLICY, request(ANA, "account.lock", None)).reasons[0]


def test_the_last_day_still_counts_as_inside_the_contract() -> None:
    last_day = staff("c-9", groups=("support",), employment="contractor", days_left=0)
    assert decide(POLICY, request(last_day, "account.lock", ALICE)).outcome == Outcome.ALLOWED


def test_pins_make_an_account_vit() -> None:
    pinned = account("bob", followers=87, pins=frozenset({"protected"}))
    decision = decide(POLICY, request(TOMAS, "account.deactivate", pinned))
    assert decision.tier == "vit"
    assert decision.outcome == Outcome.PENDING


def test_a_require_rule_combines_with_allow_rules_into_pending() -> None:
    decision = decide(POLICY, request(TOMAS, "account.delete", ALICE))
    assert decision.outcome == Outcome.PENDING
    assert decision.options.delay == timedelta(hours=24)


class TestSatisfied:
    def decision(self):  # type: ignore[no-untyped-def]
        return decide(POLICY, request(KIM, "account.deactivate", PRESIDENT))

    def test_two_trust_safety_and_one_security_satisfy(self) -> None:
        status = satisfied(
            self.decision(), [approve(MEI), approve(SAM), approve(INES)], today=TODAY
        )
        assert status.satisfied
        assert status.factors[0].approved_by == ("e-3002", "e-3003")
        assert status.factors[1].approved_by == ("e-4001",)

    def test_the_requesters_manager_is_not_eligible(self) -> None:
        status = satisfied(
            self.decision(), [approve(TOMAS), approve(SAM), approve(INES)], today=TODAY
        )
        assert not status.satisfied
        assert status.factors[0].missing == 1
        assert ("e-3001", "not an eligible approver for any factor") in status.ignored

    def test_contractors_are_not_eligible_for_the_employee_factor(self) -> None:
        status = satisfied(
            self.decision(), [approve(LEE), approve(SAM), approve(INES)], today=TODAY
        )
        assert not status.satisfied

    def test_the_requester_never_counts_even_through_another_identity(self) -> None:
        tomas_request = decide(POLICY, request(TOMAS, "account.delete", ALICE))
        status = satisfied(
            tomas_request, [approve(TOMAS, identity="tomas.alt"), approve(MEI)], today=TODAY
        )
        assert not status.satisfied
        assert ("e-3001", "the requester's own review never counts") in status.ignored

    def test_one_person_counts_for_one_factor_only(self) -> None:
        both = staff("e-7", groups=("trust-safety", "security"))
        status = satisfied(self.decision(), [approve(both), approve(MEI)], today=TODAY)
        assert not status.satisfied
        assert status.missing == 1

    def test_matching_finds_the_assignment_whatever_the_order(self) -> None:
        both = staff("e-7", groups=("trust-safety", "security"))
        reviews = [approve(both), approve(MEI), approve(SAM)]
        for order in (reviews, list(reversed(reviews))):
            status = satisfied(self.decision(), order, today=TODAY)
            assert status.satisfied
            assert status.factors[1].approved_by == ("e-7",)

    def test_a_deny_from_an_eligible_approver_vetoes(self) -> None:
        status = satisfied(
            self.decision(),
            [
                approve(MEI),
                approve(SAM),
                approve(INES),
                deny(staff("e-3009", groups=("trust-safety",))),
            ],
            today=TODAY,
        )
        assert status.vetoed_by == ("e-3009",)
        assert not status.satisfied

    def test_a_deny_from_an_ineligible_person_is_ignored(self) -> None:
        status = satisfied(
            self.decision(), [approve(MEI), approve(SAM), approve(INES), deny(ANA)], today=TODAY
        )
        assert status.satisfied

    def test_deny_veto_false_lets_a_deny_pass(self) -> None:
        text = (
            STANDARD_TIERS
            + """
rules:
  - id: r
    effect: require
    actions: [account.lock]
    approvals: 1
    approvers: '"support" in approver.groups'
    deny_veto: false
"""
        )
        decision = decide(policy_from(text), request(KIM, "account.lock", ALICE))
        status = satisfied(
            decision, [approve(ANA), deny(staff("e-8", groups=("support",)))], today=TODAY
        )
        assert status.satisfied
        assert ("e-8", "deny without veto (deny_veto: false)") in status.ignored

    def test_approvers_are_rechecked_as_given(self) -> None:
        gone = staff("e-3002", groups=("trust-safety",), status="terminated")
        status = satisfied(
            self.decision(), [approve(gone), approve(SAM), approve(INES)], today=TODAY
        )
        assert not status.satisfied
        assert ("e-3002", "staff e-3002 is terminated") in status.ignored

    def test_it_names_who_could_still_approve(self) -> None:
        status = satisfied(
            self.decision(),
            [approve(MEI)],
            candidates=[KIM, ANA, TOMAS, MEI, SAM, LEE, INES, RAVI],
            today=TODAY,
        )
        assert status.factors[0].missing == 1
        assert status.factors[0].candidates == ("e-3003",)
        assert status.factors[1].candidates == ("e-4001",)


class TestFailClosed:
    POLICY_TEXT = (
        STANDARD_TIERS
        + """
attributes:
  context: {risk: int}
rules:
  - id: deny-when-risky
    effect: deny
    actions: [account.lock]
    when: '100 / context.risk > 3'
  - id: allow-when-risky
    effect: allow
    actions: [account.unlock]
    when: '100 / context.risk > 3'
"""
    )

    def test_an_erroring_deny_condition_matches(self) -> None:
        decision = decide(
            policy_from(self.POLICY_TEXT), request(ANA, "account.lock", ALICE, risk=0)
        )
        assert decision.outcome == Outcome.DENIED
        assert decision.matched_ids == ("deny-when-risky",)
        assert decision.errors[0].where == "rule deny-when-risky"
        assert decision.errors[0].consequence == "treated as matching"

    def test_an_erroring_allow_condition_does_not_match(self) -> None:
        decision = decide(
            policy_from(self.POLICY_TEXT), request(ANA, "account.unlock", ALICE, risk=0)
        )
        assert decision.outcome == Outcome.DENIED
        assert decision.errors[0].consequence == "treated as not matching"


class TestBreakGlass:
    def test_allowed_break_glass_executes_at_once_with_a_post_review(self) -> None:
        decision = decide(POLICY, request(TOMAS, "account.suspend", PRESIDENT, break_glass=True))
        assert decision.outcome == Outcome.ALLOWED
        assert decision.break_glass
        assert decision.options.break_glass is not None
        assert decision.options.break_glass.reviewers == 2
        assert decision.options.break_glass.within == timedelta(hours=24)
        assert decision.min_people == 1

    def test_break_glass_by_someone_not_allowed_is_denied(self) -> None:
        decision = decide(POLICY, request(LEE, "account.suspend", PRESIDENT, break_glass=True))
        assert decision.outcome == Outcome.DENIED
        assert "break-glass refused" in decision.reasons[0]

    def test_break_glass_where_no_rule_offers_it_is_denied(self) -> None:
        decision = decide(POLICY, request(TOMAS, "account.deactivate", PRESIDENT, break_glass=True))
        assert decision.outcome == Outcome.DENIED


class TestSelfGoverningFloor:
    def test_an_allowed_policy_update_still_needs_another_person(self) -> None:
        text = (
            STANDARD_TIERS
            + """
rules:
  - id: leads-edit-policy
    effect: allow
    actions: [foureyes.policy.update]
    when: '"leads" in staff.groups'
"""
        )
        lead = staff("e-9001", groups=("trust-safety", "leads"))
        target = account("policy")
        decision = decide(policy_from(text), request(lead, "foureyes.policy.update", target))
        assert decision.outcome == Outcome.PENDING
        assert decision.factors[0].rule == "foureyes-floor"
        assert not satisfied(decision, [approve(lead)], today=TODAY).satisfied
        assert satisfied(decision, [approve(MEI)], today=TODAY).satisfied

    def test_policy_updates_are_denied_by_default(self) -> None:
        decision = decide(POLICY, request(TOMAS, "foureyes.policy.update", account("policy")))
        assert decision.outcome == Outcome.DENIED
