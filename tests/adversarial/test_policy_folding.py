"""A proposed policy whose condition means something other than it shows (attack names F4, F5).

F4: a CEL `//` comment inside a YAML-folded scalar (`>`, `>-`, a plain or quoted scalar over
several lines) runs to the end of the *folded* line, swallowing the source lines after it: a
deny rule reading `account.id == "chirp" // ... || account.id == "president"` protected only
@chirp, was approved and installed. Now a CEL field of a new text is one line or a literal
block (`|`), and holds no CEL comment (prose belongs in `description`).

F5: literals that look like a value and name nothing: `"c-1OO1"` (letters O) for c-1001,
`"president "`, `"President"` (the account is `president`). Now a literal has no edge
whitespace, a literal compared with a staff id is someone's id (none reads as an id it is
not), and a literal compared with `account.id`/`account.ref` is an account its platform
resolves exactly (looked up at submission and at execution).

Every variant is refused at `foureyes policy check` (or listed, for account names, which only a
running server can look up) and at submission (422, nothing recorded), on SQLite and
PostgreSQL; an installed text with a fold or a comment keeps compiling.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.connectors.base import ExecutionOrder
from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.errors import ConnectorError, PolicyError
from foureyes.model import Staff
from foureyes.policy.catalog import FOUREYES_PLATFORM
from foureyes.policy.compiler import Policy, parse_new_policy, parse_policy
from foureyes.policy.directory import Directory, load_directory
from foureyes.policy.literals import account_literals, check_staff_literals, unheld_groups
from foureyes.policy.sandbox import AccountName
from foureyes.store.database import Database
from foureyes.store.tables import PolicyVersionRow, RequestRow
from foureyes.workflow.governance import GovernanceConnector
from foureyes.workflow.policy_accounts import check_account_names
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES
from tests.worlds import make_world

EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
CATALOG = demo_catalog()
DIRECTORY = load_directory(EXAMPLES / "staff.yaml")
JO = "e-9001"
ANCHOR = "  # Everyday support work on ordinary accounts needs no second person.\n"
assert EXAMPLE.count(ANCHOR) == 1
RULE_LINE = EXAMPLE.splitlines(keepends=True).index(ANCHOR) + 1  # the new rule's `- id:` line
WHEN_LINE = RULE_LINE + 3
runner = CliRunner()


def with_rule(when: str, actions: str = "[account.delete, account.deactivate]") -> str:
    """The example policy with a deny rule `protect` (its `when:` written as `when`, which
    starts right after `when:`) before the support rule."""
    rule = f"  - id: protect\n    effect: deny\n    actions: {actions}\n    when:{when}\n"
    return EXAMPLE.replace(ANCHOR, rule + ANCHOR, 1)


def refusal(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(text, CATALOG, file="proposed policy")
    return caught.value


# --- F4: folding ------------------------------------------------------------------------------

# The attack's condition, written in every YAML form that folds lines into one.
FOLDED = {
    ">": ' >\n      account.id == "chirp" // the platform\n      || account.id == "president"',
    ">-": ' >-\n      account.id == "chirp" // the platform\n      || account.id == "president"',
    ">+": ' >+\n      account.id == "chirp" // the platform\n      || account.id == "president"\n',
    ">2-": ' >2-\n      account.id == "chirp" // the platform\n      || account.id == "president"',
    "plain": ' account.id == "chirp" // the platform\n      || account.id == "president"',
    "plain on the next line": (
        '\n      account.id == "chirp" // the platform\n      || account.id == "president"'
    ),
    "single-quoted": (
        ' \'account.id == "chirp" // the platform\n      || account.id == "president"\''
    ),
    "double-quoted": (
        ' "account.id == \\"chirp\\" // the platform\n      || account.id == \\"president\\""'
    ),
    "double-quoted, escaped line end": (
        ' "account.id == \\"chirp\\" // the platform\\\n      || account.id == \\"president\\""'
    ),
    # No comment at all: a fold is refused whatever it holds (its lines are not its meaning).
    "> without a comment": ' >-\n      account.id == "chirp"\n      || account.id == "president"',
    "plain without a comment": ' account.id == "chirp"\n      || account.id == "president"',
}


@pytest.mark.parametrize("name", sorted(FOLDED))
def test_a_folded_condition_is_refused_naming_file_rule_and_line(name: str) -> None:
    error = refusal(with_rule(FOLDED[name]))
    assert error.file == "proposed policy"
    assert error.field == "rules[2].when", error.message
    assert error.line == WHEN_LINE, error.message
    assert "rule 'protect'" in error.message
    assert "never folded" in error.message, error.message
    assert "\n" not in error.message  # one line


@pytest.mark.parametrize("name", sorted(FOLDED))
def test_an_installed_folded_text_keeps_compiling_and_means_its_fold(name: str) -> None:
    """An installed version is compiled as it is (the rule holds new texts only); this is
    what the attack made: the comment swallowed the second line."""
    policy = parse_policy(with_rule(FOLDED[name]), CATALOG, file="policy v2")
    assert policy.rule("protect").condition.source


COMMENTED = {
    "literal block": ' |\n      account.id == "chirp" // the platform\n      || account.id == "x"',
    "literal block, comment on its own line": (
        ' |-\n      // the platform\n      account.id == "chirp"'
    ),
    "literal block keep": ' |+\n      account.id == "chirp"\n      // trailing note\n',
    "one plain line": ' account.id == "chirp" // the platform',
    "one single-quoted line": " 'account.id == \"chirp\" // the platform'",
    "a comment with no space": " 'account.id == \"chirp\"//x'",
    # A YAML escape decoding to `//`: held on the parsed value, not the source.
    "escaped slashes": ' "account.id == \\"chirp\\" \\x2f\\x2f || account.id == \\"x\\""',
    # `#` is no CEL: the lexer stops there, and any `//` is refused without lexing.
    "in a condition that does not lex": " 'account.id == \"chirp\" # x // y'",
}


@pytest.mark.parametrize("name", sorted(COMMENTED))
def test_a_cel_comment_is_refused_even_in_a_literal_block(name: str) -> None:
    error = refusal(with_rule(COMMENTED[name]))
    assert error.field == "rules[2].when", error.message
    assert "CEL comment" in error.message, error.message
    assert "rule 'protect'" in error.message


def test_the_refusal_names_the_line_of_the_comment_in_a_block() -> None:
    error = refusal(with_rule(' |\n      account.id == "chirp"\n      // note\n      || false'))
    assert error.line == WHEN_LINE + 2, error.message


def test_a_block_comment_is_no_cel() -> None:
    error = refusal(with_rule(" 'account.id == \"chirp\" /* the platform */'"))
    assert "does not compile" in error.message, error.message


@pytest.mark.parametrize(
    "when",
    [
        ' \'staff.region == "a//b" && account.id == "chirp"\'',
        ' \'staff.region == "http://x" && account.id == "chirp"\'',
        ' |\n      staff.region == "a // b"\n      && account.id == "chirp"',
        " |-\n      staff.region == r'//' && account.id == \"chirp\"",
        ' |\n      staff.region == """a//b""" && account.id == "chirp"',
    ],
)
def test_slashes_inside_a_string_literal_are_no_comment(when: str) -> None:
    policy = parse_new_policy(with_rule(when, "[account.login_as]"), CATALOG, file="p")
    assert policy.rule("protect")


