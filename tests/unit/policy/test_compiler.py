"""Loading a policy: everything wrong with it is one PolicyError naming file, line and field."""

from __future__ import annotations

import json

import pytest

from foureyes.errors import PolicyError
from foureyes.policy.schema import policy_json_schema
from tests.factories import STANDARD_TIERS, example_policy, policy_from


def test_the_example_policy_loads() -> None:
    policy = example_policy()
    assert [tier.name for tier in policy.tiers] == ["vit", "verified", "standard"]
    assert len(policy.rules) == 13
    assert policy.rule("vit-significant-changes").actions == {
        "account.deactivate",
        "account.change_email",
        "account.reset_password",
    }
    assert len(policy.digest) == 64


def test_globs_expand_against_the_catalog() -> None:
    policy = policy_from(
        STANDARD_TIERS + "rules:\n  - {id: r, effect: allow, actions: ['account.*lock']}\n"
    )
    assert policy.rule("r").actions == {"account.lock", "account.unlock"}


def load_error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        policy_from(text)
    return caught.value


RULE = STANDARD_TIERS + "rules:\n  - id: r\n    effect: allow\n    actions: [account.lock]\n"


@pytest.mark.parametrize(
    ("text", "line", "field", "reason"),
    [
        ("version: 1\ntiers: [", 2, None, "malformed YAML"),
        (STANDARD_TIERS + "rules: []\nrules: []\n", 8, None, "duplicate key 'rules'"),
        (STANDARD_TIERS + "bogus: 1\n", 7, "bogus", "unknown field"),
        (RULE.replace("account.lock", "account.nuke"), 10, "rules[0].actions[0]", "unknown action"),
        (RULE + "    when: 'staff.grups == 1'\n", 11, "rules[0].when", "grups"),
        (
            RULE + "    when: '\"a\" in account.followers'\n",
            11,
            "rules[0].when",
            "does not compile",
        ),
        (RULE + "    when: 'staff.groups &&'\n", 11, "rules[0].when", "does not compile"),
        (RULE + "    when: 'account.followers'\n", 11, "rules[0].when", "does not compile"),
        (
            RULE + "    justification: {pattern: '(['}\n",
            11,
            "rules[0].justification.pattern",
            "regular expression does not compile",
        ),
        (RULE + "    delay: soon\n", 11, "rules[0].delay", "String should match pattern"),
        (RULE + "    approvals: 2\n", 8, "rules[0]", "belong to require rules"),
        (RULE.replace("effect: allow", "effect: maybe"), 9, "rules[0].effect", "Input should be"),
        (
            STANDARD_TIERS.replace('when: "true"', "when: account.verified"),
            6,
            "tiers[2].when",
            "catch-all",
        ),
        (
            STANDARD_TIERS
            + "invariants:\n  - {id: i, actions: [account.lock], tier: gold, min_people: 2}\n",
            8,
            "invariants[0].tier",
            "unknown tier",
        ),
        (
            STANDARD_TIERS + "invariants:\n  - {id: i, actions: [account.lock]}\n",
            8,
            "invariants[0]",
            "exactly one of",
        ),
        (STANDARD_TIERS + "attributes: {staff: {groups: string}}\n", 7, "attributes", "built in"),
        (
            STANDARD_TIERS + "attributes: {staff: {team: strng}}\n",
            7,
            "attributes.staff.team",
            "unknown type",
        ),
    ],
)
def test_bad_policies_are_one_located_error(
    text: str, line: int, field: str | None, reason: str
) -> None:
    error = load_error(text)
    assert error.file == "test-policy.yaml"
    assert error.line == line, error.message
    assert error.field == field
    assert reason in error.message
    assert "\n" not in error.message


def test_an_unknown_variable_is_refused() -> None:
    error = load_error(RULE + "    when: 'user.admin'\n")
    assert error.field == "rules[0].when"
    assert "user" in error.message


def test_approvers_see_only_their_own_variables() -> None:
    text = (
        STANDARD_TIERS
        + """rules:
  - id: r
    effect: require
    actions: [account.lock]
    approvals: 1
    approvers: 'staff.id != approver.id'
"""
    )
    error = load_error(text)
    assert error.field == "rules[0].approvers"


def test_duplicate_rule_ids_are_refused() -> None:
    error = load_error(RULE + "  - {id: r, effect: deny, actions: [account.lock]}\n")
    assert "duplicate rule id 'r'" in error.message


def test_the_json_schema_is_published() -> None:
    schema = json.loads(policy_json_schema())
    assert schema["title"] == "foureyes policy"
    assert {"tiers", "rules", "invariants", "tests", "quotas"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
