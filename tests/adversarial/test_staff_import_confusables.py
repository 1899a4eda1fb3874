"""Logins that look like another person's, and text that rewrites the operator's terminal, put
in the HR export the way whoever edits it would:

- on Jo's record (a lead), `kim.vendor` with a Cyrillic o (U+043E), with a fullwidth k
  (U+FF4B), with a zero-width space, or `Kim.Vendor`: each reads as Kim's `kim.vendor` in the
  import report, an alert or the audit log, while whoever holds it signs in as Jo;
- a name (or a file name) carrying escape sequences (`ESC [2J` clears the screen, `ESC [8m`
  hides what follows) and invisible or direction-changing characters, so that the report the
  operator reads is not what was imported.

What foureyes must do: refuse a login outside plain ASCII (letters, digits, `. _ @ + -`) and a
login that looks like another person's, naming the file and line, and changing
nothing; show every value from the export escaped in the report, `staff list` and the CLI's
diagnostics. Before the fix the logins were imported and the report printed the sequences raw.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from foureyes.errors import BadInput, PolicyError
from foureyes.policy.directory import load_directory, parse_csv_directory
from foureyes.workflow import operations
from tests.adversarial.test_staff_import_identity import JO, KIM, LOGIN, edited_records
from tests.api.conftest import Api
from tests.conftest import EXAMPLES
from tests.unit.commands.cli import initialised, run

MEI = "e-3002"
LOOK_ALIKES = {
    "Cyrillic o": "kim.vend\u043er",
    "fullwidth k": "\uff4bim.vendor",
    "zero-width space": "kim.vendor\u200b",
    "right-to-left override": "kim.\u202erodnev",
    "escape sequence": "kim\x1b[8m.vendor",
}
ESC = "\x1b"


def export_with(tmp_path: Path, logins_of_jo: list[str], name: str = "hr-export.yaml") -> Path:
    path = edited_records(tmp_path, {JO: {"identities": ["jo", *logins_of_jo]}})
    return path.rename(tmp_path / name)


def line_of(path: Path, text: str) -> int:
    """The line of `path` whose YAML holds `text` (as the file writes it)."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


@pytest.mark.parametrize("kind", sorted(LOOK_ALIKES))
def test_a_look_alike_login_is_refused_with_its_line(tmp_path: Path, kind: str) -> None:
    login = LOOK_ALIKES[kind]
    path = export_with(tmp_path, [login])
    with pytest.raises(PolicyError) as refused:
        load_directory(path)
    message = refused.value.message
    assert ascii(login) in message  # named, escaped: the message itself is safe to print
    assert ESC not in message
    assert "\u200b" not in message
    assert "ASCII letters, digits" in message
    assert refused.value.file == str(path)
    jos_record = line_of(path, f"id: {JO}")
    assert jos_record <= (refused.value.line or 0) <= line_of(path, "- jo")  # Jo's identities
    assert "staff[8].identities" in message


def test_a_login_differing_only_in_case_from_another_persons_is_refused(tmp_path: Path) -> None:
    path = export_with(tmp_path, ["Kim.Vendor"])
    with pytest.raises(PolicyError, match=r"looks like 'kim\.vendor'") as refused:
        load_directory(path)
    assert f"which belongs to {KIM}" in refused.value.message
    assert refused.value.line is not None


def test_the_csv_export_is_held_to_the_same(tmp_path: Path) -> None:
    header = "id,name,email,groups,employment,vendor,region,manager,starts,ends,identities\n"
    row = "e-7001,Noor Ali,noor@chirp.example,support,employee,,eu,e-3001,2020-01-01,,"
    with pytest.raises(PolicyError) as refused:
        parse_csv_directory(header + row + "noor;n\u043eor\n", "hr.csv")
    assert refused.value.line == 2
    assert ascii("n\u043eor") in refused.value.message


def test_the_import_refuses_them_in_a_directory_built_any_other_way(api: Api) -> None:
    """The import itself checks (for a `Directory` not read from a file), and the logins that
    people missing from the export keep count: Kim's `kim.vendor` if she is left out."""
    services = api.world.services
    directory = load_directory(EXAMPLES / "staff.yaml")
    jo = directory.staff[JO]
    for login in (*LOOK_ALIKES.values(), "Kim.Vendor"):
        staff = {**directory.staff, JO: dataclasses.replace(jo, identities=("jo", login))}
        with pytest.raises(BadInput, match="nothing was imported"):
            operations.import_directory(services, dataclasses.replace(directory, staff=staff))
    without_kim = {k: v for k, v in directory.staff.items() if k != KIM}
    without_kim[JO] = dataclasses.replace(jo, identities=("jo", "KIM.VENDOR"))
    with pytest.raises(BadInput, match=rf"looks like '{LOGIN}', {KIM}'s"):
        operations.import_directory(services, dataclasses.replace(directory, staff=without_kim))
    unchanged = operations.import_directory(services, directory)
    assert unchanged.unchanged  # nothing of the refused imports was applied


