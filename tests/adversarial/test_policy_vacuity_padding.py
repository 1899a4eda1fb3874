"""Forms that decide nothing, padded with ordinary parts until the checker gave up (pol10-F1).

`vacuity.decided` tried every value of every path of a condition at once, and above 20,000
cases answered "undecided", which passed. An always-true `||` (`... || approver.id !=
"c-3004" || ["c-1001"].all(c, approver.id != c)`) whose first operand held ten ordinary parts
(groups, region, days_left, vendor, manager) was installed as `approvers`, `exclude` and
`break_glass.allowed_when`: it reads as "senior T&S employees, never the contractors" and
admits every trust-safety member (a contractor then broke the glass on a VIT account alone).

Now parts that read different fields are tried apart (the padding is one free truth value),
and what is still too large is refused ("cannot decide"), never passed: at `policy check`
and at submission (422, nothing recorded), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.errors import PolicyError
from foureyes.policy.compiler import parse_new_policy
from foureyes.policy.vacuity import UNKNOWN, Atom, decided
from tests.adversarial.test_policy_forms_domains import (
    CATALOG,
    compiled,
    exclude_policy,
    refused,
    refused_at_submission,
)
from tests.api.conftest import Api
from tests.conftest import EXAMPLES

runner = CliRunner()
ALWAYS = "is always true"
NEVER = "can never be true"
UNDECIDED = "cannot decide whether"


def padding(who: str) -> str:
    """The attack's ordinary-looking parts (far more than 20,000 cases together)."""
    return (
        f'{who}.employment == "employee" && {who}.region in ["eu", "us"] && '
        f'{who}.days_left > 30 && "leads" in {who}.groups && "security" in {who}.groups && '
        f'"legal" in {who}.groups && "support" in {who}.groups && '
        f'{who}.vendor != "Outsourcing Co" && {who}.manager != "e-3001"'
    )


def admits_the_contractors(who: str) -> str:
    """Reads "senior T&S employees, never c-3004 or c-1001"; is "every trust-safety member"."""
    return (
        f'"trust-safety" in {who}.groups && ({padding(who)} && {who}.id != "e-9001" || '
        f'{who}.id != "c-3004" || ["c-1001"].all(c, {who}.id != c))'
    )


PADDED = {
    "the attack's approvers form": (admits_the_contractors("staff"), ALWAYS),
    "padding compared with another field": (
        f'"trust-safety" in staff.groups && ({padding("staff")} && staff.id != staff.manager '
        '|| staff.id != "c-3004" || ["c-1001"].all(c, staff.id != c))',
        ALWAYS,
    ),
    "without a macro": (
        f'({padding("staff")} || staff.id != "c-3004" || '
        'staff.id != "c-1001" && staff.id != "e-9001")',
        ALWAYS,
    ),
    "padding last": (
        f'(staff.id != "c-3004" || ["c-1001"].all(c, staff.id != c) || {padding("staff")})',
        ALWAYS,
    ),
    "two exists joined by and": (
        f'{padding("staff")} && ["c-1001"].exists(c, staff.id == c) && '
        '["c-3004"].exists(c, staff.id == c)',
        NEVER,
    ),
    "two exists, padding between": (
        f'["c-1001"].exists(c, staff.id == c) && {padding("staff")} && '
        '["c-3004"].exists(c, staff.id == c)',
        NEVER,
    ),
    "padded de morgan, negated": (
        f'!({padding("staff")} || staff.id != "c-1001" || ["c-3004"].all(c, staff.id != c))',
        ALWAYS,  # its `||` is refused first
    ),
    "twenty groups": (
        " && ".join(f'"g{n}" in staff.groups' for n in range(20))
        + ' && (staff.id != "c-3004" || ["c-1001"].all(c, staff.id != c))',
        ALWAYS,
    ),
}


@pytest.mark.parametrize("name", PADDED)
def test_a_padded_form_that_decides_nothing_is_refused(name: str) -> None:
    when, reason = PADDED[name]
    message = refused(when)
    assert reason in message, message


