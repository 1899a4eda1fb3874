"""A staff import whose names read otherwise than they are (attack H2, session 14): an RLO and a
U+2028 in a person's name were imported and shown raw on the console's person card. What cards,
views and the log show of a person is refused at import with file and line when it holds a line
break, a control or bidi character or stacked marks; names in every script still load."""

from __future__ import annotations

import pytest

from foureyes.errors import PolicyError
from foureyes.policy.directory import parse_csv_directory, parse_directory

ROW = (
    "  - {{id: e-7001, name: {name}, email: jo@chirp.example, groups: [{group}],"
    " employment: employee}}\n"
)


def _yaml(name: str = '"Jo Park"', group: str = "support") -> str:
    return "staff:\n" + ROW.format(name=name, group=group)


@pytest.mark.parametrize(
    "name",
    [
        '"Jo\\u202eKRAP"',  # right-to-left override: read backwards
        '"Jo\\u2066x\\u2069"',  # an isolate
        '"Jo\\u2028e-9001 (Security lead)"',  # a line separator: a forged second line
        '"Jo\\u0085x"',  # NEL
        '"Jo\\x1b[2J"',  # a terminal escape
        '"Jo\\u200bx"',  # a zero-width space: hides text
        '"Jo\\u200fx"',  # a right-to-left mark
        '"Jo\\u0301\\u0301\\u0301\\u0301\\u0301"',  # stacked marks
    ],
)
def test_a_name_that_reads_otherwise_is_refused_with_its_line(name: str) -> None:
    with pytest.raises(PolicyError, match="holds a line break, a control or bidi character"):
        parse_directory(_yaml(name), "staff.yaml")


def test_a_group_and_a_csv_vendor_are_held_to_the_same_rule() -> None:
    with pytest.raises(PolicyError, match="a group is named with"):
        parse_directory(_yaml(group='"support\\u202e"'), "staff.yaml")
    csv = 'id,name,email,employment,vendor\ne-7001,Jo,jo@x.example,contractor,"Acme\u2028Inc"\n'
    with pytest.raises(PolicyError, match="holds a line break"):
        parse_csv_directory(csv, "staff.csv")


@pytest.mark.parametrize(
    "name",
    [
        '"Kim Vârga"',
        '"José Müller-Łukasz"',
        '"अनु\\u200dराधा"',
        '"\u0646\u0648\u0631\\u200c\u0627\u0644\u062f\u064a\u0646"',
        '"田中 太郎"',
    ],
)
def test_names_in_every_script_load(name: str) -> None:
    directory = parse_directory(_yaml(name), "staff.yaml")
    assert directory.staff["e-7001"].name