def test_the_report_list_and_diagnostics_show_escapes_not_the_sequences(tmp_path: Path) -> None:
    data_dir = initialised(tmp_path)
    hostile = f"Mei {ESC}[2J{ESC}[8mChen\u200b\u202e[bold red]x"
    path = edited_records(tmp_path, {MEI: {"name": hostile}})

    # Refused at import since attack H2 (session 14), its diagnosis escaped, nothing raw.
    code, out, err = run(data_dir, "staff", "import", str(path))
    assert code == 2, out
    for raw in (ESC, "\u200b", "\u202e"):
        assert raw not in out + err
    assert "holds a line break, a control or bidi character" in err

    # Markup in a record that holds no such character is imported and shown as text (in a
    # vendor: a name holds no bracket since attack s3 S1, a group is an identifier since
    # attack names F3).
    path = edited_records(tmp_path, {MEI: {"vendor": "[bold red]x"}})
    code, out, err = run(data_dir, "staff", "import", str(path))
    assert code == 0, err
    assert out.startswith(f"~ {MEI}: vendor: ")
    assert "[bold red]x" in out  # shown as text, not taken for markup

    # The list shows no field that can hold markup now (names, groups, ids, logins).
    code, out, err = run(data_dir, "staff", "list")
    assert code == 0, err
    assert ESC not in out

    # A diagnosis quoting a file name from outside: escaped too.
    bad = tmp_path / f"hr{ESC}[2J.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"staff": [{"id": "x", "employment": "employee", "identities": ["kim.vend\u043er"]}]}
        )
    )
    code, out, err = run(data_dir, "staff", "import", str(bad))
    assert code == 2
    assert ESC not in err
    assert "hr\\x1b[2J.yaml" in err
    assert "'kim.vend\\u043er'" in err


@pytest.mark.parametrize("login", ["jo.", "jo-", "jo_", "jo+x", "j.o", "JO", "j0"])
def test_a_login_that_looks_like_another_persons_is_refused(tmp_path: Path, login: str) -> None:
    """The second attack run put `jo.`, `jo-`, `jo_` and `jo+x` on Kim's record while `jo` is
    Jo's: plain ASCII, yet read as Jo's in a report or an alert."""
    text = (EXAMPLES / "staff.yaml").read_text()
    data = yaml.safe_load(text)
    for person in data["staff"]:
        if person["id"] == KIM:
            person["identities"] = [*person.get("identities", []), login]
    path = tmp_path / "hr.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError, match="must not look alike") as refused:
        load_directory(path)
    assert "'jo'" in refused.value.message  # whichever of the two it met second is named
    assert login in refused.value.message


def test_a_login_that_is_another_persons_email_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "staff.yaml").read_text())
    for person in data["staff"]:
        if person["id"] == KIM:
            person["identities"] = [*person.get("identities", []), "jo@chirp.example"]
    path = tmp_path / "hr.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError, match=f"looks like the email address of {JO}"):
        load_directory(path)


@pytest.mark.parametrize(
    "login",
    [
        "kim+x@vendor.example",
        "kim@vendor.example.",
        "kim@vendor.example@",
        "kim@@vendor.example",
        "kim.@vendor.example",
        "kim@vendor-example",
        "kim@vendor.exampIe",
        "kirn.vendor",
        "kim.vend0r",
        "k1m.vendor",
        "c-100l",
        "mei@chirp.exarnple",
    ],
)
def test_the_third_runs_look_alikes_are_refused(tmp_path: Path, login: str) -> None:
    """Each was accepted on Jo's record while looking like Kim's (or Mei's) email, login or
    staff id: separators and `+tags` around an email, and letters people read as others."""
    data = yaml.safe_load((EXAMPLES / "staff.yaml").read_text())
    for person in data["staff"]:
        if person["id"] == KIM:
            person["email"] = "kim@vendor.example"
        if person["id"] == JO:
            person["identities"] = [*person.get("identities", []), login]
    path = tmp_path / "hr.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError, match="looks like"):
        load_directory(path)