def test_a_condition_too_large_to_decide_is_refused_not_passed() -> None:
    """Twenty list values all read together (each part shares one with the next): more cases
    than the budget, so the answer is "cannot decide", never a pass."""
    chained = " && ".join(
        f'("g{n}" in staff.groups || "g{n + 1}" in staff.groups)' for n in range(20)
    )
    message = refused(f'{chained} && staff.id != "c-3004"')
    assert UNDECIDED in message, message
    assert "rewrite it" in message, message


def test_decided_answers_unknown_past_the_budget() -> None:
    atoms = [("atom", Atom(("staff", "groups"), "has", frozenset({f"g{n}"}))) for n in range(20)]
    chained = ("and", [("or", [atoms[n], atoms[n + 1]]) for n in range(19)])
    assert decided(chained) == UNKNOWN
    assert decided(("and", atoms)) is None  # apart: each is a free truth value


@pytest.mark.parametrize(
    "when",
    [
        f'"trust-safety" in staff.groups && {padding("staff")} && staff.id != "c-3004"',
        f'({padding("staff")}) || staff.id == "c-3004" || staff.id == "c-1001"',
        f'{padding("staff")} && ["c-1001", "c-3004"].all(c, staff.id != c)',
        " && ".join(f'"g{n}" in staff.groups' for n in range(30)),
    ],
)
def test_padded_conditions_that_decide_pass(when: str) -> None:
    compiled(when)


def example() -> str:
    return (EXAMPLES / "policy.yaml").read_text()


def with_approvers(condition: str) -> str:
    text = example()
    anchor = "approvers: '\"trust-safety\" in approver.groups'\n    break_glass"
    assert text.count(anchor) == 1
    return text.replace(anchor, f"approvers: '{condition}'\n    break_glass", 1)


def with_allowed_when(condition: str) -> str:
    text = example()
    anchor = 'allowed_when: \'staff.employment == "employee" && "trust-safety" in staff.groups\''
    assert text.count(anchor) == 1
    return text.replace(anchor, f"allowed_when: '{condition}'", 1)


PADDED_EXCLUDE = (
    f'{padding("approver")} && ["c-1001"].exists(c, approver.id == c) && '
    '["c-3004"].exists(c, approver.id == c)'
)
TEXTS = {
    "approvers": (with_approvers(admits_the_contractors("approver")), ".approvers", ALWAYS),
    "break_glass.allowed_when": (
        with_allowed_when(admits_the_contractors("staff")),
        ".break_glass.allowed_when",
        ALWAYS,
    ),
    "exclude": (exclude_policy(PADDED_EXCLUDE), ".exclude", NEVER),
}


@pytest.mark.parametrize("name", TEXTS)
def test_the_attack_texts_are_refused_by_the_compiler(name: str) -> None:
    text, where, reason = TEXTS[name]
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(text, CATALOG, file="proposed policy")
    assert caught.value.field is not None
    assert caught.value.field.endswith(where), caught.value
    assert reason in caught.value.message, caught.value.message


@pytest.mark.parametrize("name", TEXTS)
def test_policy_check_refuses_the_attack_texts(tmp_path: Path, name: str) -> None:
    text, _, reason = TEXTS[name]
    path = tmp_path / "padded.yaml"
    path.write_text(text)
    staff = str(EXAMPLES / "staff.yaml")
    result = runner.invoke(
        app, ["policy", "check", str(path), "--staff", staff], env={"COLUMNS": "250"}
    )
    out = result.stdout + result.stderr
    assert result.exit_code == 2, out
    assert reason in " ".join(out.split()), out


@pytest.mark.parametrize("name", TEXTS)
def test_the_server_refuses_the_attack_texts_at_submission(api: Api, name: str) -> None:
    text, _, reason = TEXTS[name]
    detail = refused_at_submission(api, text)
    assert reason in detail, detail
