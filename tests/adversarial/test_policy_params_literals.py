"""A literal compared with a request's params names a value the param takes (attack pol7-F1).

A deny rule `params.account == "president" && params.pin == "protected" && !params.present` on
`foureyes.account.pin` was installed and matched nothing: `params.account` is always
`platform:id`. `params.pin == "Protected"`, `"Security" in params.groups`, `params.staff ==
"ines"` (a login), `params.status == "Active"` read as rules and named nothing. A new text's
literal compared with `params.X` is now a value X takes under the params schema of the actions
its condition applies to (`foureyes.policy.param_domains`): an action of the rule declares X,
the literal passes X's schema (enum, pattern, type, format, lengths) for one of them, and
where the schema says what X holds (`x-foureyes`) it is checked as that field: a staff id names
someone in the directory, a group or a pin has that shape, an account ref is looked up on its
platform at submission like an `account.ref` literal. String functions on params stay, but
their literal must be possible under an enum or an anchored pattern.

Each attack is refused by the compiler (`parse_new_policy`: `policy check`, init, submission,
execution), by `policy check --staff` (exit 2), and at submission (422, nothing recorded) on
SQLite and PostgreSQL; a version installed before keeps compiling.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.errors import PolicyError
from foureyes.policy.compiler import Policy, parse_new_policy, parse_policy
from foureyes.policy.literals import account_literals, check_staff_literals, unheld_groups
from tests.adversarial.test_policy_folding import counts, proposal
from tests.adversarial.test_policy_forms_domains import CATALOG, DIRECTORY, JO, rule
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES

runner = CliRunner()
PIN = "[foureyes.account.pin]"
STAFF = "[foureyes.staff.update]"
ENROL = "[foureyes.staff.enrol_credential]"
SUSPEND = "[account.suspend]"
# The attacker's rule, exactly.
ATTACK = 'params.account == "president" && params.pin == "protected" && !params.present'
ACCOUNT_PATTERN = "matching ^[^:]+:.+$"
PIN_PATTERN = "matching ^[a-z][a-z0-9_-]{0,49}$"
GROUP_SHAPE = "a group is named with lowercase ASCII letters"


def refused(when: str, actions: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(rule(when, actions), CATALOG, file="proposed policy")
    assert caught.value.field == "rules[2].when", caught.value
    assert "rule 'protect'" in caught.value.message
    return caught.value.message


def compiled(when: str, actions: str) -> Policy:
    return parse_new_policy(rule(when, actions), CATALOG, file="proposed policy")


# --- the params schema: declared, enum, pattern, type, format, lengths ---------------------------

MEETS = "meets only in =="
REFUSED = {
    "the attack: a bare id for an account ref": (ATTACK, PIN, ACCOUNT_PATTERN),
    "an id in a list": ('params.account in ["president", "chirp:president"]', PIN, ACCOUNT_PATTERN),
    "pin, case": ('params.pin == "Protected"', PIN, PIN_PATTERN),
    "pin, by index": ('params["pin"] == "Protected"', PIN, PIN_PATTERN),
    "pin in a list": ('params.pin in ["protected", "Watchlist"]', PIN, PIN_PATTERN),
    "pin, not equal": ('params.pin != "Protected" && !params.present', PIN, PIN_PATTERN),
    "present as text": ('params.present == "false"', PIN, "of type boolean"),
    "status, case": (
        'params.status == "Active"',
        STAFF,
        "one of active, suspended, terminated (it reads as 'active')",
    ),
    "status in a list": ('params.status in ["active", "Suspended"]', STAFF, "reads as 'suspended'"),
    "status, a word it never is": ('params.status == "fired"', STAFF, "one of active"),
    "group, case": ('"Security" in params.groups', STAFF, GROUP_SHAPE),
    "group in a macro over the param": (
        'params.groups.exists(g, g == "Security")',
        STAFF,
        GROUP_SHAPE,
    ),
    "group through a macro variable": (
        '["security", "Legal"].exists(g, g in params.groups)',
        STAFF,
        GROUP_SHAPE,
    ),
    "groups as a list": ('params.groups == ["security", "Legal"]', STAFF, GROUP_SHAPE),
    "staff id, a space": ('params.staff == "e 4001"', STAFF, "matching"),
    "staff id on both staff actions": (
        'params.staff == "e 4001"',
        "[foureyes.staff.*]",
        "staff id",
    ),
    "ends, no date": ('params.ends == "2025-02-30"', STAFF, "of format date"),
    "kind, case": ('params.kind == "WebAuthn"', ENROL, "reads as 'webauthn'"),
    "email, no address": ('params.email == "tomas"', "[account.change_email]", "format email"),
    "reason, too long": (f'params.reason == "{"x" * 501}"', SUSPEND, "maxLength"),
    "a param no action has": ('params.reasons == "spam"', SUSPEND, "has a parameter 'reasons'"),
    "a param of another action": ('params.reason == "spam"', "[account.delete]", "'reason'"),
    "a pin's param on a staff action": ('params.pin == "protected"', STAFF, "'pin'"),
    "a param's name tested": ('"reasons" in params', SUSPEND, "has a parameter 'reasons'"),
    "nested under a string": ('params.reason.code == "x"', SUSPEND, "'reason.code'"),
    "no action of the rule takes it": (
        'params.pin == "Protected" || params.reason == "spam"',
        "[account.suspend, foureyes.account.pin]",
        PIN_PATTERN,
    ),
    # String functions stay on params, but never on a value no request holds.
    "startsWith, pin case": ('params.pin.startsWith("Prot")', PIN, MEETS),
    "contains, pin": ('params.pin.contains("Protected")', PIN, MEETS),
    "endsWith, status enum": ('params.status.endsWith("Ed")', STAFF, "values are active"),
    "startsWith, status enum": ('params.status.startsWith("Act")', STAFF, "values are active"),
    "matches, status enum": ('params.status.matches("^Act")', STAFF, "values are active"),
    "matches, kind enum": ('params.kind.matches("Key$")', ENROL, "values are webauthn"),
    "startsWith, groups": ('params.groups.exists(g, g.startsWith("Sec"))', STAFF, MEETS),
    "startsWith through a macro variable": (
        '["Prot"].exists(p, params.pin.startsWith(p))',
        PIN,
        MEETS,
    ),
    "a function on a param no action has": ('params.note.contains("x")', SUSPEND, "'note'"),
    # What names someone or something meets a literal only in a comparison (attack pol8-F3).
    "startsWith, staff id": ('params.staff.startsWith("C-")', STAFF, MEETS),
    "endsWith, account ref": ('params.account.endsWith(":President")', PIN, MEETS),
    "contains, account ref": ('params.account.contains("President")', PIN, MEETS),
    "startsWith, account ref, past the platform": (
        'params.account.startsWith("chirp:pres")',
        PIN,
        MEETS,
    ),
    "startsWith, pin, lower case": ('params.pin.startsWith("prot") && params.present', PIN, MEETS),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_literal_no_param_value_can_be_is_refused(name: str) -> None:
    when, actions, reason = REFUSED[name]
    message = refused(when, actions)
    assert reason in message, message


def test_the_refusal_names_the_param_and_the_pattern() -> None:
    message = refused(ATTACK, PIN)
    assert "'president' is compared with params.account" in message, message
    assert f"foureyes.account.pin's account is a value {ACCOUNT_PATTERN}" in message, message


PASSING = [
    ('params.account == "chirp:president" && params.pin == "protected" && !params.present', PIN),
    ('params.account in ["chirp:president", "chirp:chirp"]', PIN),
    ('params.account.startsWith("chirp:")', PIN),
    ('params.reason == "spam"', SUSPEND),
    ('params["reason"] == "Spam, at length: see INC-12"', SUSPEND),
    ('params.reason.contains("Spam")', SUSPEND),
    ('"reason" in params', SUSPEND),
    (
        'params.reason == "spam" || params.pin == "protected"',
        "[account.suspend, foureyes.account.pin]",
    ),
    ('params.status in ["suspended", "terminated"]', STAFF),
    ('params.status.startsWith("term")', STAFF),
    ('"security" in params.groups || params.groups.exists(g, g == "leads")', STAFF),
    ('params.staff == "e-4001" && params.ends == "2026-12-31"', STAFF),
    ('params.kind == "device-key" && params.kind.endsWith("key")', ENROL),
    ('params.staff == staff.id || "leads" in staff.groups', ENROL),
    ('params.email == "tomas@chirp.example"', "[account.change_email]"),
]


@pytest.mark.parametrize(("when", "actions"), PASSING)
def test_values_the_params_take_pass(when: str, actions: str) -> None:
    policy = compiled(when, actions)
    check_staff_literals(policy, DIRECTORY)


def test_an_installed_text_keeps_compiling() -> None:
    """The rule holds new texts only: a version installed before it keeps serving."""
    for when, actions, _ in REFUSED.values():
        parse_policy(rule(when, actions), CATALOG, file="policy v7")


def test_a_batch_rule_is_held_to_its_own_actions() -> None:
    base = rule('params.reason == "spam"', SUSPEND)
    when = """when: '"trust-safety" in staff.groups || "support" in staff.groups'"""
    assert base.count(when) == 1

    def batch(condition: str) -> Policy:
        text = base.replace(when, f"when: '{condition}'")
        return parse_new_policy(text, CATALOG, file="proposed policy")

    batch('"support" in staff.groups && params.reason != "spam"')
    with pytest.raises(PolicyError) as caught:
        batch('"support" in staff.groups && params.pin == "protected"')
    assert caught.value.field == "batches[0].when", caught.value
    message = caught.value.message
    assert "no action of batch rule 'abuse-ring-takedown' has a parameter 'pin'" in message


# --- meanings: staff ids and groups against the directory -----------------------------------------

DIRECTORY_REFUSED = {
    "a login for an id": ('params.staff == "ines"', STAFF, "it is a login of 'e-4001'"),
    "no such staff": ('params.staff == "e-4002"', STAFF, "no one in the directory has that id"),
    "a login, enrolment": ('params.staff in ["e-4001", "tomas"]', ENROL, "login of 'e-3001'"),
    "a login in a macro": ('["jo"].exists(s, params.staff == s)', STAFF, "login of 'e-9001'"),
    "a group reading as a held one": (
        '"trust_safety" in params.groups',
        STAFF,
        "reads as group 'trust-safety'",
    ),
}


@pytest.mark.parametrize("name", sorted(DIRECTORY_REFUSED))
def test_a_staff_param_names_someone_in_the_directory(name: str) -> None:
    when, actions, reason = DIRECTORY_REFUSED[name]
    policy = compiled(when, actions)
    with pytest.raises(PolicyError) as caught:
        check_staff_literals(policy, DIRECTORY)
    assert reason in caught.value.message, caught.value.message
    assert caught.value.field == "rules[2].when"


def test_a_group_no_one_holds_yet_is_reported() -> None:
    policy = compiled('"auditors" in params.groups', STAFF)
    check_staff_literals(policy, DIRECTORY)
    assert [item.value for item in unheld_groups(policy, DIRECTORY)] == ["auditors"]


# --- meanings: account refs are looked up like account.ref ----------------------------------------


def test_an_account_ref_param_is_listed_for_the_platform_lookup() -> None:
    policy = compiled('params.account in ["chirp:President", "chirp:president"]', PIN)
    listed = [(".".join(item.path), item.value, item.domain) for item in account_literals(policy)]
    assert listed == [
        ("params.account", "chirp:President", ("account", "ref")),
        ("params.account", "chirp:president", ("account", "ref")),
    ]
    # A free-text param is no account: nothing to look up.
    assert account_literals(compiled('params.reason == "chirp:president"', SUSPEND)) == []


# --- policy check ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "actions", "reason"),
    [
        (ATTACK, PIN, ACCOUNT_PATTERN),
        ('params.pin == "Protected"', PIN, PIN_PATTERN),
        ('"Security" in params.groups || params.staff == "ines"', STAFF, GROUP_SHAPE),
        ('params.staff == "ines"', STAFF, "it is a login of 'e-4001'"),
        ('params.staff == "e-4002"', STAFF, "no one in the directory has that id"),
        ('params.status == "Active"', STAFF, "reads as 'active'"),
    ],
)
def test_policy_check_refuses_them(tmp_path: Path, when: str, actions: str, reason: str) -> None:
    path = tmp_path / "proposed.yaml"
    path.write_text(rule(when, actions))
    args = ["policy", "check", str(path), "--staff", str(EXAMPLES / "staff.yaml")]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    assert result.exit_code == 2, out
    assert reason in out, out


def test_policy_check_lists_an_account_ref_param_for_the_lookup(tmp_path: Path) -> None:
    path = tmp_path / "proposed.yaml"
    path.write_text(rule('params.account == "chirp:President"', PIN))
    args = ["policy", "check", str(path), "--staff", str(EXAMPLES / "staff.yaml")]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    assert "account name 'chirp:President' (params.account) is looked up" in out, out


# --- at submission (SQLite and PostgreSQL) --------------------------------------------------------

SUBMITTED = [
    (ATTACK, PIN, "invalid-policy", ACCOUNT_PATTERN),
    ('params.pin == "Protected"', PIN, "invalid-policy", PIN_PATTERN),
    ('"Security" in params.groups', STAFF, "invalid-policy", GROUP_SHAPE),
    ('params.status == "Active"', STAFF, "invalid-policy", "reads as 'active'"),
    ('params.staff == "ines"', STAFF, "invalid-policy", "it is a login of 'e-4001'"),
    ('params.staff == "e-4002"', STAFF, "invalid-policy", "no one in the directory"),
    ('params.reasons == "spam"', SUSPEND, "invalid-policy", "has a parameter 'reasons'"),
    (
        'params.account in ["chirp:President", "chirp:Chirp"] && params.pin == "protected"',
        PIN,
        "bad-input",
        "'chirp:President' is compared with params.account",
    ),
    ('params.account == "nowhere:president"', PIN, "bad-input", "no platform 'nowhere'"),
]


@pytest.mark.parametrize(("when", "actions", "slug", "reason"), SUBMITTED)
def test_the_server_refuses_them_at_submission_recording_nothing(
    api: Api, when: str, actions: str, slug: str, reason: str
) -> None:
    database = api.world.services.database
    before = counts(database)
    body = assert_problem(api.submit(JO, **proposal(rule(when, actions))), 422, slug)
    assert reason in body["detail"], body["detail"]
    assert counts(database) == before


def test_the_exact_params_are_accepted_at_submission(api: Api) -> None:
    when = 'params.account == "chirp:president" && params.pin == "protected" && !params.present'
    made = api.submit(JO, **proposal(rule(when, PIN)))
    assert made.status_code == 201, made.text
    # (`"reason" in params` first: a deny rule reading a param a request lacks fails closed.)
    when = '"reason" in params && params.reason == "doxxing"'
    made = api.submit(JO, **proposal(rule(when, SUSPEND)))
    assert made.status_code == 201, made.text
