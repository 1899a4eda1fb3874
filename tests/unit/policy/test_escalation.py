"""Escalation widens who may approve, never how many, nor past the rule's exclusions: attempts
to make it lower the bar, at the engine (`satisfied`), the compiler and the prover."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from rich.console import Console

from foureyes.commands import textview
from foureyes.errors import PolicyError
from foureyes.model import Outcome, Review, ReviewDecision, Staff
from foureyes.policy.analysis import check_invariants
from foureyes.policy.approving import gains
from foureyes.policy.engine import decide, satisfied
from tests.factories import NOW, STANDARD_TIERS, TODAY, account, policy_from, request, staff

RULES = """
rules:
  - id: deactivate-needs-two
    effect: require
    actions: [account.deactivate]
    approvals: 2
    approvers: '"trust-safety" in approver.groups'
    exclude: 'approver.id == requester.manager || approver.employment == "contractor"'
    escalate:
      after: 30m
      to: |-
        "security" in approver.groups || "support" in approver.groups
        || "leads" in approver.groups
      remind_every: 15m
invariants:
  - id: three-people-deactivate
    actions: [account.deactivate]
    min_people: 3
"""
POLICY = policy_from(STANDARD_TIERS + RULES)

ANA = staff("e-2001", groups=("support",), manager="e-3001")  # the requester
TOMAS = staff("e-3001", groups=("trust-safety",), manager="e-9001")  # Ana's manager
MEI = staff("e-3002", groups=("trust-safety",), manager="e-9001")
LEE = staff("c-3004", groups=("trust-safety",), employment="contractor", days_left=120)
KIM = staff("c-1001", groups=("support",), employment="contractor", days_left=30)
INES = staff("e-4001", groups=("security",), manager="e-9001")
JO = staff("e-9001", groups=("trust-safety", "leads"), manager="e-0001")
RAVI = staff("e-5001", groups=("security", "support"), manager="e-9001")
EVERYONE = (ANA, TOMAS, MEI, LEE, KIM, INES, JO, RAVI)

BEFORE = NOW + timedelta(minutes=29)
AFTER = NOW + timedelta(minutes=30)


def _decision():  # type: ignore[no-untyped-def]
    decision = decide(POLICY, request(ANA, "account.deactivate", account("bob")))
    assert decision.outcome == Outcome.PENDING
    return decision


def _at(person: Staff, when=AFTER, verdict=ReviewDecision.APPROVE) -> Review:  # type: ignore[no-untyped-def]
    return Review(person, verdict, at=when)


def _status(*reviews: Review, now=AFTER):  # type: ignore[no-untyped-def]
    return satisfied(_decision(), reviews, today=TODAY, submitted=NOW, now=now)


def test_the_escalation_group_counts_only_once_the_time_has_come() -> None:
    early = _status(_at(INES, BEFORE), _at(MEI))
    assert not early.satisfied
    assert ("e-4001", "not an eligible approver for any factor") in early.ignored
    assert _status(_at(INES), _at(MEI)).satisfied


def test_the_review_time_decides_so_a_later_recheck_counts_the_same() -> None:
    # An escalation approval given too early stays uncounted when re-checked hours later
    # (at execution), and one given in time still counts then.
    later = AFTER + timedelta(hours=3)
    assert not _status(_at(INES, BEFORE), _at(MEI), now=later).satisfied
    assert _status(_at(INES, AFTER), _at(MEI), now=later).satisfied


@pytest.mark.parametrize("excluded", [TOMAS, LEE, KIM], ids=["manager", "contractor-ts", "kim"])
def test_escalation_never_lets_someone_the_rule_excludes_count(excluded: Staff) -> None:
    # Tomas (Ana's manager), Lee and Kim (contractors) match the escalation group or the
    # approvers, yet the rule's `exclude` binds both, before and after escalation.
    for when in (BEFORE, AFTER, AFTER + timedelta(days=1)):
        status = _status(_at(excluded, when), _at(MEI, when), now=when)
        assert not status.satisfied
        assert excluded.id in {who for who, _ in status.ignored}


def test_the_requester_never_counts_though_in_the_escalation_group() -> None:
    status = _status(_at(ANA), _at(MEI))  # Ana is in support, which the escalation names
    assert not status.satisfied
    assert ("e-2001", "the requester's own review never counts") in status.ignored


def test_escalation_never_lowers_the_count() -> None:
    # Any single person, at any time, leaves one approval missing.
    for person in EVERYONE:
        status = _status(_at(person, AFTER + timedelta(days=2)), now=AFTER + timedelta(days=2))
        assert not status.satisfied
        assert status.missing >= 1


def test_a_person_eligible_both_ways_counts_once() -> None:
    # Jo is trust-safety (approver) and a lead (escalation): two reviews by Jo are one person.
    status = _status(_at(JO), _at(JO))
    assert not status.satisfied
    assert status.missing == 1
    assert _status(_at(JO), _at(RAVI)).satisfied


def test_every_pair_that_satisfies_it_is_two_eligible_distinct_people() -> None:
    allowed = {MEI.id, JO.id, INES.id, RAVI.id}  # after escalation, exclusions applied
    for first, second in itertools.product(EVERYONE, repeat=2):
        status = _status(_at(first), _at(second))
        expected = first.id != second.id and {first.id, second.id} <= allowed
        assert status.satisfied == expected, (first.id, second.id)


def test_candidates_include_the_escalation_group_only_once_it_may_approve() -> None:
    decision = _decision()
    early = satisfied(decision, [], candidates=EVERYONE, today=TODAY, submitted=NOW, now=BEFORE)
    late = satisfied(decision, [], candidates=EVERYONE, today=TODAY, submitted=NOW, now=AFTER)
    assert early.factors[0].candidates == ("e-3002", "e-9001")
    assert late.factors[0].candidates == ("e-3002", "e-4001", "e-5001", "e-9001")


def test_an_exclude_that_errors_excludes() -> None:
    policy = policy_from(
        STANDARD_TIERS
        + """
