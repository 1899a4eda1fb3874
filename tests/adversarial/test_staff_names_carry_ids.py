"""A name that carries someone else's id (attack s3 S1): the HR import took e-7003 named
"Tomas Berg (e-3001)", e-7004 named "e-3002", e-7005 "Mei Chen," and e-7006
"Sam Okafor (e-3003) " with no `name_lookalike` alert, and the console read "Approved by
Tomas Berg (e-3001) (e-7003)": the real Tomas approving, to whoever skims the label.

What foureyes must do:
- refuse, with file, line and field, a name holding a bracket of any script (`( ) [ ] { } < >`,
  fullwidth, CJK, mathematical, ornamental) or a digit of any script (a staff id's part),
  in YAML and CSV exports alike, however written (fullwidth, YAML escapes);
- compare names with punctuation and symbols left out (`Mei Chen,` is Mei Chen: flagged
  high), and flag a name that holds another person's whole name as whole words (medium as
  written, high in look-alike letters), or words that read as another person's id (high);
- never show a stored name that carries an id of its own in a label (the id alone instead).

The import on SQLite and PostgreSQL (the `database` fixture behind `api`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from foureyes.errors import PolicyError
from foureyes.policy.directory import load_directory, parse_csv_directory, parse_directory
from foureyes.text.names import name_problem, person_label
from foureyes.workflow import operations
from foureyes.workflow.staff import NameClash
from foureyes.workflow.staff_names import named_alike
from tests.adversarial.test_staff_import_identity import alerts
from tests.adversarial.test_staff_name_lookalikes import NEW, TOMAS, hire_line, with_hire
from tests.api.conftest import Api

MEI, SAM, KIM = "e-3002", "e-3003", "c-1001"

# --- refused: brackets and digits, with file, line and field ---------------------------------

CARRIES_AN_ID = {
    "the finding: another's label": "Tomas Berg (e-3001)",
    "the finding: another's id as the name": "e-3002",
    "the finding: a label and a space": "Sam Okafor (e-3003) ",
    "square brackets": "Tomas Berg [e-3001]",
    "braces": "Tomas Berg {e-3001}",
    "angle brackets": "Tomas Berg <e-3001>",
    "an opening bracket alone": "Tomas Berg (",
    "a closing bracket alone": "Tomas Berg)",
    "fullwidth parentheses": "Tomas Berg \uff08e-3001\uff09",
    "fullwidth less/greater-than": "Tomas Berg \uff1ce-3001\uff1e",
    "small parentheses": "Tomas Berg \ufe59x\ufe5a",
    "mathematical angle brackets": "Tomas Berg \u27e8x\u27e9",
    "CJK lenticular brackets": "Tomas Berg \u3010x\u3011",
    "CJK angle brackets": "Tomas Berg \u3008x\u3009",
    "ornamental parentheses": "Tomas Berg \u2768x\u2769",
    "superscript parentheses": "Tomas Berg \u207dx\u207e",
    "single guillemets": "Tomas Berg \u2039x\u203a",
    "modifier arrowheads": "Tomas Berg \u02c2x\u02c3",
    "an id without brackets": "Tomas Berg e-3001",
    "an id after a comma": "Tomas Berg, e-3001",
    "a lone digit": "Tomas Berg 2",
    "fullwidth digits": "Tomas Berg e-\uff13\uff10\uff10\uff11",
    "mathematical digits": "Tomas Berg e-\U0001d7d1\U0001d7ce\U0001d7ce\U0001d7cf",
    "Arabic-Indic digits": "Tomas Berg \u0663\u0660\u0660\u0661",
    "Devanagari digits": "Tomas Berg \u0969",
    "superscript digit": "Tomas Berg\u00b3",
    "circled digit": "Tomas Berg \u2462",
    "parenthesized digit": "Tomas Berg \u2474",
}


@pytest.mark.parametrize("kind", sorted(CARRIES_AN_ID))
def test_a_name_that_carries_an_id_is_refused_with_its_line(tmp_path: Path, kind: str) -> None:
    path = with_hire(tmp_path, CARRIES_AN_ID[kind])
    with pytest.raises(PolicyError) as refused:
        load_directory(path)
    error = refused.value
    assert (error.file, error.field) == (str(path), "staff[9].name")
    assert error.line == hire_line(path, "name")
    assert any(why in str(error) for why in ("bracket", "digit", "a name may not", "staff id"))
    assert str(error).isprintable()  # never quotes the name
    assert "e-3001" not in str(error)


def test_yaml_escapes_and_csv_exports_are_held_to_it_too() -> None:
    escaped = (
        'staff:\n  - {id: e-7003, name: "Tomas Berg \\uff08e\\u20103001\\uff09", '
        "email: t@chirp.example, employment: employee}\n"
    )
    with pytest.raises(PolicyError) as refused:
        parse_directory(escaped, "hr.yaml")
    assert (refused.value.line, refused.value.field) == (2, "staff[0].name")

    header = "id,name,email,employment\n"
    good = "e-2001,Ana Lima,ana@chirp.example,employee\n"
    for name in ['"Tomas Berg (e-3001)"', "e-3002", "Tomas Berg [x]", "Mei \uff13"]:
        with pytest.raises(PolicyError) as refused:
            parse_csv_directory(
                header + good + f"e-7003,{name},x@chirp.example,employee\n", "s.csv"
            )
        assert (refused.value.line, refused.value.field) == (3, "staff[1].name")


@pytest.mark.parametrize(
    "name",
    [
        "Łukasz O'Neil-Müller",
        "Mary-Kate Smith",
        "Dr. Ana Lima",
        "Louis XII",
        "田中 太郎",
        "\u0645\u062d\u0645\u062f \u0639\u0644\u064a",
    ],
)
def test_names_without_brackets_or_digits_still_load(tmp_path: Path, name: str) -> None:
    assert load_directory(with_hire(tmp_path, name)).staff[NEW].name == name


# --- flagged: punctuation left out, a name within a name, words that read as an id ----------

# Punctuation other than `- ' .` is refused now (attack names F1; `test_names_allow_list`).
PUNCTUATED = {
    "a full stop": "Mei Chen.",
    "a hyphen between": "Mei-Chen",
    "an apostrophe": "Mei Chen'",
}


@pytest.mark.parametrize("kind", sorted(PUNCTUATED))
def test_a_namesake_with_punctuation_is_flagged_high(api: Api, tmp_path: Path, kind: str) -> None:
    name = PUNCTUATED[kind]
    report = operations.import_directory(
        api.world.services, load_directory(with_hire(tmp_path, name))
    )
    assert NEW in report.added
    assert report.named_alike == {NEW: [NameClash(MEI, "Mei Chen", False)]}
    [alert] = alerts(api.world, "name_lookalike")
    assert (alert.staff_id, alert.severity) == (NEW, "high")
    assert alert.details["looks_like"] == {MEI: "Mei Chen"}


WITHIN = {
    "a suffix": ("Tomas Berg Jr", True),
    "a prefix": ("Jr Tomas Berg", True),
    "in the middle": ("Dr Tomas Berg Jr", True),
    "a suffix after a full stop": ("Tomas Berg. approved", True),
    "a suffix after a hyphen": ("Tomas Berg - security", True),
    "run together": ("TomasBerg Jr", False),
    "a Latin T with a hook": ("\u01acomas Berg Jr", False),
    "an accent": ("Tom\u00e1s Berg II", False),
}


@pytest.mark.parametrize("kind", sorted(WITHIN))
def test_a_name_holding_anothers_whole_name_is_flagged(api: Api, tmp_path: Path, kind: str) -> None:
    name, as_written = WITHIN[kind]
    report = operations.import_directory(
        api.world.services, load_directory(with_hire(tmp_path, name))
    )
    assert NEW in report.added  # flagged, not refused: "Tomas Berg Jr" may be a person
    assert report.named_alike == {NEW: [NameClash(TOMAS, "Tomas Berg", as_written, "within")]}
    [alert] = alerts(api.world, "name_lookalike")
    assert (alert.staff_id, alert.severity) == (NEW, "medium" if as_written else "high")
    assert alert.details["holds"] == {TOMAS: "Tomas Berg"}
    assert "holds" in alert.summary
    assert TOMAS not in report.named_alike  # the real one is not flagged


@pytest.mark.parametrize(
    "name", ["Tomas Bergman", "Tomastian Berg", "Berg Tomas", "Tomas B.", "Bergtomas", "Tomas"]
)
def test_a_name_that_holds_part_of_anothers_is_not_flagged(
    api: Api, tmp_path: Path, name: str
) -> None:
    report = operations.import_directory(
        api.world.services, load_directory(with_hire(tmp_path, name))
    )
    assert report.named_alike == {}
    assert alerts(api.world, "name_lookalike") == []


# `Ana c-lOOl` and `Ana C-IOOI` have a staff id's shape and are refused now (attack names F1).
@pytest.mark.parametrize("name", ["Ana C lool", "c.l.o.o.l"])
def test_words_that_read_as_anothers_id_are_flagged_high(
    api: Api, tmp_path: Path, name: str
) -> None:
    """No digit gets in; letters that read as one do (`l` for 1, `O` for 0): c-1001 is Kim."""
    report = operations.import_directory(
        api.world.services, load_directory(with_hire(tmp_path, name))
    )
    assert report.named_alike == {NEW: [NameClash(KIM, "Kim Varga", False, "id")]}
    [alert] = alerts(api.world, "name_lookalike")
    assert alert.severity == "high"
    assert alert.details["reads_as_id"] == {KIM: "Kim Varga"}


def test_ids_without_digits_are_not_read_in_names() -> None:
    # A directory whose ids are logins has them in honest names: Jo Smith is not jo.
    names = {"jo": "Jo Hart", "jsmith": "Jo Smith", "e-1001": "Kim Varga", "x": "Ana E-lOOl"}
    assert named_alike(names, ["jsmith", "x"]) == {
        "x": [NameClash("e-1001", "Kim Varga", False, "id")]
    }


def test_a_long_name_of_one_letter_words_is_compared_in_bounded_time() -> None:
    # Runs of words are only as long as the longest name or id compared: 100 words of one
    # letter look at no more than that many runs per start.
    names = {"e-1": "Tomas Berg", "e-2": " ".join("a" * 100)[:200]}
    assert named_alike(names, ["e-2"]) == {}


# --- a label never shows a name that carries an id -------------------------------------------


@pytest.mark.parametrize("name", ["Tomas Berg (e-3001)", "e-3002", "Tomas Berg \uff08x\uff09"])
def test_a_stored_name_that_carries_an_id_is_labelled_by_the_id_alone(name: str) -> None:
    # Stored before the rule (or written in): the label falls back to the id, never the name.
    assert name_problem(name) is not None
    assert person_label(name, NEW) == NEW
    assert person_label("Tomas Berg", NEW) == "Tomas Berg (e-7003)"
