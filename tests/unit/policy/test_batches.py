"""Batches in the policy: the `batches:` section, `plan_batch` and `batch_satisfied`.

Every item is decided by the engine on its own; an item rides in a batch only when the batch
rule provably gives what its own rules need; the batch needs its batch rule AND every included
item's own factors, from the same reviews.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from foureyes.errors import BadInput, BatchRefused, PolicyError
from foureyes.model import Account, DecisionRequest, Outcome, RequestContext, Staff
from foureyes.policy.batches import (
    BatchPlan,
    ItemClass,
    batch_rule_for,
    batch_satisfied,
    plan_batch,
)
from foureyes.policy.compiler import Policy
from foureyes.policy.engine import decide
from foureyes.policy.schema import PolicyDocument, policy_json_schema
from tests.factories import (
    NOW,
    STANDARD_TIERS,
    TODAY,
    account,
    approve,
    deny,
    example_policy,
    policy_from,
    staff,
)

TOMAS = staff("e-3001", groups=("trust-safety",), manager="e-9001")
MEI = staff("e-3002", groups=("trust-safety",))
SAM = staff("e-3003", groups=("trust-safety",))
JO = staff("e-9001", groups=("trust-safety", "leads"))  # Tomas's manager
LEE = staff("c-3004", groups=("trust-safety",), employment="contractor")
INES = staff("e-4001", groups=("security",))
ANA = staff("e-2001", groups=("support",))
KIM = staff("c-1001", groups=("support",), employment="contractor", days_left=1)
RAVI = staff("e-5001", groups=("legal",))

PRESIDENT = account("president", followers=41_700_000, verified=True)


def ring(n: int, *, prefix: str = "bot") -> list[Account]:
    return [account(f"{prefix}{i}", followers=10 + i % 90) for i in range(n)]


def plan(
    policy: Policy, accounts: list[Account], *, who: Staff = TOMAS, action: str = "account.suspend"
) -> BatchPlan:
    return plan_batch(policy, who, action, accounts, {}, NOW, justification="CASE-1")


def classes(result: BatchPlan) -> dict[str, str]:
    return {item.account: item.classification.value for item in result.items}


# --- the policy language ------------------------------------------------------------------------

BATCH = """
batches:
  - id: b
    actions: [account.lock]
    tiers: [standard]
    max_items: 10
    approvals: 2
    approvers: '"trust-safety" in approver.groups'
"""
RULES = """
rules:
  - {id: support-locks, effect: allow, actions: [account.lock], when: '"support" in staff.groups'}
