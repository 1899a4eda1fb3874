"""A policy author hides a weakening where the invariant prover did not look.

The repro: the VIT rules stop applying to one account (`account.id != "president"`) and the
trust & safety rule lets one person deactivate exactly that account. The prover used to try one
made-up account and no account ids, so `policy check` said "ok", `policy diff` said "No decision
changes" and the update was accepted; once approved, one person alone deactivated
chirp:president. Each attack here must now fail: the prover finds the case (exit 1, the update
refused) or says it cannot enumerate the condition (exit 1, the update refused), never "ok".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES

runner = CliRunner()
POLICY = str(EXAMPLES / "policy.yaml")
STAFF = str(EXAMPLES / "staff.yaml")
TEXT = (EXAMPLES / "policy.yaml").read_text()
TRUST_SAFETY = '    when: \'"trust-safety" in staff.groups && account.tier != "vit"\'\n'
VIT = "    when: 'account.tier == \"vit\"'\n"
SIGNIFICANT = VIT + "    approvals: 2\n    approvers: >-"
SIGN_OFF = VIT + '    approvals: 1\n    approvers: \'"security"'


def weakened(hole: str, extra_rule: str = "") -> str:
    """The example policy, with the VIT rules skipping the cases where `hole` holds and the
    trust & safety rule allowing exactly those (the issue's three changed conditions)."""
    text = TEXT.replace(
        TRUST_SAFETY,
        f'    when: \'"trust-safety" in staff.groups && (account.tier != "vit" || {hole})\'\n',
        1,
    )
    for rule in (SIGNIFICANT, SIGN_OFF):
        guarded = f"    when: 'account.tier == \"vit\" && !({hole})'\n"
        text = text.replace(rule, rule.replace(VIT, guarded), 1)
    assert text.count(f"!({hole})") == 2, hole
    return text.replace("\nquotas:", extra_rule + "\nquotas:", 1)


# The exact text.
REPRO = (
    TEXT.replace(
        TRUST_SAFETY,
        '    when: \'"trust-safety" in staff.groups && (account.tier != "vit" '
        '|| account.id == "president")\'\n',
        1,
    )
    .replace(
        SIGNIFICANT,
        SIGNIFICANT.replace(
            VIT, '    when: \'account.tier == "vit" && account.id != "president"\'\n'
        ),
        1,
    )
    .replace(
        SIGN_OFF,
        SIGN_OFF.replace(VIT, '    when: \'account.tier == "vit" && account.id != "president"\'\n'),
        1,
    )
)
# Deny the full set of groups, so that only a subset of three of them reaches the hole: the
# prover once took subsets of at most two beyond ten values, and the full set.
_MANY_GROUPS_DENY = """
  - id: deny-many-groups
    effect: deny
    actions: [account.deactivate]
    when: >-
      "g4" in staff.groups || "g5" in staff.groups || "g6" in staff.groups || "g7" in staff.groups
      || "g8" in staff.groups || "g9" in staff.groups || "g10" in staff.groups
"""

# Holes the enumeration covers: the prover must find the case.
FOUND = {
    "account.ref": ('account.ref == "chirp:president"', ""),
    "account.platform": ('account.platform == "synapse"', ""),
    "params": ('params.reason == "urgent"', ""),
    "staff.id in the directory": ('staff.id == "e-3001"', ""),
    "staff.id of someone not hired yet": ('staff.id == "x-7777"', ""),
    "a numeric range": ("account.followers > 3 && account.followers < 5", ""),
    "a range of days left": ("staff.days_left > 400 && staff.days_left < 402", ""),
    "a list of more than ten literals": (
        'account.handle in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "potus"]',
        "",
    ),
    "a subset of many groups": ('"g1" in staff.groups && "g2" in staff.groups', _MANY_GROUPS_DENY),
    "an hour of the day": ("context.hour > 3 && context.hour < 5", ""),
}
# Holes it cannot enumerate: the prover must refuse, naming the rule and the construct.
REFUSED = {
    "matches()": ('account.id.matches("^pres")', "calls matches()"),
    "two attributes": ("staff.id == account.id", "compares staff.id with account.id"),
    "string ordering": ('account.handle > "m"', "orders strings"),
    "size()": ("size(staff.groups) > 3", "calls size()"),
    "has()": ("has(params.reason)", "has()"),
    "arithmetic": ("account.followers * 2 == 6", "computes with '*'"),
}


def run(tmp_path: Path, text: str, *command: str) -> tuple[int, str]:
    path = tmp_path / "weak.yaml"
    path.write_text(text)
    args = [arg.replace("WEAK", str(path)) for arg in command]
    result = runner.invoke(app, ["policy", *args], env={"COLUMNS": "250"})
    return result.exit_code, result.stdout + result.stderr


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    return run(tmp_path, text, "check", "WEAK", "--staff", STAFF)


def diff(tmp_path: Path, text: str) -> tuple[int, str]:
    return run(tmp_path, text, "diff", POLICY, "WEAK")


def test_the_reported_policy_fails_the_check_and_the_diff_shows_the_change(
    tmp_path: Path,
) -> None:
    code, out = check(tmp_path, REPRO)
    assert code == 1, out
    assert "ok   invariant no-lone-vit-deactivation" not in out
    assert "FAIL invariant no-lone-vit-deactivation violated" in out
    assert "chirp:president" in out

    code, out = diff(tmp_path, REPRO)
    assert "No decision changes" not in out
    assert "refused: invariant no-lone-vit-deactivation violated" in out
    assert "account.deactivate" in out
    assert "pending (4 people)" in out
    assert "allowed" in out
    assert "chirp:president" in out


def test_the_reported_policy_is_refused_as_an_update(api: Api) -> None:
    """The issue's route: submitted as foureyes.policy.update, it must be refused at once, so
    nobody can approve it; chirp:president still needs four people."""
    refused = api.submit(
        "e-9001",
        action="foureyes.policy.update",
        account="foureyes:policy",
        params={"text": REPRO},
        justification="INC-11",
    )
    problem = assert_problem(refused, 422, "bad-input")
    assert "breaks an invariant" in problem["detail"]
    assert "no-lone-vit-deactivation" in problem["detail"]
    assert "chirp:president" in problem["detail"]

    act = api.submitted(
        "e-3001",
        action="account.deactivate",
        account="chirp:president",
        params={},
        justification="CASE-11",
    )
    assert act["state"] == "pending"
    assert [f["missing"] for f in act["decision"]["factors"]] == [2, 1]
    assert api.world.chirp("president")["status"] == "active"


@pytest.mark.parametrize(("hole", "extra"), list(FOUND.values()), ids=list(FOUND))
def test_a_hidden_weakening_is_found(tmp_path: Path, hole: str, extra: str) -> None:
    text = weakened(hole, extra)
    code, out = check(tmp_path, text)
    assert code == 1, out
    assert "FAIL invariant no-lone-vit-deactivation violated" in out, out
    assert "ok   invariant no-lone-vit-deactivation" not in out


@pytest.mark.parametrize(("hole", "reason"), list(REFUSED.values()), ids=list(REFUSED))
def test_a_condition_the_prover_cannot_enumerate_is_refused(
    tmp_path: Path, hole: str, reason: str
) -> None:
    text = weakened(hole)
    code, out = check(tmp_path, text)
    assert code == 1, out
    assert "FAIL cannot prove no-lone-vit-deactivation: rule " in out, out
    assert "weak.yaml:" in out
    assert reason in out
    assert "which the analysis cannot enumerate" in out
    assert "ok   invariant" not in out

    code, out = diff(tmp_path, text)
    assert code == 1, out
    assert "No decision changes." not in out
    assert "unknown: cannot compare account.deactivate" in out
    assert "refused: cannot prove no-lone-vit-deactivation" in out


@pytest.mark.parametrize(
    "hole",
    [FOUND["account.ref"][0], FOUND["params"][0], REFUSED["matches()"][0]],
    ids=["account.ref", "params", "matches()"],
)
def test_a_variant_is_refused_as_an_update(api: Api, hole: str) -> None:
    refused = api.submit(
        "e-9001",
        action="foureyes.policy.update",
        account="foureyes:policy",
        params={"text": weakened(hole)},
        justification="INC-12",
    )
    problem = assert_problem(refused, 422, "bad-input")
    assert "no-lone-vit-deactivation" in problem["detail"]


def test_a_changed_approvers_condition_is_a_decision_change(tmp_path: Path) -> None:
    """Who may approve is not enumerated, so the diff reports any change of it."""
    text = TEXT.replace(
        "approvers: '\"security\" in approver.groups'\n",
        'approvers: \'"security" in approver.groups || "leads" in approver.groups\'\n',
        1,
    )
    assert text != TEXT
    code, out = diff(tmp_path, text)
    assert code == 0, out
    assert "No decision changes" not in out
    assert "approvers:" in out
    assert "leads" in out
