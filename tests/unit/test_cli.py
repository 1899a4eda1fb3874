"""The `foureyes policy` commands, run as a user would run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from tests.conftest import EXAMPLES

runner = CliRunner()
POLICY = str(EXAMPLES / "policy.yaml")
STAFF = str(EXAMPLES / "staff.yaml")


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def weakened(tmp_path: Path) -> Path:
    """The example, but security staff may deactivate a VIT account with one colleague."""
    text = (EXAMPLES / "policy.yaml").read_text()
    text = text.replace(
        "    when: 'account.tier == \"vit\"'\n"
        "    approvals: 2\n    approvers: 'approver.employment",
        '    when: \'account.tier == "vit" && !("security" in staff.groups)\'\n'
        "    approvals: 2\n    approvers: 'approver.employment",
        1,
    )
    assert "security\" in staff.groups)'" in text
    path = tmp_path / "weak.yaml"
    path.write_text(text)
    return path


def test_check_passes_on_the_example() -> None:
    code, out, _ = run("policy", "check", POLICY, "--staff", STAFF)
    assert code == 0
    assert "ok   invariant no-lone-vit-deactivation" in out
    assert "ok   invariant nobody-in-support-reads-dms" in out


def test_check_fails_on_a_weakened_policy_with_a_counterexample(tmp_path: Path) -> None:
    code, out, _ = run("policy", "check", str(weakened(tmp_path)), "--staff", STAFF)
    assert code == 1
    assert "FAIL invariant no-lone-vit-deactivation violated" in out
    assert "staff e-4001 can account." in out  # Ines, security
    assert "pending by 2 people" in out


def test_test_runs_the_embedded_tests() -> None:
    code, out, _ = run("policy", "test", POLICY)
    assert code == 0
    assert "PASSED the 2017 incident is held for approval" in out
    assert "9 passed, 0 failed" in out


def test_test_reports_a_failing_test(tmp_path: Path) -> None:
    text = (
        (EXAMPLES / "policy.yaml")
        .read_text()
        .replace("expect: {outcome: allowed}", "expect: {outcome: pending}")
    )
    path = tmp_path / "p.yaml"
    path.write_text(text)
    code, out, _ = run("policy", "test", str(path))
    assert code == 1
    assert "FAILED support locks an ordinary account alone" in out
    assert "outcome: expected pending, got allowed" in out


def test_explain_the_2017_request() -> None:
    code, out, _ = run(
        "policy",
        "explain",
        POLICY,
        "--staff",
        "c-1001",
        "--action",
        "account.deactivate",
        "--account",
        "chirp:president",
        "--staff-file",
        STAFF,
    )
    assert code == 0
    assert "PENDING: 3 approvals needed, 4 people in all" in out
    assert "rule vit-significant-changes requires 2 approvals" in out
    assert "rule vit-security-sign-off requires 1 approval" in out
    assert "could approve: e-3002, e-3003, e-9001" in out  # not e-3001: Kim's manager
    assert "could approve: e-4001" in out


def test_explain_finds_people_by_any_identity() -> None:
    code, out, _ = run(
        "policy",
        "explain",
        POLICY,
        "--staff",
        "kim.vendor",
        "--action",
        "account.lock",
        "--account",
        "chirp:bob",
        "--staff-file",
        STAFF,
    )
    assert code == 0
    assert "ALLOWED" in out


def explain_president(accounts: Path) -> tuple[int, str, str]:
    return run(
        "policy", "explain", POLICY, "--staff", "e-3001", "--action", "account.deactivate",
        "--account", "chirp:president", "--staff-file", STAFF, "--accounts", str(accounts),
    )  # fmt: skip


def test_explain_reads_a_file_of_accounts_alone(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("accounts:\n  - {id: president, followers: 5}\n")
    code, out, _ = explain_president(accounts)
    assert code == 0
    assert "tier standard" in out  # 5 followers: not the head of state we know


def test_explain_names_an_attribute_the_policy_does_not_know(tmp_path: Path) -> None:
    """Nested `attributes:` (as a policy test would write them) was a traceback."""
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("accounts:\n  - id: president\n    attributes: {followers: 5}\n")
    code, out, err = explain_president(accounts)
    assert (code, out) == (2, "")
    assert err.startswith(f"foureyes: {accounts}: account 'president': unknown account ")
    assert "Traceback" not in err
    assert "followers" in err  # what it knows, so the fix is obvious


def test_diff_names_what_changes(tmp_path: Path) -> None:
    code, out, _ = run("policy", "diff", POLICY, str(weakened(tmp_path)))
    assert code == 1  # an update foureyes would refuse: the exit status can gate it
    assert "account.deactivate" in out
    assert "pending (4 people)" in out
    assert "pending (2 people)" in out
    assert "refused: invariant no-lone-vit-deactivation violated" in out


def test_diff_of_a_policy_with_itself_is_empty() -> None:
    code, out, _ = run("policy", "diff", POLICY, POLICY)
    assert code == 0
    assert "No decision changes." in out
    assert "refused" not in out


def test_schema_is_json() -> None:
    code, out, _ = run("policy", "schema")
    assert code == 0
    assert json.loads(out)["title"] == "foureyes policy"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("version: 1\ntiers: [\n", "bad.yaml:3: malformed YAML"),
        ("version: 1\ntiers:\n  - {name: x, when: 'account.nope'}\n", "bad.yaml:3: tiers[0].when"),
        (
            "version: 1\ntiers:\n  - {name: x, when: 'true'}\nrules:\n  - {id: r, effect: allow, "
            "actions: [account.zap]}\n",
            "bad.yaml:5: rules[0].actions[0]: unknown action",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_loaded(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    for command in ("check", "test"):
        code, out, err = run("policy", command, str(path))
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1
        assert expected in err


def test_a_missing_file_is_a_diagnosis() -> None:
    code, _, err = run("policy", "check", "/nonexistent/policy.yaml")
    assert code == 2
    assert "cannot read" in err


def test_the_matrix_policy_checks_against_the_synapse_catalog() -> None:
    matrix = str(EXAMPLES / "matrix-policy.yaml")
    code, out, _ = run("policy", "check", matrix, "--connector", "synapse")
    assert code == 0
    assert "ok   invariant no-lone-vit-deactivation" in out
    code, out, _ = run("policy", "test", matrix, "--connector", "synapse")
    assert code == 0
    code, _, err = run("policy", "check", matrix)  # chirp accounts have no Matrix attributes
    assert code == 2
    assert "matrix-policy.yaml:" in err
    code, _, err = run("policy", "check", matrix, "--connector", "mastodon")
    assert code == 2
    assert "no catalog for connector 'mastodon'" in err