"""


def load_error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        policy_from(text)
    return caught.value


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ("    approvers: '\"trust-safety\" in approver.groups'\n", "batches[0]", "approvers"),
        ("    tiers: [standard]\n", "batches[0]", "tiers"),
        ("    approvals: 2\n", "batches[0]", "approvals"),
        ("    max_items: 10\n", "batches[0]", "max_items"),
    ],
)
def test_a_batch_rule_without_a_required_field_is_refused_naming_it(
    change: str, field: str, reason: str
) -> None:
    error = load_error(STANDARD_TIERS + RULES + BATCH.replace(change, ""))
    assert error.field is not None
    assert error.field.startswith(field), error.message
    assert reason in error.message
    assert "\n" not in error.message


@pytest.mark.parametrize(
    ("old", "new", "field", "reason"),
    [
        ("approvals: 2", "approvals: 0", "batches[0].approvals", "greater than or equal to 1"),
        ("max_items: 10", "max_items: 10001", "batches[0].max_items", "less than or equal"),
        ("tiers: [standard]", "tiers: []", "batches[0].tiers", "at least 1"),
        ("tiers: [standard]", "tiers: [gold]", "batches[0].tiers[0]", "unknown tier 'gold'"),
        ("id: b", "id: b\n    bogus: 1", "batches[0].bogus", "unknown field"),
        ("[account.lock]", "[account.nuke]", "batches[0].actions[0]", "unknown action"),
        ("[account.lock]", "[account.view]", "batches[0].actions", "never batched"),
        ("[account.lock]", "[account.read_dms]", "batches[0].actions", "never batched"),
        ("[account.lock]", "[account.login_as]", "batches[0].actions", "never batched"),
        ("[account.lock]", "[foureyes.policy.update]", "batches[0].actions", "foureyes' own"),
        ("[account.lock]", "['foureyes.*']", "batches[0].actions", "foureyes' own"),
        (
            "'\"trust-safety\" in approver.groups'",
            "'account.followers < 10'",
            "batches[0].approvers",
            "cannot read `account`",
        ),
        (
            "'\"trust-safety\" in approver.groups'",
            "'approver.grups == 1'",
            "batches[0].approvers",
            "does not compile",
        ),
        ("id: b", "id: b\n    when: 'account.verified'", "batches[0].when", "does not compile"),
        (
            "id: b",
            "id: b\n    justification: {pattern: '(['}",
            "batches[0].justification.pattern",
            "regular expression",
        ),
        ("id: b", "id: b\n    delay: soon", "batches[0].delay", "String should match"),
    ],
)
def test_a_bad_batch_rule_is_one_located_error(old: str, new: str, field: str, reason: str) -> None:
    text = STANDARD_TIERS + RULES + BATCH.replace(old, new, 1)
    error = load_error(text)
    assert error.file == "test-policy.yaml"
    assert error.line is not None
    assert error.field == field, error.message
    assert reason in error.message, error.message
    assert "\n" not in error.message


def test_an_action_has_at_most_one_batch_rule() -> None:
    second = (
        BATCH.replace("batches:\n", "")
        .replace("id: b", "id: lax")
        .replace("approvals: 2", "approvals: 1")
    )
    error = load_error(STANDARD_TIERS + RULES + BATCH + second)
    assert error.field == "batches[1].actions"
    assert "already batched by batch rule 'b'" in error.message


def test_batch_rule_ids_are_unique() -> None:
    second = BATCH.replace("batches:\n", "").replace("account.lock", "account.unlock")
    error = load_error(STANDARD_TIERS + RULES + BATCH + second)
    assert error.field == "batches[1]"
    assert "duplicate batch rule id 'b'" in error.message


def test_a_policy_without_batches_keeps_its_digest() -> None:
    # `batches` is left out of the serialisation when absent: every policy written before
    # batches existed keeps its version, and the log's record of it still matches.
    policy = policy_from(STANDARD_TIERS + RULES)
    assert "batches" not in policy.document.model_dump(mode="json")
    with_batches = policy_from(STANDARD_TIERS + RULES + BATCH)
    assert with_batches.digest != policy.digest
    assert policy.batches == ()


def test_the_schema_publishes_batches() -> None:
    schema = json.loads(policy_json_schema())
    rule = schema["$defs"]["BatchRuleSpec"]
    assert set(rule["required"]) >= {"id", "actions", "tiers", "max_items", "approvals"}
    assert "approvers" in rule["required"]
    assert "batches" in schema["properties"]
    assert PolicyDocument.model_fields["batches"].default is None


def test_the_example_batches_suspensions_and_locks_and_their_reversals() -> None:
    policy = example_policy()
    rule = batch_rule_for(policy, "account.suspend")
    assert rule is not None
    assert rule.actions == {
        "account.suspend",
        "account.lock",
        "account.unsuspend",
        "account.unlock",
    }
    assert rule.tiers == {"standard", "verified"}
    assert batch_rule_for(policy, "account.deactivate") is None


# --- planning -----------------------------------------------------------------------------------


def test_each_item_is_decided_as_a_single_request_would_be() -> None:
    policy = example_policy()
    accounts = [*ring(3), PRESIDENT, account("celeb", followers=5000, verified=True)]
    result = plan(policy, accounts)
    for item, given in zip(result.items, accounts, strict=True):
        alone = decide(
            policy,
            DecisionRequest(
                TOMAS,
                "account.suspend",
                given,
                RequestContext(now=NOW),
                {},
                "CASE-1",
            ),
        )
        assert item.decision == alone
        assert item.account == given.ref
    assert classes(result) == {
        "chirp:bot0": "included",
        "chirp:bot1": "included",
        "chirp:bot2": "included",
        "chirp:president": "split_out",
        "chirp:celeb": "included",
    }
    assert result.counts == {"included": 4, "split_out": 1, "denied": 0}


def test_a_very_important_account_is_split_out_however_it_is_very_important() -> None:
    policy = example_policy()
    by_followers = account("pm", followers=2_000_000)
    by_pin = account("small", followers=3, pins=frozenset({"protected"}))
    # Another spelling of an account resolves to the same record: what the engine sees is the
    # resolved account (its attributes, and the pins of its own ref), not the spelling given.
    by_handle = account("did:plc:abc", followers=50_000_000, handle="potus")
    result = plan(policy, [*ring(2), by_followers, by_pin, by_handle])
    split = {item.account: item for item in result.split_out}
    assert set(split) == {"chirp:pm", "chirp:small", "chirp:did:plc:abc"}
    for item in split.values():
        assert item.decision.tier == "vit"
        assert "carries only standard, verified accounts" in item.reasons[0]
    assert len(result.included) == 2


def test_denied_items_carry_the_engines_reasons() -> None:
    policy = example_policy()
    # Support may suspend standard accounts alone, verified ones not at all.
    result = plan(policy, [*ring(2), account("brand", verified=True)], who=ANA)
    denied = result.denied
    assert [item.account for item in denied] == ["chirp:brand"]
    assert denied[0].reasons == denied[0].decision.reasons
    assert "denied by default" in denied[0].reasons[0]


def test_a_departing_contractor_gets_every_item_denied() -> None:
    result = plan(example_policy(), ring(3), who=KIM)
    assert result.counts == {"included": 0, "split_out": 0, "denied": 3}
    assert all("departing-contractors-read-only" in item.reasons[0] for item in result.items)
    status = batch_satisfied(result, [approve(MEI), approve(SAM)])
    assert not status.satisfied  # nothing to approve
    # Batch attack F6: the reason says the items are denied now, and by which rule.
    (why,) = [r for r in status.reasons if "no item is included" in r]
    assert "now denies 3 item(s)" in why
    assert "departing-contractors-read-only" in why


def test_an_action_no_batch_rule_names_is_refused() -> None:
    with pytest.raises(BatchRefused) as caught:
        plan(example_policy(), ring(2), action="account.deactivate")
    assert "no batch rule names account.deactivate" in caught.value.message
    assert caught.value.status == 403


def test_a_requester_the_batch_rules_when_excludes_is_refused() -> None:
    with pytest.raises(BatchRefused) as caught:
        plan(example_policy(), ring(2), who=RAVI)
    assert "does not let e-5001 ask for a batch" in caught.value.message


def test_an_inactive_requester_is_refused() -> None:
    gone = replace(TOMAS, status="terminated")
    with pytest.raises(BatchRefused, match="terminated"):
        plan(example_policy(), ring(2), who=gone)


def test_a_when_that_errors_refuses_the_batch() -> None:
    policy = policy_from(
        STANDARD_TIERS
        + "attributes: {staff: {level: int}}\n"
        + RULES
        + BATCH.replace("id: b", "id: b\n    when: '100 / staff.level > 3'")
    )
    zero = replace(ANA, attributes={"level": 0})
    with pytest.raises(BatchRefused, match="condition failed"):
        plan(policy, ring(1), who=zero, action="account.lock")
    plan(policy, ring(1), who=replace(ANA, attributes={"level": 1}), action="account.lock")


def test_too_many_items_is_bad_input_naming_the_limit() -> None:
    policy = policy_from(STANDARD_TIERS + RULES + BATCH)
    with pytest.raises(BadInput) as caught:
        plan(policy, ring(11), who=ANA, action="account.lock")
    assert caught.value.details == {"max_items": 10, "count": 11}
    assert "at most 10 accounts" in caught.value.message
    plan(policy, ring(10), who=ANA, action="account.lock")  # the limit itself is fine


def test_an_empty_manifest_is_bad_input() -> None:
    with pytest.raises(BadInput, match="at least one account"):
        plan(example_policy(), [])


def test_one_account_given_twice_is_bad_input_even_as_two_values() -> None:
    first = account("bot1")
    again = account("bot1", followers=999)  # another lookup of the same account
    with pytest.raises(BadInput) as caught:
        plan(example_policy(), [first, account("bot2"), again])
    assert "chirp:bot1 at items 1, 3" in caught.value.message
    assert caught.value.details["duplicates"] == [["chirp:bot1", [0, 2]]]


def test_options_of_the_batch_are_the_strictest_of_rule_and_items() -> None:
    policy = policy_from(
        STANDARD_TIERS
        + """
