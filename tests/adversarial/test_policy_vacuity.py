"""Conditions that read as protections and decide nothing (attack pol7-F2, F4, F6, F8).

F2: `account.id == "president" && account.id != "president"` in a deny rule, `exclude:
'approver.id in ["c-1001"] && approver.id in ["c-3004"]'`, `approvers: '... &&
(approver.id != "c-3004" || approver.id != "c-1001")'` (reads "not the contractors", admits
them), literal-only parts (`!true`, `1 + 1 == 3`, `size("ab") == 3`) were installed. F6: such
an invariant `staff` condition was "proven ok". Attack pol8 (F1, F2, F4): the same with
the literal on the left, through a macro over literals (`["c-3004", "c-1001"].exists(c,
approver.id != c)`), a field beside a literal, and a list field joined to literals.
F4: `account.status == 'active" || account.tier == "vit'` is one literal read as three
comparisons. F8: `approver.id in
[requester.manager, "lee"]` skipped every literal check ("lee" is a login, not an id).

F5: a tier `press` after `verified` that takes every press account first was a valid
`account.tier` literal: a deny rule on it protected no account.

Each is refused in a new text (compiler: `policy check`, init, submission, execution), and at
submission by the server (422, nothing recorded), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.errors import PolicyError
from foureyes.policy.compiler import parse_new_policy, parse_policy
from foureyes.policy.literals import check_staff_literals
from tests.adversarial.test_policy_folding import counts, proposal
from tests.adversarial.test_policy_forms_domains import (
    CATALOG,
    DIRECTORY,
    JO,
    compiled,
    exclude_policy,
    refused,
    refused_at_submission,
    rule,
)
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES

runner = CliRunner()
NEVER = "can never be true"
ALWAYS = "is always true"
CONSTANT = "reads nothing of the request"

VACUOUS = {
    "equal and unequal": ('account.id == "president" && account.id != "president"', NEVER),
    "a closed domain": (
        'staff.employment == "contractor" && staff.employment != "contractor"',
        NEVER,
    ),
    "two lists": ('staff.id in ["c-1001"] && staff.id in ["c-3004"]', NEVER),
    "one and a list": ('staff.id == "c-1001" && staff.id in ["c-3004"]', NEVER),
    "negated": ('staff.employment == "contractor" && !(staff.employment == "contractor")', NEVER),
    "negated unequal": (
        'staff.employment == "contractor" && !(staff.employment != "employee")',
        NEVER,
    ),
    "held and lacked": ('"support" in staff.groups && !("support" in staff.groups)', NEVER),
    "unequal and in": ('account.id != "president" && account.id in ["president"]', NEVER),
    "apart in a chain": (
        'account.id == "president" && staff.id == "e-3001" && account.id == "chirp"',
        NEVER,
    ),
    "a numeric gap": ("staff.days_left <= 2 && staff.days_left > 2", NEVER),
    "followers": ("account.followers >= 1000000 && account.followers < 1000000", NEVER),
    "hidden in a tier-like or": (
        'account.followers >= 1000000 || (account.id == "newsdesk" && account.id != "newsdesk")',
        NEVER,
    ),
    "de morgan": (
        '"support" in staff.groups && (staff.id != "c-1001" || staff.id != "c-3004")',
        ALWAYS,
    ),
    "negated de morgan": ('!(staff.id != "c-1001" || staff.id != "c-3004")', ALWAYS),
    "equal or unequal": ('account.id == "president" || account.id != "president"', ALWAYS),
    "held or lacked": ('"support" in staff.groups || !("support" in staff.groups)', ALWAYS),
    "every hour": ("context.hour < 12 || context.hour >= 12", ALWAYS),
    "literal false": ('false || account.id == "x"', "holds the literal false"),
    "literal true": ('account.id == "president" && true', "holds the literal true"),
    "not true": ('account.id == "president" || !true', CONSTANT),
    "arithmetic": ('account.id == "president" || 1 + 1 == 3', CONSTANT),
    "ordering literals": ('account.id == "president" && 2 < 1', CONSTANT),
    "size of a literal": ('account.id == "president" && size("ab") == 3', CONSTANT),
    "function of literals": ('account.id == "president" && "x".startsWith("y")', CONSTANT),
    "constant ternary": ('account.id == "president" && (true ? false : true)', "chooses between"),
    "ternary of booleans": ('account.id == "president" ? false : false', "chooses between"),
    "macro over literals": ("[1, 2, 3].all(n, n > 0)", CONSTANT),
    # attack pol8: the literal on the left, macros over literals, a field beside a literal
    "literal on the left": ('"c-3004" == staff.id && "c-1001" == staff.id', NEVER),
    "left, unequal": ('("c-3004" != staff.id || "c-1001" != staff.id)', ALWAYS),
    "left, closed domain": (
        '"contractor" == staff.employment && "contractor" != staff.employment',
        NEVER,
    ),
    "exists over literals": ('["c-3004", "c-1001"].exists(c, staff.id != c)', ALWAYS),
    "exists inside a chain": (
        '"support" in staff.groups && ["c-3004", "c-1001"].exists(c, staff.id != c)',
        ALWAYS,
    ),
    "all over literals": ('["c-3004", "c-1001"].all(c, staff.id == c)', NEVER),
    "exists beside an or": (
        'staff.id != "e-3001" || ["c-3004"].exists(c, staff.id != c)',
        ALWAYS,
    ),
    "a field beside a literal": ('(staff.id != staff.manager || staff.id != "c-3004")', ALWAYS),
    # attack pol9-F2: what nests (an `&&` in an `||`, macros inside chains of the other kind)
    "all inside an or": (
        '"support" in staff.groups && (staff.id != "c-3004" || ["c-1001"].all(c, staff.id != c))',
        ALWAYS,
    ),
    "two alls in an or": (
        '["c-3004"].all(c, staff.id != c) || ["c-1001"].all(c, staff.id != c)',
        ALWAYS,
    ),
    "negated and of exists": (
        '!(["c-3004"].exists(c, staff.id == c) && ["c-1001"].exists(c, staff.id == c))',
        "can never be true",
    ),
    "two exists in an and": (
        '["c-3004"].exists(c, staff.id == c) && ["c-1001"].exists(c, staff.id == c)',
        NEVER,
    ),
    "exists beside an equal": (
        '["c-1001"].exists(s, staff.id == s) && staff.id == "c-3004"',
        NEVER,
    ),
    "an or inside an and": (
        'staff.id == "c-1001" && (staff.id == "c-3004" || staff.id == "e-3001")',
        NEVER,
    ),
    # attack pol9-F1, F3: a ternary or an index holding a field, exists_one
    "ternary with a field": (
        'account.id in (staff.employment == "contractor" ? ["President", "Chirp"] : ["President"])',
        "chooses between values",
    ),
    "index into a list with a field": (
        'staff.id == [staff.manager, "lee"][1]',
        "indexes a list literal",
    ),
    "exists_one": ('["c-3004", "c-1001", "c-3004"].exists_one(c, staff.id == c)', "exists_one"),
}


@pytest.mark.parametrize("name", VACUOUS)
def test_a_condition_that_decides_nothing_is_refused(name: str) -> None:
    when, reason = VACUOUS[name]
    message = refused(when)
    assert reason in message, message


@pytest.mark.parametrize(
    "exclude",
    [
        'approver.id in ["c-1001"] && approver.id in ["c-3004"]',
        '!(approver.id != "c-1001" || approver.id != "c-3004")',
        'approver.employment == "contractor" && approver.employment != "contractor"',
    ],
)
def test_an_exclude_that_excludes_nobody_is_refused(exclude: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(exclude_policy(exclude), CATALOG)
    assert caught.value.field is not None
    assert caught.value.field.endswith(".exclude")


def test_an_approvers_condition_that_admits_the_contractors_it_names_is_refused() -> None:
    text = (EXAMPLES / "policy.yaml").read_text()
    anchor = "approvers: '\"trust-safety\" in approver.groups'"
    assert anchor in text
    trap = (
        'approvers: \'"trust-safety" in approver.groups && '
        '(approver.id != "c-3004" || approver.id != "c-1001")\''
    )
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(text.replace(anchor, trap, 1), CATALOG)
    assert ALWAYS in caught.value.message


def test_an_invariant_whose_staff_matches_nobody_is_refused() -> None:
    text = (EXAMPLES / "policy.yaml").read_text()
    assert "\ninvariants:\n" in text
    added = (
        "\ninvariants:\n  - id: contractors-never-delete\n    actions: [account.delete]\n"
        '    staff: \'staff.employment == "contractor" && staff.employment != "contractor"\'\n'
        "    never: true\n"
    )
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(text.replace("\ninvariants:\n", added, 1), CATALOG)
    assert NEVER in caught.value.message


@pytest.mark.parametrize(
    "when",
    [
        'staff.employment == "contractor" && staff.days_left <= 2',
        'staff.id == "c-1001" || staff.id == "c-3004"',
        'staff.id != "c-1001" && staff.id != "c-3004"',
        "context.hour > 3 && context.hour < 5",
        "context.hour < 3 || context.hour > 20",
        'account.id == "president" || !account.verified',
        '"support" in staff.groups && !("leads" in staff.groups)',
        '["c-3004", "c-1001"].all(c, staff.id != c)',
        '["c-3004", "c-1001"].exists(c, staff.id == c)',
        'staff.id != staff.manager && staff.id != "c-3004"',
        '(staff.id == "c-1001" || staff.id == "c-3004") && account.id == "president"',
        "context.hour < 6 || context.hour >= 22",
        'staff.id == staff.manager || "leads" in staff.groups',
    ],
)
def test_conditions_that_depend_on_the_request_pass(when: str) -> None:
    compiled(when)


# --- F4: a quote inside a literal ---------------------------------------------------------------

QUOTED = {
    "single around double": (
        'staff.employment == "contractor" && account.status == \'active" || account.tier == "vit\''
    ),
    "vendor": (
        "staff.days_left <= 2 && staff.vendor == 'Outsourcing Co\" || "
        "staff.employment == \"contractor'"
    ),
    "escaped quote": 'staff.region == "eu\\" || staff.employment == \\"contractor"',
    "triple quoted": 'staff.region == """eu" || staff.employment == "contractor"""',
    "operator without quotes": "account.status == 'active || account.tier == vit'",
}


@pytest.mark.parametrize("name", QUOTED)
def test_a_literal_holding_a_quote_or_an_operator_is_refused(name: str) -> None:
    text = (EXAMPLES / "policy.yaml").read_text()
    anchor = "  - id: support-standard-accounts\n"
    assert anchor in text
    added = (
        "  - id: vit-never-deleted\n    effect: deny\n    actions: [account.delete]\n"
        f"    when: |\n      {QUOTED[name]}\n"
    )
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(text.replace(anchor, added + anchor, 1), CATALOG)
    message = caught.value.message
    assert "holds a quote" in message or "holds an operator" in message, message


# --- F8: a list mixing a field with literals ----------------------------------------------------


@pytest.mark.parametrize(
    ("exclude", "reason"),
    [
        ('approver.id in [requester.manager, "lee"]', "'lee'"),
        ('approver.id in [requester.manager] + ["lee"]', "'lee'"),
        ('approver.id in requester.identities + ["lee"]', "'lee'"),  # attack pol8-F4
        ('approver.id in ["lee"] + requester.identities', "'lee'"),
    ],
)
def test_a_literal_in_a_list_with_a_field_is_checked(exclude: str, reason: str) -> None:
    policy = parse_new_policy(exclude_policy(exclude), CATALOG)
    with pytest.raises(PolicyError) as caught:
        check_staff_literals(policy, DIRECTORY)
    assert reason in caught.value.message, caught.value.message


@pytest.mark.parametrize(
    ("exclude", "reason"),
    [
        ('approver.employment in [requester.employment, "Contractor"]', "'contractor'"),
        ('approver.id in [requester.manager, ["lee"][0]]', "indexes a list literal"),
    ],
)
def test_a_list_with_a_field_and_a_wrong_literal_is_refused(exclude: str, reason: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(exclude_policy(exclude), CATALOG)
    assert reason in caught.value.message, caught.value.message


def test_an_installed_text_with_such_conditions_keeps_compiling() -> None:
    for when, _ in VACUOUS.values():
        parse_policy(rule(when), CATALOG, file="policy v7")


@pytest.mark.parametrize(
    "when",
    [
        'account.id == "president" && account.id != "president"',
        '"support" in staff.groups && (staff.id != "c-1001" || staff.id != "c-3004")',
        'staff.region == "eu\\" || staff.employment == \\"contractor"',
        'account.id == "president" || !true',
    ],
)
def test_the_server_refuses_them_at_submission_recording_nothing(api: Api, when: str) -> None:
    detail = refused_at_submission(api, rule(when, "[account.suspend]"))
    assert "rule 'protect'" in detail, detail


# --- F5: a tier no account reaches --------------------------------------------------------------


def press_policy(when: str = "account.verified && account.followers >= 100000") -> str:
    """The example policy with a tier `press` after `verified` and a deny rule on it."""
    text = (EXAMPLES / "policy.yaml").read_text()
    anchor = "  - name: standard"
    assert text.count(anchor) == 1
    text = text.replace(anchor, f"  - name: press\n    when: {when}\n{anchor}", 1)
    return text.replace(
        "  - id: support-standard-accounts\n",
        "  - id: press-freedom\n    effect: deny\n    actions: [account.suspend, account.lock]\n"
        "    when: 'account.tier == \"press\"'\n  - id: support-standard-accounts\n",
        1,
    )


@pytest.mark.parametrize(
    "when",
    [
        "account.verified && account.followers >= 100000",  # verified takes them first
        "account.followers >= 2000000",  # vit (1,000,000 or more) takes them first
        "account.verified || account.followers >= 1000000",
    ],
)
def test_policy_check_refuses_a_tier_no_account_reaches(tmp_path: Path, when: str) -> None:
    path = tmp_path / "press.yaml"
    path.write_text(press_policy(when))
    result = runner.invoke(app, ["policy", "check", str(path)], env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    assert result.exit_code == 2, out
    assert "tier 'press' is never reached" in out, out


def test_a_tier_placed_where_accounts_reach_it_passes(tmp_path: Path) -> None:
    text = press_policy("account.followers >= 100000 && !account.verified")
    path = tmp_path / "press.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["policy", "check", str(path)], env={"COLUMNS": "250"})
    assert "never reached" not in result.stdout + result.stderr


def test_the_server_refuses_a_tier_no_account_reaches(api: Api) -> None:
    database = api.world.services.database
    before = counts(database)
    body = assert_problem(api.submit(JO, **proposal(press_policy())), 422, "invalid-policy")
    assert "tier 'press' is never reached" in body["detail"], body["detail"]
    assert counts(database) == before