rules:
  - id: r
    effect: require
    actions: [account.deactivate]
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
    exclude: 'approver.id == "e-3002" ? int(approver.id) > 0 : false'
"""
    )
    decision = decide(policy, request(ANA, "account.deactivate", account("bob")))
    status = satisfied(decision, [_at(MEI)], today=TODAY)
    assert not status.satisfied


@pytest.mark.parametrize(
    "approvers",
    [
        '"trust-safety" in approver.groups && approver.employment == "employee"',
        '"trust-safety" in approver.groups && approver.id != requester.manager',
        '"trust-safety" in approver.groups && approver.region == "us"',
    ],
)
def test_a_rule_that_escalates_keeps_its_exclusions_in_exclude(approvers: str) -> None:
    # An exclusion left in `approvers` would bind only the usual approvers: refused.
    text = RULES.replace(
        """approvers: '"trust-safety" in approver.groups'""", f"approvers: '{approvers}'"
    )
    with pytest.raises(PolicyError, match="exclude"):
        policy_from(STANDARD_TIERS + text)


def test_exclude_and_escalate_belong_to_require_rules() -> None:
    with pytest.raises(PolicyError):
        policy_from(
            STANDARD_TIERS
            + """
rules:
  - id: r
    effect: allow
    actions: [account.deactivate]
    exclude: 'true'
"""
        )


def test_the_prover_counts_escalation_and_finds_the_bar_where_it_was() -> None:
    assert check_invariants(POLICY) == []
    stricter = policy_from(STANDARD_TIERS + RULES.replace("min_people: 3", "min_people: 4"))
    assert [v.invariant for v in check_invariants(stricter)] == ["three-people-deactivate"]


def test_a_policy_without_the_new_keys_keeps_its_digest() -> None:
    plain = (
        STANDARD_TIERS
        + """
rules:
  - id: r
    effect: require
    actions: [account.deactivate]
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
"""
    )
    policy = policy_from(plain)
    dumped = policy.document.model_dump(mode="json")
    assert "exclude" not in dumped["rules"][0]
    assert "escalate" not in dumped["rules"][0]
    assert "one_pending_per_account" not in dumped
    assert "escalate" in POLICY.document.model_dump(mode="json")["rules"][0]


def test_explain_states_the_escalation_and_the_exclusions() -> None:
    out = Console(record=True, width=300)
    textview.decision(out, _decision())
    text = out.export_text()
    assert "factor deactivate-needs-two: never counts: approver.id == requester.manager" in text
    assert "after 0:30:00 also:" in text
    assert "(same count, same exclusions); reminders every 0:15:00" in text
    assert _decision().to_dict()["factors"][0]["escalate"] == {
        "after_seconds": 1800,
        "to": POLICY.rules[0].escalation.to.source,  # type: ignore[union-attr]
        "remind_every_seconds": 900,
    }


def test_an_import_into_the_escalation_group_is_reported_as_approving_power() -> None:
    # A staff import that puts someone in `security` hands them the escalation group's power:
    # the import review names it (and an excluded contractor moved there gains nothing).
    newcomer = staff("e-7001", groups=(), manager="e-9001")
    people = {p.id: p for p in (ANA, MEI, newcomer, KIM)}
    moved = {
        **people,
        "e-7001": staff("e-7001", groups=("security",), manager="e-9001"),
        "c-1001": staff("c-1001", groups=("security",), employment="contractor", days_left=30),
    }
    found = gains(POLICY, people, moved, TODAY)
    assert [g.rule for g in found["e-7001"]] == ["deactivate-needs-two"]
    assert "e-2001" in found["e-7001"][0].requesters
    assert "c-1001" not in found
