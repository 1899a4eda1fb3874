"""Staff names held to what they may hold, not to a list of what they may not (attack names
F1-F3): the HR import took e-7003 named "Tomas Berg (e-3001)" with a Canadian syllabics B
(U+15F7), hook brackets (U+239B/U+239E), a Cyrillic Ze (U+0417) for the 3 and the letters O
and l for 0 and 1, e-7004 "Tomas Berg" with a Cherokee T (U+13A2) and e-7005 "Mei Chen" with
a modifier apostrophe (U+02BC) without a word; 120 marks stacked on a letter through a ZWJ
every three; and groups in prose.

What foureyes must do:
- refuse, with file and line, a name holding anything but letters of a recommended script
  (one script a word), marks on them, the joiners between letters, spaces and `- ' .`;
- refuse a word that reads as a staff id or a number under Unicode's skeleton;
- flag namesakes under the skeleton (UTS #39, the data pinned here), NFKC and case folding
  taken until the form settles;
- count stacked marks across joiners, in names and every other text of a record;
- hold groups to an identifier grammar, at the import and in `foureyes.staff.update` alike;
- still take people's names in their own scripts.

The import and the governed update on SQLite and PostgreSQL (`api`).
"""

from __future__ import annotations

import hashlib
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from foureyes.errors import PolicyError
from foureyes.policy.directory import groups_problem, load_directory
from foureyes.store.tables import StaffRow
from foureyes.text import overloaded
from foureyes.text.folding import _ROUNDS, _round, fold
from foureyes.text.names import id_shaped, name_problem, person_label
from foureyes.text.skeleton import CONFUSABLES_VERSION, prototypes, skeleton
from foureyes.workflow import operations
from foureyes.workflow.staff import NameClash
from tests.adversarial.test_staff_import_identity import alerts
from tests.adversarial.test_staff_name_lookalikes import (
    NEW,
    SUSPEND,
    TOMAS,
    hire_line,
    with_hire,
)
from tests.api.conftest import Api, assert_problem
from tests.console.conftest import console_for

MEI, JO, ANA = "e-3002", "e-9001", "e-2001"
MARKS_WITH_JOINERS = "Ana" + "\u030d\u030e\u0344\u200d" * 40 + " Silva"  # the finding, F2

# --- F1: refused, with file and line ----------------------------------------------------------