def test_a_literal_block_over_several_lines_means_what_it_shows() -> None:
    when = ' |\n      account.id == "chirp"\n      || account.id == "president"'
    policy = parse_new_policy(with_rule(when, "[account.login_as]"), CATALOG, file="p")
    assert policy.rule("protect").condition.mentions[("account", "id")] == {"chirp", "president"}


# Every CEL-bearing field, folded: each refused (the compiler holds every condition).
FIELDS = {
    "tier": (
        "    when: account.verified\n",
        "    when: >-\n      account.verified\n",
        "tiers[1].when",
    ),
    "approvers": (
        "    approvers: '\"security\" in approver.groups'\n",
        '    approvers: >\n      "security" in approver.groups\n',
        "approvers",
    ),
    "break glass": (
        'allowed_when: \'staff.employment == "employee" && "trust-safety" in staff.groups\'',
        'allowed_when: "staff.employment == \\"employee\\"\n      && true"',
        "break_glass.allowed_when",
    ),
    "batch when": (
        '    when: \'"trust-safety" in staff.groups || "support" in staff.groups\'\n',
        '    when: >-\n      "trust-safety" in staff.groups || "support" in staff.groups\n',
        "batches[0].when",
    ),
    "invariant staff": (
        "    staff: '\"support\" in staff.groups'\n",
        '    staff: |\n      "support" in staff.groups // the support team\n',
        "invariants[2].staff",
    ),
}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_cel_field_is_held(name: str) -> None:
    before, after, field = FIELDS[name]
    assert before in EXAMPLE, name
    error = refusal(EXAMPLE.replace(before, after, 1))
    assert error.field is not None, error.message
    assert error.field.endswith(field), error.message


