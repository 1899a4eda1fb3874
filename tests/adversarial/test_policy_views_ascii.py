"""What a reviewer reads of a policy's text shows every character outside ASCII as its code
(attack F4 of the third policy-text round): `foureyes show` and the review prompt printed a
proposal's `staff.id in ["c-3004"]` spelled with U+2010 HYPHEN as the ASCII one, and `policy
diff` printed two contradicting rows that read the same. A new text may leave ASCII only in its
prose (`foureyes.policy.wording`); these views are for what was installed before, and for the
prose. (The console's pages: tests/console/test_policy_page_vouched.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.commands import params_view
from foureyes.commands.safe_text import ascii_printable
from tests.conftest import EXAMPLES

EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
UPDATE = "foureyes.policy.update"
# Each reads as an ASCII character and is not (hyphens, digits of other scripts, fullwidth
# and mathematical forms, dots, slashes, apostrophes).
LOOKALIKES = [
    "\u2010",
    "\u2011",
    "\u2012",
    "\u2013",
    "\u2212",
    "\u2043",
    "\u02d7",
    "\ufe63",
    "\uff0d",
    "\u0966",
    "\u09e6",
    "\u0e50",
    "\u0660",
    "\u06f0",
    "\u17e0",
    "\uff10",
    "\U0001d7ce",
    "\u2024",
    "\uff0e",
    "\u2215",
    "\u02bc",
    "\u0441",
    "\u200b",
]
DENY = "  - id: under-investigation\n    effect: deny\n    when: 'staff.id in [\"c{}3004\"]'\n"


def _code(char: str) -> str:
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


@pytest.mark.parametrize("char", LOOKALIKES, ids=[f"U+{ord(c):04X}" for c in LOOKALIKES])
def test_a_policy_updates_text_is_shown_in_ascii(char: str) -> None:
    text = EXAMPLE.replace("rules:\n", "rules:\n" + DENY.format(char), 1)
    shown = params_view.described({"action": UPDATE, "params": {"text": text}})
    outside = [line for line in shown if not line.replace("\u2502", "").isascii()]  # the gutter
    assert not outside, outside
    [marked] = [line for line in shown if "under-investigation" not in line and "3004" in line]
    assert marked.lstrip().startswith("! "), marked
    assert f'[\\"c{_code(char)}3004\\"]' not in marked  # quotes are not escaped, only the char
    assert f'["c{_code(char)}3004"]' in marked, marked
    assert "outside ASCII" in shown[1]  # the legend says what a marked line is
    # A short text (one line) is JSON in ASCII.
    [short] = params_view.described({"action": UPDATE, "params": {"text": f"c{char}3004"}})[1:]
    assert short.isascii(), short
    assert json.loads(short.split(": ", 1)[1]) == f"c{char}3004", short


def test_a_marked_lines_backslashes_are_doubled_so_an_escape_cannot_be_typed() -> None:
    """`"c\\u20103004"` typed in ASCII (a CEL escape, refused in a new text) must not read as
    the marked U+2010: in a marked line every backslash of the text is doubled."""
    typed = "    when: 'staff.id in [\"c\\u20103004\"]' # \u2010\n"
    text = EXAMPLE.replace("rules:\n", "rules:\n" + typed, 1)
    shown = params_view.described({"action": UPDATE, "params": {"text": text}})
    [marked] = [line for line in shown if "3004" in line]
    assert '["c\\\\u20103004"]' in marked, marked
    assert marked.endswith("# \\u2010"), marked


def test_an_ascii_text_is_printed_as_written() -> None:
    shown = params_view.described({"action": UPDATE, "params": {"text": EXAMPLE}})
    assert not any(line.lstrip().startswith("! ") for line in shown)
    assert "outside ASCII" not in shown[1]


def test_other_params_keep_their_language() -> None:
    """Only a policy's text is shown in ASCII: a reason in Russian stays readable."""
    reason = "Блокировка по запросу"
    [line] = params_view.described({"action": "account.suspend", "params": {"reason": reason}})[1:]
    assert reason in line


def test_ascii_printable_leaves_nothing_outside_ascii() -> None:
    everything = "".join(chr(code) for code in range(0x20, 0x3000)) + "\U0001d7ce\x1b\n"
    shown = ascii_printable(everything)
    assert shown.isascii()
    assert shown.isprintable()
    assert "\\u2010" in shown
    assert "\\U0001d7ce" in shown


def test_policy_diff_names_the_code_points_of_an_installed_texts_lookalike(
    tmp_path: Path,
) -> None:
    """The attack's two rows, `id='e-4711'` denied→allowed and the same id spelled with U+2010
    allowed→denied, read the same; now the second shows `e\\u20104711`."""
    leave = EXAMPLE.replace(
        "rules:\n",
        "rules:\n  - id: on-leave\n    effect: deny\n    actions: [account.suspend]\n"
        "    when: 'staff.id in [\"e@4711\"]'\n",
        1,
    )
    old = tmp_path / "installed.yaml"
    new = tmp_path / "proposed.yaml"
    old.write_text(leave.replace("@", "\u2010"), encoding="utf-8")
    new.write_text(leave.replace("@", "-"), encoding="utf-8")
    result = CliRunner().invoke(app, ["policy", "diff", str(old), str(new)], env={"COLUMNS": "300"})
    assert "\u2010" not in result.stdout
    assert "e\\u20104711" in result.stdout, result.stdout
    assert "'e-4711'" in result.stdout
    # The other way round the proposed file is refused: it is a new text.
    backwards = CliRunner().invoke(app, ["policy", "diff", str(new), str(old)])
    assert backwards.exit_code == 2
    assert "U+2010 HYPHEN: outside descriptions and test names" in backwards.stderr