REFUSED = {
    # The finding's names, as the attacker wrote them.
    "the finding: syllabics B, hook brackets, Ze": "Tomas \u15f7erg \u239be-\u0417OOl\u239e",
    "the finding: a Cherokee T": "\u13a2omas Berg",
    "the finding: a modifier apostrophe": "Mei Chen\u02bc",
    "the finding's control row: Yi brackets": "Sam Okafor \ua4b0e-\u01b7OO\u00d0\ua4b1",
    # Variants.
    "hook brackets alone": "Tomas Berg \u239bx\u239e",
    "Yi radicals": "Tomas Berg \ua4b0x\ua4b1",
    "subset signs": "Tomas Berg \u2282x\u2283",
    "syllabics angles": "Tomas Berg \u1438x\u1433",
    "syllabics brackets": "Tomas Berg \u1455x\u1450",
    "guillemets": "Tomas \u00abBerg\u00bb",
    "single quotation marks": "Tomas \u2018Berg\u2019",
    "a right single quotation mark as apostrophe": "O\u2019Brien",
    "modifier prime": "Tomas Berg\u02b9",
    "modifier vertical line": "Tomas \u02c8Berg",
    "math Greek capital tau": "\U0001d6bbomas Berg",
    "math bold letters": "\U0001d413omas Berg",
    "Carian letter": "\U000102a8omas Berg",
    "Old Italic letter": "\U00010315omas Berg",
    "a Cyrillic Ze as a digit": "Tomas Berg \u0417",
    "a Latin ezh in an id": "Tomas e-\u01b7OOl",
    "a Latin yogh in an id": "Tomas e-\u021cOOl",
    "tone five": "Tomas \u01bc",
    "letters O and l as an id": "Tomas Berg e-OOl",
    "capital I as a one": "Tomas Berg c-IOOI",
    "an id with a dot": "Tomas e.lOOl",
    "letters for digits run on": "Tomas e\u01b7OOl",
    "roman numeral three": "Tomas Berg \u2162",
    "small roman numeral": "Tomas Berg \u2170",
    "a CJK numeral in a Latin word": "Tomas\u4e09",
    "superscript letter": "Tomas Berg\u1d43",
    "fullwidth letters": "\uff34omas Berg",
    "a ligature": "\ufb01nn Berg",
    "Cyrillic o in a Latin word": "T\u043emas Berg",
    "Greek omicron in a Latin word": "T\u03bfmas Berg",
    "a comma": "Berg, Tomas",
    "double quotes": 'Tomas "Tom" Berg',
    "a slash": "Tomas/Berg",
    "a no-break space": "Tomas\u00a0Berg",
    "an enclosing circle": "Tomas B\u20dderg",
    "a mark on a space": "Tomas \u0301Berg",
    "a joiner at the end of a word": "Tomas\u200d Berg",
    "a joiner before a space": "Tomas \u200dBerg",
    "the finding (F2): marks with a ZWJ every three": MARKS_WITH_JOINERS,
    "marks with a ZWNJ every two": "Ana" + "\u0301\u0302\u200c" * 20,
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_a_name_outside_the_allow_list_is_refused_with_its_line(tmp_path: Path, kind: str) -> None:
    path = with_hire(tmp_path, REFUSED[kind])
    with pytest.raises(PolicyError) as refused:
        load_directory(path)
    error = refused.value
    assert (error.file, error.field) == (str(path), "staff[9].name")
    assert error.line == hire_line(path, "name")
    assert str(error).isprintable()  # never quotes the name
    assert "e-3001" not in str(error)
    assert name_problem(REFUSED[kind]) is not None
    assert person_label(REFUSED[kind], NEW) == NEW  # stored before the rule: the id alone


ACCEPTED = [
    "Zo\u00eb M\u00fcller",
    "Zoe\u0308 Mu\u0308ller",  # the same, decomposed
    "\u00d8rjan",
    "Nguy\u1ec5n V\u0103n An",
    "Jos\u00e9 Mar\u00eda",
    "O'Brien",
    "Mary-Kate Smith",
    "Dr. Ana Lima",
    "Henry Ford III",
    "\u674e\u5c0f\u9f8d",
    "\u5c71\u7530\u306f\u306a\u3053",  # Han and Hiragana in one word: Japanese
    "\uae40\ubbfc\uc900",
    "\u041c\u0430\u0440\u0438\u044f \u0418\u0432\u0430\u043d\u043e\u0432\u0430",
    "\u0417\u043e\u044f \u0417\u0430\u0439\u0446\u0435\u0432\u0430",  # a Ze in a word
    "\u0413\u043b\u0435\u0431",  # a be at the end of a word
    "\u0645\u062d\u0645\u062f",
    "\u0646\u0648\u0631\u200c\u0627\u0644\u062f\u064a\u0646",  # a ZWNJ between letters
    "\u0905\u0928\u0941\u200d\u0930\u093e\u0927\u093e",  # a ZWJ between letters
    "\u0915\u0943\u0937\u094d\u0923",
    "\u0391\u03bb\u03ad\u03be\u03b1\u03bd\u03b4\u03c1\u03bf\u03c2",
    "\u05e9\u05dc\u05d5\u05dd \u05db\u05d4\u05df",
    "\u0141ukasz O'Neil-M\u00fcller",
]


@pytest.mark.parametrize("name", ACCEPTED)
def test_names_in_peoples_own_scripts_load(tmp_path: Path, name: str) -> None:
    assert name_problem(name) is None
    assert load_directory(with_hire(tmp_path, name)).staff[NEW].name == name
    assert person_label(name, NEW) == f"{name} ({NEW})"


@pytest.mark.parametrize(
    ("word", "shaped"),
    [
        ("e-OOl", True),
        ("e-\u0417OOl", True),
        ("\u0417", True),
        ("\u0417.", True),
        ("e\u01b7OOl", True),
        ("III", False),
        ("Ol", False),
        ("\u0413\u043b\u0435\u0431", False),
        ("O'Brien", False),
        ("Mary-Kate", False),
    ],
)
def test_a_word_is_read_for_a_staff_ids_shape_under_the_skeleton(word: str, shaped: bool) -> None:
    assert id_shaped(word) is shaped


# --- F1: namesakes under Unicode's skeleton ---------------------------------------------------


def test_the_confusables_data_is_pinned() -> None:
    """A change of the data is a change of the code: its version and digest are pinned."""
    data = resources.files("foureyes.text").joinpath("data/confusables.txt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == (
        "96f2500ec78fd96f11561d4b40237435dfece70303b1db3c0974138a333aa206"
    )
    assert f"# Version: {CONFUSABLES_VERSION}".encode() in data[:400]
    assert CONFUSABLES_VERSION == "13.0.0"
    assert len(prototypes()) == 6311
    # The finding's letters, as UTS #39 maps them.
    finding = {"\u15f7": "B", "\u13a2": "T", "\u0417": "3", "0": "O", "1": "l"}
    for char, prototype in finding.items():
        assert skeleton(char) == prototype


def test_folding_settles_for_every_character() -> None:
    """NFKC, case folding and the skeleton are taken in rounds until the form settles; every
    assigned character settles well within the bound (math Greek tau: NFKC, then Greek tau,
    then a small capital T, then t)."""
    worst = 0
    for point in range(0x110000):
        char = chr(point)
        if unicodedata.category(char) in ("Cn", "Cs", "Co"):
            continue
        current, rounds = char, 0
        while (settled := _round(current)) != current:
            current, rounds = settled, rounds + 1
            assert rounds < _ROUNDS, hex(point)
        worst = max(worst, rounds)
    assert worst < _ROUNDS


@pytest.mark.parametrize(
    "name",
    [
        "\u01acomas Berg",  # Latin T with hook: not in confusables.txt, read by its name
        "Tomas Be\u027cg",  # r with long leg
        "Tomas \ua7b4erg",  # Latin capital beta: the skeleton's B before case folding
        "T\u00f6mas Berg",
    ],
)
def test_a_namesake_in_one_script_is_flagged_high(api: Api, tmp_path: Path, name: str) -> None:
    report = operations.import_directory(
        api.world.services, load_directory(with_hire(tmp_path, name))
    )
    assert NEW in report.added
    assert report.named_alike == {NEW: [NameClash(TOMAS, "Tomas Berg", False)]}
    [alert] = alerts(api.world, "name_lookalike")
    assert (alert.staff_id, alert.severity) == (NEW, "high")


def test_a_whole_word_of_cyrillic_look_alikes_is_flagged(api: Api, tmp_path: Path) -> None:
    """One script a word lets "Mei" be written wholly in Cyrillic (em, ie, i): the skeleton
    reads it as Mei, so Mei Chen's namesake is flagged high."""
    name = "\u041c\u0435\u0456 Chen"
    assert name_problem(name) is None
    report = operations.import_directory(
        api.world.services, load_directory(with_hire(tmp_path, name))
    )
    assert report.named_alike == {NEW: [NameClash(MEI, "Mei Chen", False)]}
    [alert] = alerts(api.world, "name_lookalike")
    assert alert.severity == "high"


def test_fold_reads_the_findings_letters_as_latin() -> None:
    for name in ("\u15f7erg", "\U0001d6bberg", "\ua7b4erg", "\u13a2erg"):
        assert fold(name) in {fold("Berg"), fold("Terg")}


# --- F2: marks counted across joiners, in every text of a record ------------------------------


def test_marks_are_counted_across_joiners() -> None:
    assert overloaded(MARKS_WITH_JOINERS)
    assert overloaded("a\u0301\u200d\u0302\u200c\u0303\u200d\u0304")
    assert not overloaded("a\u0301\u200d\u0302\u0303 b")
    assert not overloaded("\u0905\u0928\u0941\u200d\u0930\u093e\u0927\u093e")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vendor", "Acme" + "\u0301\u0302\u200d" * 10),
        ("region", "eu" + "\u0301\u200d" * 10),
        ("manager", "e-9001" + "\u0301\u0302\u0303\u200c\u0304"),
        ("attributes", {"desk": "north" + "\u0301\u0302\u200d\u0303\u0304"}),
        ("attributes", {"desks": ["north" + "\u0301\u200d" * 5]}),
    ],
)
def test_stacked_marks_through_joiners_are_refused_in_every_text(
    tmp_path: Path, field: str, value: Any
) -> None:
    path = with_hire(tmp_path, "Tomas Lind", **{field: value})
    with pytest.raises(PolicyError) as refused:
        load_directory(path)
    assert refused.value.field is not None
    assert refused.value.field.startswith(f"staff[9].{field}")
    assert "stacked marks" in str(refused.value)