rules:
  - id: lock-std
    effect: require
    actions: [account.lock]
    when: account.tier == "standard"
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
    step_up: true
    delay: 1h
    expires: 2h
    notify: [oncall]
  - id: lock-verified
    effect: allow
    actions: [account.lock]
    when: account.tier == "verified"
    justification: {pattern: '^INC-[0-9]+$'}
batches:
  - id: b
    actions: [account.lock]
    tiers: [standard, verified]
    max_items: 10
    approvals: 2
    approvers: '"trust-safety" in approver.groups'
    delay: 10m
    justification: {pattern: '^CASE-[0-9]+$'}
    notify: [security]
"""
    )
    result = plan(policy, [account("a"), account("b", verified=True)], action="account.lock")
    assert result.counts["included"] == 2
    options = result.requirement.options
    assert options.step_up
    assert options.delay.total_seconds() == 3600
    assert options.expires.total_seconds() == 7200
    assert options.justification_required
    assert set(options.justification_patterns) == {"^CASE-[0-9]+$", "^INC-[0-9]+$"}
    assert options.notify == ("oncall", "security")
    assert result.requirement.min_people == 3


# --- when is an item's own bar provably given by the batch ---------------------------------------

ITEM_RULE = """
rules:
  - id: lock-needs-two
    effect: require
    actions: [account.lock]
    when: "true"
    approvals: 2
    approvers: '"trust-safety" in approver.groups && approver.id != requester.manager'
