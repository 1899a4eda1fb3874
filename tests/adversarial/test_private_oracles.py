"""The third attack run, against private values: each way a member of staff without
need-to-know learned a private value past the redaction, performed as they did it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.core.redaction import shown_fields
from foureyes.errors import BadInput
from foureyes.policy.conditions import describe_error
from foureyes.workflow import decide, views
from tests.api.conftest import Api
from tests.conftest import EXAMPLES

GUESS = "someone.else@mail.example"


def test_the_check_preview_does_not_say_whether_a_guess_of_an_email_is_right(api: Api) -> None:
    """Kim's Check of `account.change_email` on the president showed a change for every guess
    but the right one: a silent yes/no test of the address."""
    services = api.world.services
    current = api.world.chirp("president")["email"]
    right = views.preview(services, "account.change_email", "chirp:president", {"email": current})
    wrong = views.preview(services, "account.change_email", "chirp:president", {"email": GUESS})
    assert right.keys() == wrong.keys()
    assert right["email"][0] == wrong["email"][0] == "***"  # never derived from the account
    assert current not in repr(right)
    assert current not in repr(wrong)


def test_values_in_lists_and_under_other_spellings_are_redacted(api: Api) -> None:
    """A receiver's summary with the address one list down, or under `Email`, reached the
    result and the audit log in the clear."""
    services = api.world.services
    summary = {
        "notified": [{"email": "alice.secret@home.example", "aliases": ["x"]}],
        "Email": "bob.secret@home.example",
        "PHONE": "+44 7700 900456",
    }
    shown = repr(shown_fields(services, "chirp", summary))
    for secret in ("alice.secret", "bob.secret", "7700 900456"):
        assert secret not in shown


def test_a_condition_error_does_not_quote_the_value_it_failed_on() -> None:
    """A tier `int(account.account_number) > 0` answered `int() cannot parse 'B-77-SECRET'`
    in the account view, dry runs and the audit log (tests/unit/policy/test_conditions.py
    holds the same for both evaluators)."""
    reason = describe_error(ValueError("int() cannot parse 'B-77-SECRET-4411'"))
    assert "SECRET" not in reason
    assert reason.startswith("ValueError: int() cannot parse")


def test_a_refused_params_message_does_not_quote_the_value(api: Api) -> None:
    """An undo's restored phone number appeared in the 422 (and in `request.refused`) when the
    action's rules were tightened after the original ran."""
    with pytest.raises(BadInput) as caught:
        decide.check_payload(
            api.world.services,
            "account.change_email",
            "chirp:bob",
            {"email": "x" * 300 + "-SECRET@mail.example"},
        )
    assert "SECRET" not in caught.value.message
    assert "maxLength" in caught.value.message


ORACLE_TIERS = """\
tiers:
  - name: government
    when: account.email == "head-of-state@gov.example"
"""
ORACLE_RULE = """\
  - id: own-address-is-cheap
    effect: allow
    actions: [account.change_email]
    when: '"support" in staff.groups && params.email == account.email'
"""


def test_policy_check_names_every_condition_that_answers_about_a_private_value(
    tmp_path: Path,
) -> None:
    """A dry run of a policy whose tier reads the account's email answers, for any account,
    whether that is its address; a rule comparing `params.email` with it lets
    anyone test guesses. The decision is the answer, so foureyes cannot hide the bit:
    `policy check` names each such condition, with file and line, and says which kind."""
    text = (EXAMPLES / "policy.yaml").read_text()
    text = text.replace(
        "tiers:                      # first match wins; conditions are CEL over `account`\n",
        ORACLE_TIERS,
        1,
    )
    text = text.replace("rules:\n", "rules:\n" + ORACLE_RULE, 1)
    path = tmp_path / "oracle.yaml"
    path.write_text(text)

    def check(policy: Path, exit_code: int = 0) -> list[str]:
        result = CliRunner().invoke(
            app,
            ["policy", "check", str(policy), "--staff", str(EXAMPLES / "staff.yaml")],
            env={"COLUMNS": "300"},
        )
        assert result.exit_code == exit_code, result.stdout
        return [line for line in result.stdout.splitlines() if line.startswith("warn ")]

    # The prover refuses the rule (it cannot enumerate two attributes compared), yet the
    # warnings come all the same: they are about dry runs, not invariants.
    warned = check(path, exit_code=1)
    assert len(warned) == 2, warned
    tier, rule = warned
    assert f"tier government ({path}:" in tier
    assert "reads private account.email so every dry run answers one bit" in tier
    assert f"rule own-address-is-cheap ({path}:" in rule
    assert "every dry run tests a guess of the value" in rule
    only_the_tier = tmp_path / "tier.yaml"
    only_the_tier.write_text(text.replace(ORACLE_RULE, "", 1))
    assert check(only_the_tier) == [tier.replace(str(path), str(only_the_tier))]
    assert check(EXAMPLES / "policy.yaml") == []  # the example decides on public values only