# --- F3: groups are identifiers, at the import and in foureyes.staff.update -------------------

BAD_GROUPS = {
    "the finding: prose with a name and an id": "approved for Tomas Berg (e-3001)",
    "a space": "trust safety",
    "upper case": "Support",
    "a digit first": "1support",
    "a bracket": "support(x)",
    "Cyrillic letters": "supp\u043ert",
    "marks through joiners": "support" + "\u0301\u200d" * 10,
    "a joiner": "supp\u200dort",
    "51 characters": "s" * 51,
    "a colon": "approved:e-3001",
}


@pytest.mark.parametrize("kind", sorted(BAD_GROUPS))
def test_a_group_that_is_no_identifier_is_refused_at_the_import(tmp_path: Path, kind: str) -> None:
    path = with_hire(tmp_path, "Tomas Lind", groups=["trust-safety", BAD_GROUPS[kind]])
    with pytest.raises(PolicyError) as refused:
        load_directory(path)
    assert refused.value.field == "staff[9].groups"
    assert "groups/1: a group is named with" in str(refused.value)
    assert groups_problem(["trust-safety", BAD_GROUPS[kind]]) is not None


@pytest.mark.parametrize("kind", sorted(BAD_GROUPS))
def test_the_same_groups_are_refused_by_the_governed_update(api: Api, kind: str) -> None:
    body = {
        "action": "foureyes.staff.update",
        "account": "foureyes:staff",
        "params": {"staff": ANA, "groups": ["trust-safety", BAD_GROUPS[kind]]},
        "justification": "HR-77 reorg",
    }
    for path in ("/v1/decisions", "/v1/requests"):
        problem = assert_problem(api.post(JO, path, body), 422, "bad-input")
        # The typed params' unseen-text check may speak first (a joiner); the group rule
        # (`groups_problem`, the import's) otherwise.
        assert "groups/1" in problem["detail"]
        assert BAD_GROUPS[kind] not in problem["detail"]