"""


def batch_policy(approvals: int, approvers: str, *, rules: str = ITEM_RULE) -> Policy:
    return policy_from(
        STANDARD_TIERS
        + rules
        + f"""
batches:
  - id: b
    actions: [account.lock]
    tiers: [standard, verified, vit]
    max_items: 100
    approvals: {approvals}
    approvers: {json.dumps(approvers)}
"""
    )


@pytest.mark.parametrize(
    ("approvals", "approvers", "kind"),
    [
        # The item's own conjuncts, in another order, with more: provably implied.
        (2, 'approver.id != requester.manager && "trust-safety" in approver.groups', "included"),
        (
            3,
            '"trust-safety" in approver.groups && approver.employment == "employee" '
            "&& approver.id != requester.manager",
            "included",
        ),
        # Too few approvals for the item's own rule.
        (1, '"trust-safety" in approver.groups && approver.id != requester.manager', "split_out"),
        # The manager is not excluded by the batch: a manager could approve the batch.
        (2, '"trust-safety" in approver.groups', "split_out"),
        (5, "true", "split_out"),
        # `||` at the top: not a conjunction of the item's conditions.
        (
            2,
            '"trust-safety" in approver.groups && approver.id != requester.manager || true',
            "split_out",
        ),
        (
            2,
            '("trust-safety" in approver.groups || "support" in approver.groups) '
            "&& approver.id != requester.manager",
            "split_out",
        ),
        # A negation of the exclusion is a different condition.
        (2, '"trust-safety" in approver.groups && approver.id == requester.manager', "split_out"),
        # Same text with a value of another type: a different condition.
        (
            2,
            '"trust-safety" in approver.groups && approver.id != requester.manager && true',
            "included",
        ),
    ],
)
def test_an_item_rides_only_when_its_own_bar_is_provably_given(
    approvals: int, approvers: str, kind: str
) -> None:
    policy = batch_policy(approvals, approvers)
    result = plan(policy, [account("a")], action="account.lock")
    assert result.items[0].classification.value == kind, result.items[0].reasons
    if kind == "split_out":
        assert "batch rule b" in result.items[0].reasons[0]


def test_items_with_two_factors_need_the_sum_of_their_approvals() -> None:
    rules = """
rules:
  - {id: ts, effect: require, actions: [account.lock], approvals: 1,
     approvers: '"trust-safety" in approver.groups'}
  - {id: sec, effect: require, actions: [account.lock], approvals: 1,
     approvers: '"trust-safety" in approver.groups'}
"""
    two = plan(
        batch_policy(2, '"trust-safety" in approver.groups', rules=rules),
        [account("a")],
        action="account.lock",
    )
    one = plan(
        batch_policy(1, '"trust-safety" in approver.groups', rules=rules),
        [account("a")],
        action="account.lock",
    )
    assert two.items[0].classification is ItemClass.INCLUDED
    assert one.items[0].classification is ItemClass.SPLIT_OUT
    assert "need 2 approvals, more than the 1" in one.items[0].reasons[0]


def test_an_item_whose_rule_excludes_approvers_needs_the_exclusion_in_the_batch() -> None:
    rules = """
rules:
  - id: lock-two
    effect: require
    actions: [account.lock]
    approvals: 2
    approvers: '"trust-safety" in approver.groups'
    exclude: approver.id == requester.manager
