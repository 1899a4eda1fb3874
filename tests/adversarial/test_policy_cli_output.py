"""`foureyes policy …` on someone else's policy (attack F4 of the second policy-text round).

`policy test` printed each test's name with Rich markup on and terminal codes raw: a proposed
policy whose names carried `\\e7`/`\\e8` (save and restore the cursor), `\\e[J` (erase) and
`\\e[8m` (conceal) made its two failing tests, and the real "7 passed, 2 failed", read as nine
PASSED lines and "9 passed, 0 failed"; a name with `[/conceal]` crashed it with a MarkupError.

Now a proposed file is read as a new text (ESC, CR and other unseen characters in any value are
refused before anything is printed: exit 2, the line named), and whatever is printed of a
policy (test names, invariant ids, reasons, conditions, notify targets, diff rows) is escaped
with markup off, so markup in a name is text; `explain` and `diff`'s old file read installed
texts as they are, and print them escaped.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.commands import textview
from foureyes.model import Outcome
from foureyes.policy.decision import ConditionFailure, Decision, Options
from tests.conftest import EXAMPLES

EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
STAFF = str(EXAMPLES / "staff.yaml")
FIRST_TEST = "  - name: the 2017 incident is held for approval\n"
LAST_DAY = "  - name: on the last day it is refused outright\n"
RULE = """    when: 'staff.employment == "contractor" && staff.days_left <= 2'\n"""
# A valid but wrong value (a value outside the domain is refused before the tests run).
TYPO = """    when: 'staff.employment == "employee" && staff.days_left <= 2'\n"""
ESC = "\x1b"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def written(tmp_path: Path, text: str, name: str = "proposed.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def renamed(name: str, text: str = EXAMPLE, test: str = FIRST_TEST) -> str:
    """`text` with one test's name replaced by `name` (a YAML double-quoted scalar)."""
    assert test in text
    return text.replace(test, f'  - name: "{name}"\n', 1)


# The attack's names (h4.yaml), in YAML double-quoted form.
HIDING = {
    "save cursor": "on the last day it is refused outright\\e[0G\\e7",
    "restore, erase, fake PASSED": "\\e8\\e[J\\e[32mPASSED\\e[0m on the last day\\n"
    "\\e[32mPASSED\\e[0m deleting",
    "fake summary and conceal": "x\\n\\e[1m9 passed, 0 failed\\e[0m\\e[8m",
    "OSC 8 link": "\\e]8;;https://evil.example\\e\\\\click\\e]8;;\\e\\\\",
    "carriage return": "FAILED\\rPASSED",
    "C1 CSI": "x\\x9b2J",
    "bell": "x\\a",
    "backspace": "FAILED\\b\\b\\b\\b\\b\\bPASSED",
}


@pytest.mark.parametrize("command", ["test", "check", "diff"])
@pytest.mark.parametrize("case", sorted(HIDING))
def test_a_proposed_name_with_terminal_codes_is_refused_before_anything_is_printed(
    tmp_path: Path, command: str, case: str
) -> None:
    path = written(tmp_path, renamed(HIDING[case], EXAMPLE.replace(RULE, TYPO, 1)))
    args = (
        ["policy", command, path]
        if command != "diff"
        else ["policy", "diff", str(EXAMPLES / "policy.yaml"), path]
    )
    code, out, err = run(*args)
    assert code == 2, (out, err)
    assert out == ""
    assert ESC not in err
    assert "\r" not in err
    assert "\x9b" not in err
    assert f"{path}:{EXAMPLE.splitlines(keepends=True).index(FIRST_TEST) + 1}: tests[0].name" in err


MARKUP = {
    "closing conceal": "x[/conceal]",
    "conceal": "[conceal]the 2017 incident is held for approval",
    "colour": "[green]PASSED[/green] on the last day it is refused outright",
    "link": "[link=https://evil.example]click[/link]",
    "bold summary": "[bold]9 passed, 0 failed[/bold]",
    "bracket soup": "[[/]][/][//][@click=app.quit]",
}