def test_escalate_to_and_exclude_are_held() -> None:
    rule = (
        "  - id: escalating\n"
        "    effect: require\n"
        "    actions: [account.unlock]\n"
        "    when: 'account.tier == \"vit\"'\n"
        "    approvals: 1\n"
        "    approvers: '\"security\" in approver.groups'\n"
        "    exclude: 'approver.id == requester.id'\n"
        "    escalate: {after: 30m, to: '\"leads\" in approver.groups'}\n"
    )
    assert parse_new_policy(EXAMPLE.replace(ANCHOR, rule + ANCHOR, 1), CATALOG, file="p")
    for before, after in (
        ("exclude: 'approver.id == requester.id'", "exclude: |\n      true // x"),
        ("to: '\"leads\" in approver.groups'", "to: '\"leads\"\n        in approver.groups'"),
    ):
        text = EXAMPLE.replace(ANCHOR, rule.replace(before, after) + ANCHOR, 1)
        assert refusal(text).field is not None


# --- F5: literals ----------------------------------------------------------------------------

EDGES = {
    "trailing space": ' \'account.id in ["chirp", "president "]\'',
    "leading space": " 'account.id in [\" president\"]'",
    "only a space": " 'staff.employment == \" \"'",
    "trailing tab, escaped": " 'account.id == \"president\\t\"'",
    "triple-quoted over two lines": ' |\n      account.id == """president\n      """',
    "raw with a trailing space": " 'account.id == r\"president \"'",
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_a_literal_with_edge_whitespace_is_refused(name: str) -> None:
    error = refusal(with_rule(EDGES[name]))
    assert error.field == "rules[2].when", error.message
    assert "whitespace" in error.message or "line break" in error.message, error.message


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (" 'account.id == \"president\t\"'", "tab"),  # a raw tab: the wording rule
        (" 'account.id == \"president\u00a0\"'", "U+00A0"),  # NBSP: not ASCII
    ],
)
def test_unseen_whitespace_in_a_literal_is_refused_by_the_wording_rule(
    when: str, reason: str
) -> None:
    assert reason in refusal(with_rule(when)).message


def policy_with(when: str) -> Policy:
    """A deny rule with `when` or, when it reads approver or requester, a require rule with
    it as its approvers."""
    if "approver." not in when and "requester." not in when:
        # A param is compared on an action that has it (`param_domains`).
        actions = (
            "[account.login_as, account.suspend]" if "params" in when else "[account.login_as]"
        )
        return parse_new_policy(with_rule(f" '{when}'", actions), CATALOG, file="p")
    rule = (
        "  - id: protect\n"
        "    effect: require\n"
        "    actions: [account.login_as]\n"
        "    when: 'true'\n"
        "    approvals: 1\n"
        f"    approvers: '{when}'\n"
    )
    return parse_new_policy(EXAMPLE.replace(ANCHOR, rule + ANCHOR, 1), CATALOG, file="p")


# Literals that read as a staff id of the directory and are not, wherever they stand.
LOOKALIKE_IDS = {
    "letters O": ('staff.id in ["c-1OO1", "c-3004"]', "c-1001"),
    "letter l": ('staff.id == "c-l001"', "c-1001"),
    "letter I": ('approver.id != "c-I001"', "c-1001"),
    "case": ('staff.id == "E-3001"', "e-3001"),
    "separator": ('requester.id == "e_3001"', "e-3001"),
    "manager": ('staff.manager == "e-3OO1"', "e-3001"),
    "in a macro": ('["c-1OO1"].exists(x, x == staff.id)', "c-1001"),
    "as the element": ('staff.id in ["c-3004"] || ["c-1OO1"].exists(x, staff.id == x)', "c-1001"),
    "in a function": ('params["reason"].startsWith("c-1OO1")', "c-1001"),
    "anywhere": ('staff.region == "e-3OOl"', "e-3001"),
}


