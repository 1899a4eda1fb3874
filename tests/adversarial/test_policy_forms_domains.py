"""Comparisons the literal checks could not see, and literals naming no value (R5-1, R5-2).

R5-1: `account["id"] in ["chirp", "President"]`, a map literal, `[account.id].exists(..)`,
`["President"][0]`, a ternary, `dyn()`, `.map(..)` compared a literal with a field without the
literal checker seeing it: a deny rule reading as protecting @president was installed and
matched nobody. A new text now uses forms the checker attributes, or is refused.

R5-2: `approver.employment == "Contractor"` (the value is `contractor`), `account.platform ==
"Chirp"`, `"account.Delete"`, `account.tier == "VIT"`, `"Protected" in account.pins` named
nothing. A closed domain now refuses a literal outside it; a directory field refuses a case
variant of a held value (one held by no one is a warning); a platform and a handle are looked
up at submission.

Each attack is refused by the compiler (every new text: `policy check`, init, submission and
execution) and at submission (422, nothing recorded) on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.errors import PolicyError
from foureyes.policy.compiler import Policy, parse_new_policy, parse_policy
from foureyes.policy.directory import load_directory
from foureyes.policy.literals import check_staff_literals, unheld_values
from tests.adversarial.test_policy_folding import counts, proposal, with_rule
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES

CATALOG = demo_catalog()
DIRECTORY = load_directory(EXAMPLES / "staff.yaml")
JO = "e-9001"
runner = CliRunner()
DIRECTLY = "compare a field with a literal directly"


def rule(when: str, actions: str = "[account.delete, account.deactivate, account.suspend]") -> str:
    return with_rule(f" '{when}'", actions)


def refused(when: str, actions: str = "[account.suspend, account.lock]") -> str:
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(rule(when, actions), CATALOG, file="proposed policy")
    assert caught.value.field == "rules[2].when", caught.value
    assert "rule 'protect'" in caught.value.message
    return caught.value.message


def compiled(when: str) -> Policy:
    return parse_new_policy(rule(when), CATALOG, file="proposed policy")


def refused_at_submission(api: Api, text: str) -> str:
    """The server's 422 `invalid-policy` detail for a lead's update to `text`, checking that
    nothing was recorded."""
    database = api.world.services.database
    before = counts(database)
    body = assert_problem(api.submit(JO, **proposal(text)), 422, "invalid-policy")
    assert counts(database) == before
    return str(body["detail"])


# --- R5-1: forms the checker cannot attribute ---------------------------------------------------

FORMS = {
    "index on account": ('account["id"] in ["chirp", "President"]', "write account.id"),
    "index on staff": ('staff["id"] in ["tomas", "c-3004"]', "write staff.id"),
    "index on approver": ('approver["groups"].exists(g, g == "x")', "write approver.groups"),
    "index with a computed key": ('account["i" + "d"] == "President"', "an index on account"),
    "index on context": ('context["weekday"] == "Sat"', "write context.weekday"),
    "index on action": ('action["name"] == "account.Delete"', "write action.name"),
    "map literal": ('account.id in {"chirp": true, "President": true}', "map literal"),
    "map literal, nested": ('{"a": account.id}["a"] == "President"', "map literal"),
    "macro over [field]": ('[account.id].exists(a, a == "President")', "list literal holding"),
    "macro over [staff.id]": ('[staff.id].exists(s, s == "tomas")', "list literal holding"),
    "macro over a mixed list": ('["chirp", account.id].all(a, a != "x")', "list literal holding"),
    "index into a list": ('account.id == ["President"][0]', DIRECTLY),
    "ternary": ('account.id == (true ? "President" : "chirp")', DIRECTLY),
    "dyn": ('account.id == dyn("President")', "dyn()"),
    "string()": ('account.id == string("President")', DIRECTLY),
    "map macro": ('account.id in ["President"].map(x, x)', DIRECTLY),
    "filter macro": ('account.id in ["President"].filter(x, true)', DIRECTLY),
    "literal against a call": ('"President" == account.id.lowerAscii()', DIRECTLY),
    "literal against a sum": ('account.id + "" == "President"', DIRECTLY),
    "variable over a filtered field": (
        'account.pins.filter(p, true).exists(q, q == "Protected")',
        DIRECTLY,
    ),
}


@pytest.mark.parametrize("name", FORMS)
def test_a_form_the_checker_cannot_attribute_is_refused(name: str) -> None:
    when, reason = FORMS[name]
    message = refused(when)
    assert reason in message, message


@pytest.mark.parametrize("name", ["index on account", "map literal", "macro over [field]"])
def test_the_refusal_holds_on_invariant_actions_too(name: str) -> None:
    assert FORMS[name][1] in refused(FORMS[name][0], "[account.delete, account.deactivate]")


@pytest.mark.parametrize(
    "when",
    [
        'account.id in ["chirp", "president"]',
        '["chirp", "president"].exists(a, account.id == a)',
        'account.pins.exists(p, p == "protected")',
        'staff.groups.exists(g, g == "trust-safety")',
        'params["reason"] == "spam" || account.followers >= 10',
        'staff.id == "c-" + "1001"',
        'context.weekday in ["sat", "sun"] && action.name == "account.suspend"',
    ],
)
def test_the_forms_it_attributes_pass(when: str) -> None:
    compiled(when)


def test_an_installed_text_with_such_a_form_keeps_compiling() -> None:
    """The rule holds new texts only: a version installed before it keeps serving."""
    parse_policy(rule(FORMS["index on account"][0]), CATALOG, file="policy v7")
    parse_policy(rule('staff.employment == "Contractor"'), CATALOG, file="policy v7")


# --- R5-2: closed domains ----------------------------------------------------------------------

DOMAINS = {
    "employment, case": ('staff.employment == "Contractor"', "reads as 'contractor'"),
    "employment, plural": ('staff.employment == "contractors"', "contractor, employee"),
    "status": ('staff.status == "Suspended"', "reads as 'suspended'"),
    "action name": (
        'account.id == "president" && action.name in ["account.Delete", "account.Suspend"]',
        "reads as 'account.delete'",
    ),
    "action kind": ('action.kind == "Write"', "reads as 'write'"),
    "tier": ('account.tier == "VIT"', "reads as 'vit'"),
    "tier nobody declared": ('account.tier != "gold"', "is never 'gold'"),
    "pin": ('"Protected" in account.pins', "a pin's name is lower case"),
    "pin in a macro": ('account.pins.exists(p, p == "Watchlist")', "a pin's name is lower case"),
    "weekday": ('context.weekday == "Sat"', "reads as 'sat'"),
    "in a list": ('staff.employment in ["employee", "Contractor"]', "reads as 'contractor'"),
    "in a bound list": ('["Contractor"].exists(e, staff.employment == e)', "'contractor'"),
}


@pytest.mark.parametrize("name", DOMAINS)
def test_a_literal_outside_a_closed_domain_is_refused(name: str) -> None:
    when, reason = DOMAINS[name]
    message = refused(when)
    assert reason in message, message


def exclude_policy(exclude: str) -> str:
    """The example policy's vit-suspension rule with one `exclude` line (the attack's)."""
    text = (EXAMPLES / "policy.yaml").read_text()
    anchor = "  - id: vit-suspension\n"
    assert text.count(anchor) == 1
    head, tail = text.split(anchor)
    first, rest = tail.split("\n", 1)
    return f"{head}{anchor}{first}\n    exclude: '{exclude}'\n{rest}"


def test_the_contractor_exclude_of_the_attack_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(exclude_policy('approver.employment == "Contractor"'), CATALOG)
    assert "reads as 'contractor'" in caught.value.message
    assert caught.value.field is not None
    assert caught.value.field.endswith(".exclude")
    parse_new_policy(exclude_policy('approver.employment == "contractor"'), CATALOG)


# --- R5-2: directory fields ---------------------------------------------------------------------

LOOKALIKES = {
    "email": ('staff.email == "Tomas@chirp.example"', "'tomas@chirp.example'"),
    "name": ('staff.name in ["Tomas berg", "Lee Park"]', "'Tomas Berg'"),
    "identities": ('"Tomas" in staff.identities', "'tomas'"),
    "in a macro": ('staff.identities.exists(i, i == "TOMAS")', "'tomas'"),
}


@pytest.mark.parametrize("name", LOOKALIKES)
def test_a_case_variant_of_a_directory_value_is_refused(name: str) -> None:
    when, like = LOOKALIKES[name]
    with pytest.raises(PolicyError) as caught:
        check_staff_literals(compiled(when), DIRECTORY)
    assert f"it reads as {like}" in caught.value.message, caught.value.message


def test_exact_directory_values_pass_and_unheld_ones_are_reported() -> None:
    held = compiled('staff.email == "tomas@chirp.example" || "tomas" in staff.identities')
    check_staff_literals(held, DIRECTORY)
    assert unheld_values(held, DIRECTORY) == []
    future = compiled('staff.region == "mars" || staff.vendor == "NewCo"')
    check_staff_literals(future, DIRECTORY)
    assert sorted(item.value for item in unheld_values(future, DIRECTORY)) == ["NewCo", "mars"]


def test_policy_check_warns_of_a_value_no_one_holds(tmp_path: Path) -> None:
    path = tmp_path / "proposed.yaml"
    path.write_text(rule('staff.region == "mars"', "[account.login_as]"))
    args = ["policy", "check", str(path), "--staff", str(EXAMPLES / "staff.yaml")]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    assert result.exit_code == 0, out
    assert "staff.region 'mars' is held by no one in the directory" in out


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ('account.platform == "Chirp"', 'account.platform == "Chirp"'),
        ('account["id"] in ["chirp", "President"]', "write account.id"),
        ('account.tier == "VIT"', "reads as 'vit'"),
    ],
)
def test_policy_check_refuses_them(tmp_path: Path, when: str, reason: str) -> None:
    path = tmp_path / "proposed.yaml"
    path.write_text(rule(when, "[account.suspend]"))
    result = runner.invoke(app, ["policy", "check", str(path)], env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    if "platform" in when:
        assert "platform 'Chirp' is checked against the connected platforms" in out, out
        return
    assert result.exit_code == 2, out
    assert reason in out, out


# --- at submission (SQLite and PostgreSQL) ------------------------------------------------------

SUBMITTED = [
    ('account["id"] in ["chirp", "President"]', "invalid-policy", "write account.id"),
    ('staff["id"] in ["tomas", "c-3004"]', "invalid-policy", "write staff.id"),
    ('account.id in {"chirp": true, "President": true}', "invalid-policy", "map literal"),
    ('[account.id].exists(a, a == "President")', "invalid-policy", "list literal holding"),
    ('account.id == (true ? "President" : "chirp")', "invalid-policy", DIRECTLY),
    ('account.platform == "Chirp" && account.id == "president"', "bad-input", "named 'chirp'"),
    ('account.platform == "mastodon"', "bad-input", "no platform 'mastodon' is connected"),
    (
        'account.id == "president" && action.name in ["account.Delete", "account.Suspend"]',
        "invalid-policy",
        "reads as 'account.delete'",
    ),
    ('account.tier == "VIT"', "invalid-policy", "reads as 'vit'"),
    ('"Protected" in account.pins', "invalid-policy", "lower case"),
    ('account.handle in ["chirp", "President"]', "bad-input", "'President' is compared"),
    ('staff.email == "Tomas@chirp.example"', "invalid-policy", "'tomas@chirp.example'"),
    ('staff.employment == "Contractor"', "invalid-policy", "'contractor'"),
]


@pytest.mark.parametrize(("when", "slug", "reason"), SUBMITTED)
def test_the_server_refuses_them_at_submission_recording_nothing(
    api: Api, when: str, slug: str, reason: str
) -> None:
    database = api.world.services.database
    before = counts(database)
    body = assert_problem(api.submit(JO, **proposal(rule(when, "[account.suspend]"))), 422, slug)
    assert reason in body["detail"], body["detail"]
    assert counts(database) == before


def test_exact_platforms_and_handles_are_accepted_at_submission(api: Api) -> None:
    when = 'account.platform == "chirp" && account.handle in ["chirp", "president"]'
    made = api.submit(JO, **proposal(rule(when, "[account.suspend]")))
    assert made.status_code == 201, made.text
