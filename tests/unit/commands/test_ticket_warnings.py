"""A rule requiring a ticket system that is not configured refuses every request it matches:
`foureyes policy check` and `foureyes init` warn about it (routing issue #21, second pass)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from foureyes.cli import app
from tests.conftest import EXAMPLES

runner = CliRunner()
RT_RULE = """
  - id: suspend-with-ticket
    effect: require
    actions: [account.unsuspend]  # none of the example's own tests unsuspends: they still pass
    when: '"trust-safety" in staff.groups'
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
    justification: {ticket: rt}
"""


def _policy(tmp_path: Path) -> Path:
    text = (EXAMPLES / "policy.yaml").read_text()
    assert "\nrules:\n" in text
    path = tmp_path / "tickets.yaml"
    path.write_text(text.replace("\nrules:\n", "\nrules:" + RT_RULE, 1))
    return path


def _run(*args: str) -> tuple[int, str]:
    env = {"COLUMNS": "250", "FOUREYES_DATA_DIR": None, "FOUREYES_DATABASE_URL": None}
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout + result.stderr


def test_policy_check_warns_of_a_ticket_system_the_settings_lack(tmp_path: Path) -> None:
    policy = str(_policy(tmp_path))
    data = tmp_path / "data"
    data.mkdir()
    (data / "foureyes.toml").write_text('[tickets.desk]\nkind = "http"\nurl = "https://x"\n')
    code, out = _run("policy", "check", policy, "--data-dir", str(data))
    assert code == 0  # a warning: the policy may be checked before the system is set up
    assert "warn rule suspend-with-ticket requires a rt ticket" in out
    assert "no [tickets.rt] is configured" in out
    (data / "foureyes.toml").write_text(
        '[tickets.rt]\nkind = "rt"\nurl = "https://rt.example"\ntoken_env = "RT_TOKEN"\n'
    )
    code, out = _run("policy", "check", policy, "--data-dir", str(data))
    assert code == 0
    assert "[tickets.rt]" not in out


def test_policy_check_without_settings_says_the_ticket_system_was_not_checked(
    tmp_path: Path,
) -> None:
    code, out = _run("policy", "check", str(_policy(tmp_path)), "--data-dir", str(tmp_path / "n"))
    assert code == 0
    assert "requires a rt ticket: configure [tickets.rt]" in out
    assert "not checked" in out
    code, out = _run("policy", "check", str(EXAMPLES / "policy.yaml"))
    assert "ticket" not in out  # no rule requires one: nothing said


def test_init_warns_of_the_first_policys_ticket_systems(tmp_path: Path) -> None:
    code, out = _run("init", "--data-dir", str(tmp_path / "d"), "--policy", str(_policy(tmp_path)))
    assert code == 0, out
    assert "foureyes initialised" in out
    assert "warn rule suspend-with-ticket requires a rt ticket" in out