"""
    without = batch_policy(2, '"trust-safety" in approver.groups', rules=rules)
    with_it = batch_policy(
        2, '"trust-safety" in approver.groups && !(approver.id == requester.manager)', rules=rules
    )
    assert plan(without, [account("a")], action="account.lock").split_out
    assert plan(with_it, [account("a")], action="account.lock").included


def test_a_condition_error_splits_the_item_out() -> None:
    policy = policy_from(
        STANDARD_TIERS
        + """
attributes: {account: {score: int}}
rules:
  - {id: lock, effect: allow, actions: [account.lock], when: '100 / account.score > 3'}
  - {id: lock2, effect: allow, actions: [account.lock], when: 'true'}
batches:
  - {id: b, actions: [account.lock], tiers: [standard], max_items: 5, approvals: 1,
     approvers: 'true'}
"""
    )
    result = plan(policy, [account("a", score=0)], action="account.lock")
    item = result.items[0]
    assert item.decision.outcome == Outcome.ALLOWED
    assert item.decision.errors
    assert item.classification is ItemClass.SPLIT_OUT


# --- approving a batch ----------------------------------------------------------------------------


def ring_plan() -> BatchPlan:
    return plan(example_policy(), [*ring(20), PRESIDENT])


def test_a_batch_needs_its_approvals_from_distinct_eligible_people() -> None:
    result = ring_plan()
    assert not batch_satisfied(result, []).satisfied
    one = batch_satisfied(result, [approve(MEI)], candidates=[MEI, SAM, JO, LEE, INES, TOMAS])
    assert not one.satisfied
    assert one.missing == 1
    assert one.batch.factors[0].candidates == ("e-3003", "e-9001")  # not Lee, Ines, Tomas
    assert batch_satisfied(result, [approve(MEI), approve(SAM)]).satisfied


@pytest.mark.parametrize(
    ("reviews", "why"),
    [
        ([approve(TOMAS), approve(MEI)], "requester"),
        ([approve(MEI), approve(MEI)], "one person twice"),
        ([approve(MEI), approve(LEE)], "a contractor"),
        ([approve(MEI), approve(INES)], "security is not trust-safety"),
        ([approve(MEI), approve(replace(SAM, status="suspended"))], "suspended"),
        ([approve(MEI), approve(replace(SAM, ends=TODAY.replace(year=TODAY.year - 1)))], "ended"),
        ([approve(MEI), approve(SAM), deny(JO)], "an eligible deny vetoes"),
        ([approve(MEI), approve(SAM), deny(SAM)], "approve then deny is a deny"),
        (
            [
                approve(MEI),
                approve(Staff("e-3003", groups=("trust-safety",), employment="contractor")),
            ],
            "the approver's current record is what counts",
        ),
    ],
)
def test_a_batch_is_not_satisfied_by(reviews: list[object], why: str) -> None:
    status = batch_satisfied(ring_plan(), reviews)  # type: ignore[arg-type]
    assert not status.satisfied, why


def test_a_deny_by_someone_not_eligible_does_not_veto() -> None:
    status = batch_satisfied(ring_plan(), [approve(MEI), approve(SAM), deny(INES)])
    assert status.satisfied
    assert ("e-4001", "not an eligible approver for batch rule abuse-ring-takedown") in (
        status.batch.ignored
    )


def test_an_included_items_own_factors_are_checked_with_the_same_reviews() -> None:
    # The item's rule needs 2 trust & safety approvers who are not the requester's manager;
    # the batch asks the same (and more): included. Reviews that satisfy the batch factor
    # satisfy the item; the item's own check is made too.
    policy = batch_policy(
        2, '"trust-safety" in approver.groups && approver.id != requester.manager'
    )
    result = plan(policy, [account("a"), account("b")], action="account.lock")
    assert len(result.included) == 2
    ok = batch_satisfied(result, [approve(MEI), approve(SAM)])
    assert ok.satisfied
    assert ok.items_unsatisfied == ()
    # Jo is Tomas's manager: not eligible for the batch, nor for any item.
    held = batch_satisfied(result, [approve(MEI), approve(JO)])
    assert not held.satisfied
    assert held.items_unsatisfied == ("chirp:a", "chirp:b")


def test_a_plan_of_ten_thousand_items_is_checked_whole() -> None:
    result = plan(example_policy(), ring(10_000))
    assert result.counts["included"] == 10_000
    assert batch_satisfied(result, [approve(MEI), approve(SAM)]).satisfied
    assert len(result.to_dict()["items"]) == 10_000