@pytest.mark.parametrize("name", sorted(LOOKALIKE_IDS))
def test_a_literal_reading_as_a_staff_id_it_is_not_is_refused(name: str) -> None:
    when, like = LOOKALIKE_IDS[name]
    with pytest.raises(PolicyError) as caught:
        check_staff_literals(policy_with(when), DIRECTORY)
    error = caught.value
    assert f"reads as staff id {like!r}" in error.message, error.message
    assert error.field in ("rules[2].when", "rules[2].approvers")
    assert "rule 'protect'" in error.message


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ('staff.id == "c-9999"', "'c-9999' is compared with staff.id, but no one"),
        ('approver.id in ["e-3001", "x-1"]', "'x-1' is compared with approver.id, but no one"),
        ('staff.id == "ana"', "'ana' is compared with staff.id, but it is a login of 'e-2001'"),
        ('requester.manager == "e-0002"', "requester.manager, but no one"),
        ('staff.id == "c-" + "9999"', "'c-9999' is compared with staff.id"),
        ('staff.id in ["e-3001"] + ["c-9"]', "'c-9' is compared"),
    ],
)
def test_a_literal_compared_with_a_staff_id_names_someone(when: str, reason: str) -> None:
    with pytest.raises(PolicyError, match="") as caught:
        check_staff_literals(policy_with(when), DIRECTORY)
    assert reason in caught.value.message, caught.value.message


@pytest.mark.parametrize(
    "when",
    [
        'staff.id in ["c-1001", "c-3004"]',
        'approver.id != "e-3001" && requester.manager == "e-9001"',
        '"trust-safety" in staff.groups',
        '"auditors" in staff.groups',  # held by no one yet: reported, not refused
        'staff.employment == "contractor"',
    ],
)
def test_literals_that_name_what_they_say_pass(when: str) -> None:
    check_staff_literals(policy_with(when), DIRECTORY)


@pytest.mark.parametrize(
    ("when", "like"),
    [
        ('"trust_safety" in staff.groups', "trust-safety"),
        ('"Support" in approver.groups', "support"),
        ('staff.groups.exists(g, g == "1eads")', "leads"),
        ('["5ecurity"].exists(g, g in requester.groups)', "security"),
    ],
)
def test_a_group_reading_as_a_held_one_is_refused(when: str, like: str) -> None:
    with pytest.raises(PolicyError) as caught:
        check_staff_literals(policy_with(when), DIRECTORY)
    assert f"reads as group {like!r}" in caught.value.message, caught.value.message


def test_a_group_no_one_holds_is_reported() -> None:
    policy = policy_with('"auditors" in staff.groups')
    assert [item.value for item in unheld_groups(policy, DIRECTORY)] == ["auditors"]


def test_the_account_names_compared_are_listed_once() -> None:
    policy = policy_with('account.id in ["chirp", "President"] || account.ref == "chirp:chirp"')
    assert [(".".join(i.path), i.value) for i in account_literals(policy)] == [
        ("account.id", "chirp"),
        ("account.id", "President"),
        ("account.ref", "chirp:chirp"),
    ]


def test_an_empty_directory_refuses_every_staff_id() -> None:
    empty = Directory(staff={})
    with pytest.raises(PolicyError, match="no one in the directory"):
        check_staff_literals(policy_with('staff.id == "e-3001"'), empty)


def test_someone_hired_with_the_id_makes_it_pass() -> None:
    hired = Staff(id="x-7777", name="New Hire", email="n@chirp.example", employment="employee")
    directory = Directory(staff={**DIRECTORY.staff, "x-7777": hired})
    check_staff_literals(policy_with('staff.id == "x-7777"'), directory)


# --- policy check (offline) ------------------------------------------------------------------


def check(tmp_path: Path, text: str, *extra: str) -> tuple[int, str]:
    path = tmp_path / "proposed.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["policy", "check", str(path), *extra], env={"COLUMNS": "250"})
    return result.exit_code, result.stdout + result.stderr


def test_policy_check_refuses_the_fold_naming_file_rule_and_line(tmp_path: Path) -> None:
    code, out = check(tmp_path, with_rule(FOLDED[">-"]))
    assert code == 2, out
    assert f"proposed.yaml:{WHEN_LINE}: rules[2].when: rule 'protect': a condition is" in out