@pytest.mark.parametrize("groups", [["support"], ["trust-safety", "on_call", "tier2"], []])
def test_identifier_groups_pass_both(tmp_path: Path, groups: list[str]) -> None:
    assert groups_problem(groups) is None
    assert load_directory(with_hire(tmp_path, "Tomas Lind", groups=groups)).staff[NEW].groups == (
        tuple(groups)
    )


# --- the console: the id as an element of its own, groups as tags -----------------------------


def test_the_console_shows_the_id_apart_from_the_name_and_groups_as_tags(
    api: Api, tmp_path: Path
) -> None:
    """A name stored before the rule (written in past the import) never shows: the id alone;
    a name that passes sits after the id, in its own element; groups are tags, not prose."""
    world = api.world
    services = world.services
    operations.import_directory(services, load_directory(with_hire(tmp_path, "Tomas Lind")))
    request_id, _ = operations.submit_and_run(services, world.actor(ANA), SUSPEND)
    world.review(NEW, request_id, step_up=False, comment="ok")
    console = console_for(world, tmp_path / "console")

    page = console.signed_in(TOMAS).get(f"/console/requests/{request_id}").text
    assert (
        '<span class="person"><span class="staff-id">e-7003</span> '
        '<span class="staff-name">Tomas Lind</span></span>'
    ) in page
    assert '<span class="tag group">support</span>' in page  # Ana's groups, as tags

    with services.database.transaction() as session:
        row = session.get(StaffRow, NEW)
        assert row is not None
        row.name = "Tomas \u15f7erg \u239be-\u0417OOl\u239e"
    page = console.signed_in(TOMAS).get(f"/console/requests/{request_id}").text
    assert "\u15f7" not in page
    assert "\u239b" not in page
    assert '<span class="person"><span class="staff-id">e-7003</span></span>' in page