@pytest.mark.parametrize("case", sorted(MARKUP))
def test_markup_in_a_test_name_is_printed_as_text_and_crashes_nothing(
    tmp_path: Path, case: str
) -> None:
    """ASCII only, so the wording rule lets it through: the printing must not read it."""
    name = MARKUP[case]
    text = renamed(name, EXAMPLE.replace(RULE, TYPO, 1), LAST_DAY)
    code, out, err = run("policy", "test", written(tmp_path, text))
    assert code == 1, (out, err)
    assert f"FAILED {name}\n" in out  # shown as written, beside its real verdict
    assert "7 passed, 2 failed" in out
    assert "Traceback" not in out + err


def test_a_very_long_name_is_printed_whole_and_escaped(tmp_path: Path) -> None:
    name = "[red]" + "a" * 5000 + "[/red]"
    code, out, _ = run("policy", "test", written(tmp_path, renamed(name)))
    assert code == 0, out
    assert f"PASSED {name}\n" in out


def test_check_runs_the_policys_own_tests(tmp_path: Path) -> None:
    """F1's effect in plain ASCII: no invariant covers it; its own tests do, as the server's
    check runs them."""
    code, out, _ = run(
        "policy", "check", written(tmp_path, EXAMPLE.replace(RULE, TYPO, 1)), "--staff", STAFF
    )
    assert code == 1, out
    assert "FAIL test on the last day it is refused outright: outcome: expected denied" in out
    assert "FAIL test a departing contractor's batch suspends nothing" in out
    code, out, _ = run("policy", "check", str(EXAMPLES / "policy.yaml"), "--staff", STAFF)
    assert code == 0, out


def test_check_and_test_refuse_the_look_alike_letters(tmp_path: Path) -> None:
    """F1 itself, which `policy check` called ok."""
    homoglyph = RULE.replace('"contractor"', '"\u0441\u043entractor"')
    path = written(tmp_path, EXAMPLE.replace(RULE, homoglyph, 1))
    for command in ("check", "test"):
        code, out, err = run("policy", command, path)
        assert code == 2, (out, err)
        assert (
            "rules[1].when: the text holds U+0441 CYRILLIC SMALL LETTER ES: outside descriptions"
            " and test names a policy is written in printable ASCII"
        ) in err


# An installed text is read as it is (explain, diff's old side): what it says is printed escaped.
SUPPORT = """    when: '"support" in staff.groups && account.tier == "standard"'\n"""
INSTALLED = EXAMPLE.replace(
    SUPPORT,
    SUPPORT + '    notify: ["\\e[2J\\e]8;;https://evil.example\\e\\\\[/conceal]\\r"]\n',
    1,
)


def test_explain_prints_an_installed_policys_text_escaped(tmp_path: Path) -> None:
    path = written(tmp_path, INSTALLED, "live.yaml")
    code, out, err = run(
        "policy",
        "explain",
        path,
        "--staff",
        "c-1001",
        "--action",
        "account.lock",
        "--account",
        "chirp:bob",
        "--staff-file",
        STAFF,
    )
    assert code == 0, (out, err)
    assert ESC not in out
    assert "\r" not in out
    assert "notifies \\x1b[2J\\x1b]8;;https://evil.example\\x1b\\[/conceal]\\r" in out


def test_a_crafted_decision_prints_escaped_whatever_the_consoles_markup() -> None:
    """The rendering itself, on values no policy loader lets through, on a console with markup
    on: nothing of them is read as markup or reaches the terminal as a code."""
    hostile = f"t{ESC}[2J{ESC}]8;;https://evil.example{ESC}\\x[/conceal]\r\n[red]"
    sink = StringIO()
    out = Console(file=sink, force_terminal=True, width=200, markup=True)
    decision = Decision(
        outcome=Outcome.PENDING,
        policy_version=hostile,
        requester=hostile,
        action=hostile,
        account=hostile,
        tier=hostile,
        matched=(),
        factors=(),
        options=Options(
            justification_required=True, justification_patterns=(hostile,), notify=(hostile,)
        ),
        reasons=(hostile,),
        errors=(ConditionFailure(hostile, hostile, hostile),),
    )
    textview.decision(out, decision)
    shown = sink.getvalue()
    # The only ESC bytes left are Rich's own styles (ESC [ ... m), never the hostile ones.
    assert f"{ESC}[2J" not in shown
    assert f"{ESC}]8" not in shown
    assert "\r" not in shown
    assert shown.count("[/conceal]") == shown.count("\\x1b[2J") >= 7  # every field, escaped
