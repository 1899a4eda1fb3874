"""A literal reaching a field other than by `==`, `!=`, `in` (attack r6 R6-1), and conditions
that can never hold (R6-2).

R6-1: `when: 'account.id.matches("^President$")'` in a deny rule, `exclude:
'approver.employment.startsWith("Contract")'` and `staff.id.matches("^(c-1OO1)$")` passed
`policy check --staff` and matched nobody: the literal checks read only comparisons. A new text
now refuses a string (or bytes) literal meeting a field of `staff`, `approver`, `requester`,
`account`, `context` or `action` in `startsWith`, `endsWith`, `contains`, `matches` or an
ordering, whichever side each stands on, through macro variables too; and a field compared with
a value built from literals alone (`string(1234)`; a bytes literal is refused by the wording
rule).

R6-2: `staff.id == "c-1001" && staff.id == "c-3004"` and `"a" == "a"` passed silently.

Refused by the compiler (every new text: `policy check`, init, submission, execution) and at
submission (422, nothing recorded) on SQLite and PostgreSQL; an installed text keeps compiling.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.errors import PolicyError
from foureyes.policy.compiler import parse_new_policy, parse_policy
from tests.adversarial.test_policy_forms_domains import (
    CATALOG,
    compiled,
    exclude_policy,
    refused,
    refused_at_submission,
    rule,
)
from tests.api.conftest import Api
from tests.conftest import EXAMPLES

runner = CliRunner()
REACHES = "a literal reaches a field through"
CONSTANT = "reads nothing of the request"

# The attack's three, and their variants: each side, each function, orderings, macro variables.
REACHING = {
    "matches on the account (the attack)": ('account.id.matches("^President$")', "matches()"),
    "startsWith on employment (the attack)": (
        'approver.employment.startsWith("Contract")',
        "startsWith()",
    ),
    "matches on a staff id (the attack)": ('staff.id.matches("^(c-1OO1)$")', "matches()"),
    "endsWith": ('account.handle.endsWith("ident")', "endsWith()"),
    "contains": ('staff.email.contains("@vendor")', "contains()"),
    "the literal as the receiver": ('"President".startsWith(account.id)', "startsWith()"),
    "the field as the pattern": ('"president".matches(account.id)', "matches()"),
    "a case-blind pattern": ('account.id.matches("(?i)president")', "matches()"),
    "ordering": ('account.handle > "m"', "an ordering ('>')"),
    "an ordering band": ('account.id >= "president" && account.id <= "president"', "ordering"),
    "ordering, literal first": ('"c-1000" < staff.id', "an ordering ('<')"),
    "a number made a string, ordered": ("account.id > string(1)", CONSTANT),
    "a macro variable over literals": (
        '["Pres", "Vice"].exists(p, account.id.startsWith(p))',
        "startsWith()",
    ),
    "a macro variable over a field": ('staff.groups.exists(g, g.endsWith("ops"))', "endsWith()"),
    "a variable over something computed": (
        "staff.groups.map(g, g).exists(h, h.contains(params.x))",
        "contains()",
    ),
    "context": ('context.client.startsWith("con")', "startsWith()"),
    "action": ('action.name.startsWith("account.del")', "startsWith()"),
    "requester's manager": ('requester.manager.startsWith("e-9")', "startsWith()"),
}


@pytest.mark.parametrize("name", REACHING)
def test_a_literal_reaching_a_field_other_than_by_comparison_is_refused(name: str) -> None:
    when, through = REACHING[name]
    message = refused(when)
    if through == CONSTANT:
        assert CONSTANT in message, message
        return
    assert REACHES in message, message
    assert through in message, message


@pytest.mark.parametrize("name", ["matches on the account (the attack)", "ordering"])
def test_the_refusal_holds_on_every_action(name: str) -> None:
    assert REACHES in refused(REACHING[name][0], "[account.delete, account.deactivate]")
    assert REACHES in refused(REACHING[name][0], "[account.view]")


def test_the_contractor_exclude_of_the_attack_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(exclude_policy('approver.employment.startsWith("Contract")'), CATALOG)
    assert REACHES in caught.value.message
    assert caught.value.field is not None
    assert caught.value.field.endswith(".exclude")


BUILT = {
    "a number made a string": "account.id == string(1234)",
    "in a list": "account.id in [string(1234)]",
    "a ternary of literals": 'staff.id == (true ? "c-1001" : "c-3004")',
}


@pytest.mark.parametrize("name", BUILT)
def test_a_field_compared_with_a_value_built_from_literals_alone_is_refused(name: str) -> None:
    message = refused(BUILT[name])
    assert "compare a field with a literal directly" in message, message


NEVER = {
    "one id and another": ('staff.id == "c-1001" && staff.id == "c-3004"', "can never be true"),
    "apart in a chain": (
        'account.id == "president" && staff.id == "e-3001" && account.id == "chirp"',
        "can never be true",
    ),
    "two literals": ('"a" == "a"', "two literals are compared"),
    "two numbers": ("1 != 2", "two literals are compared"),
    "a literal in a list of literals": ('"president" in ["president"]', "two literals"),
}


@pytest.mark.parametrize("name", NEVER)
def test_a_comparison_that_cannot_depend_on_the_request_is_refused(name: str) -> None:
    when, reason = NEVER[name]
    assert reason in refused(when)


@pytest.mark.parametrize(
    "when",
    [
        'params.reason.endsWith("@chirp.example")',
        'params["reason"].matches("^INC-[0-9]+$")',
        'staff.ends < context.now + duration("720h")',
        'staff.starts < timestamp("2026-01-01T00:00:00Z")',
        "account.followers >= 1000000 && staff.days_left > -1",
        "context.hour > 3 && context.hour < 5",
        "staff.id.contains(params.x) || size(account.id) > 3",
        'staff.id == "c-1001" && account.id == "president" && staff.id == "c-1001"',
        'staff.id == "c-1001" || staff.id == "c-3004"',
        "staff.id == staff.manager",
    ],
)
def test_what_reads_no_literal_into_a_field_passes(when: str) -> None:
    compiled(when)


def test_an_installed_text_with_such_a_form_keeps_compiling() -> None:
    """The rule holds new texts only: a version installed before it keeps serving."""
    for when, _ in REACHING.values():
        if "approver." not in when and "requester." not in when:  # a deny rule reads neither
            parse_policy(rule(when), CATALOG, file="policy v7")
    parse_policy(exclude_policy('approver.employment.startsWith("Contract")'), CATALOG)
    parse_policy(rule('staff.id == "c-1001" && staff.id == "c-3004"'), CATALOG, file="v7")


def test_policy_check_with_the_directory_refuses_the_attack(tmp_path: Path) -> None:
    """The attack passed `policy check --staff`; it exits 2 naming the rule and the form."""
    path = tmp_path / "proposed.yaml"
    path.write_text(rule('staff.id.matches("^(c-1OO1)$")', "[account.suspend]"))
    args = ["policy", "check", str(path), "--staff", str(EXAMPLES / "staff.yaml")]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    assert result.exit_code == 2, out
    assert "rule 'protect'" in out, out
    assert REACHES in out, out


@pytest.mark.parametrize(
    "when",
    [
        'account.id.matches("^President$")',
        'approver.employment.startsWith("Contract")',
        'account.handle > "m"',
        'staff.id == "c-1001" && staff.id == "c-3004"',
    ],
)
def test_the_server_refuses_them_at_submission_recording_nothing(api: Api, when: str) -> None:
    detail = refused_at_submission(api, rule(when, "[account.suspend]"))
    assert "rule 'protect'" in detail, detail