def test_policy_check_refuses_a_lookalike_id_with_the_directory(tmp_path: Path) -> None:
    text = with_rule(" 'staff.id in [\"c-1OO1\"]'", "[account.login_as]")
    code, out = check(tmp_path, text, "--staff", str(EXAMPLES / "staff.yaml"))
    assert code == 2, out
    assert "'c-1OO1' reads as staff id 'c-1001', which it is not" in out
    code, out = check(tmp_path, text)
    assert "warn the staff ids the conditions compare with are not checked" in out, out


def test_policy_check_lists_the_account_names_it_cannot_look_up(tmp_path: Path) -> None:
    text = with_rule(' \'account.id in ["chirp", "President"]\'', "[account.login_as]")
    code, out = check(tmp_path, text, "--staff", str(EXAMPLES / "staff.yaml"))
    assert code == 0, out
    assert "account name 'President' (account.id) is looked up on its platform only" in out


# --- at submission (SQLite and PostgreSQL) and at execution ----------------------------------


def counts(database: Database) -> tuple[int, int]:
    with database.transaction() as session:
        requests = session.scalar(select(func.count()).select_from(RequestRow))
        versions = session.scalar(select(func.count()).select_from(PolicyVersionRow))
    return int(requests or 0), int(versions or 0)


def proposal(text: str) -> dict[str, object]:
    return {
        "action": "foureyes.policy.update",
        "account": "foureyes:policy",
        "params": {"text": text},
        "justification": "SEC-12 protect the president",
    }


@pytest.mark.parametrize(
    ("when", "slug", "reason"),
    [
        (FOLDED[">-"], "invalid-policy", "never folded"),
        (FOLDED["plain"], "invalid-policy", "never folded"),
        (FOLDED["double-quoted"], "invalid-policy", "never folded"),
        (COMMENTED["literal block"], "invalid-policy", "CEL comment"),
        (EDGES["trailing space"], "invalid-policy", "whitespace"),
        (' \'staff.id in ["c-1OO1", "c-3004"]\'', "invalid-policy", "reads as staff id 'c-1001'"),
        (' \'account.id in ["chirp", "President"]\'', "bad-input", "'President' is compared"),
        (" 'account.ref == \"chirp:President\"'", "bad-input", "chirp has no such account"),
        (" 'account.ref == \"nowhere:president\"'", "bad-input", "no platform 'nowhere'"),
    ],
)
def test_the_server_refuses_them_at_submission_recording_nothing(
    api: Api, when: str, slug: str, reason: str
) -> None:
    database = api.world.services.database
    before = counts(database)
    text = with_rule(when, "[account.login_as]")
    body = assert_problem(api.submit(JO, **proposal(text)), 422, slug)
    assert reason in body["detail"], body["detail"]
    assert counts(database) == before


def test_exact_account_names_are_accepted_at_submission(api: Api) -> None:
    when = ' \'account.id in ["chirp", "president"] || account.ref == "foureyes:policy"\''
    made = api.submit(JO, **proposal(with_rule(when, "[account.login_as]")))
    assert made.status_code == 201, made.text


def test_an_approved_update_naming_no_account_fails_at_execution(database: Database) -> None:
    """A request accepted before this rule reaches execution: held there, no version made."""
    world = make_world(database)
    governance = world.services.connectors[FOUREYES_PLATFORM]
    assert isinstance(governance, GovernanceConnector)
    text = with_rule(' \'account.id in ["chirp", "President"]\'', "[account.login_as]")
    order = ExecutionOrder(
        "foureyes.policy.update",
        "policy",
        {"text": text},
        idempotency_key="req-held",
        approvers=("e-4001",),
        requester=JO,
    )
    with pytest.raises(ConnectorError, match=r"'President' is compared with account\.id"):
        governance.execute(order)
    assert counts(database)[1] == 1


def test_an_account_lookup_that_fails_is_no_pass(database: Database) -> None:
    """A platform that cannot answer: Unavailable (tried again), never taken for found."""
    world = make_world(database)
    chirp = world.services.connectors["chirp"]

    def down(_account_id: str) -> None:
        raise ConnectorError("chirp is down", transient=True)

    name = AccountName("president", "account.id", "rule 'protect'")
    original = chirp.lookup
    try:
        chirp.lookup = down  # type: ignore[method-assign,assignment]
        with pytest.raises(Exception, match="cannot be looked up now"):
            check_account_names(world.services.connectors, [name])
    finally:
        chirp.lookup = original  # type: ignore[method-assign]
    check_account_names(world.services.connectors, [name])
