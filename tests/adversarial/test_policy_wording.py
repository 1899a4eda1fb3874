"""A proposed policy that reads as something it is not (attacks F1, F1b of the second policy-text
round): YAML escapes in double-quoted scalars put unseen characters into the *parsed* policy
while its source lines are plain ASCII; a no-break space reads as a space; a Cyrillic es and o
inside `"contractor"` read as Latin and made the departing-contractors deny rule match
nobody, and the policy's own tests said so (7 passed, 2 failed) while the server accepted it at
submission and execution.

The third round (F1, F2, F5): punctuation and digits no look-alike table held (U+2010 HYPHEN
and eight other hyphens and minus signs, Bengali and Devanagari digits) and CEL's own escapes
(`"c\\u20103004"`, octal, `\\x`), decoded after the check, passed it: `staff.id in ["c-3004"]`
spelled with U+2010 replaced an honest deny rule, read the same, was approved, and Lee acted
alone. So, in a new text, everything but prose (descriptions, test names and justifications)
is printable ASCII, and a CEL string literal holds no escape but `\\\\`, `\\"` and `\\'`.

Now a new text (`foureyes.policy.wording`) has every key and string value held after parsing,
and its own tests must pass: at submission (422 naming the line, or the failing tests), at
execution (the update fails, no version is made) and at `foureyes init`. A version installed
before keeps compiling and serving. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from foureyes.connectors.base import ExecutionOrder
from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.errors import BadInput, ConnectorError, PolicyError
from foureyes.policy import compiler, wording
from foureyes.policy.catalog import FOUREYES_PLATFORM
from foureyes.policy.compiler import parse_new_policy, parse_policy
from foureyes.store.database import Database
from foureyes.store.tables import PolicyVersionRow, RequestRow
from foureyes.workflow.governance import GovernanceConnector
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES
from tests.worlds import make_world

EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
CATALOG = demo_catalog()
JO = "e-9001"  # leads: may propose policy updates
RULE = """    when: 'staff.employment == "contractor" && staff.days_left <= 2'\n"""
RULE_LINE = EXAMPLE.splitlines(keepends=True).index(RULE) + 1
assert EXAMPLE.count(RULE) == 1

# The deny rule's `when`, rewritten so that it reads as the original (to a reviewer who reads
# YAML, or who does not) and means something else: each is one instance of the class.
SINGLE = """    when: 'staff.employment == "{}" && staff.days_left <= 2'\n"""
DOUBLE = """    when: "staff.employment == \\"{}\\" && staff.days_left <= 2"\n"""
DISGUISED = {
    # F1: look-alike letters of other scripts (Cyrillic es and o, Greek omicron, Armenian oh).
    "cyrillic": SINGLE.format("\u0441\u043entractor"),
    "greek": SINGLE.format("c\u03bfntractor"),
    "armenian": SINGLE.format("c\u0585ntractor"),
    # ... Latin small capitals, fullwidth and mathematical letters (all "Latin" by script).
    "small capital": SINGLE.format("\u1d04ontractor"),
    "fullwidth": SINGLE.format("\uff43ontractor"),
    "math bold": SINGLE.format("\U0001d41contractor"),
    # F1b: YAML escapes in a double-quoted scalar; the source line is ASCII.
    "escaped zwsp": DOUBLE.format("contr\\u200bactor"),
    "escaped NEL": DOUBLE.format("contractor\\N"),
    "escaped x85": DOUBLE.format("contractor\\x85"),
    "escaped LS": DOUBLE.format("contractor\\L"),
    "escaped PS": DOUBLE.format("contractor\\P"),
    "escaped u2028": DOUBLE.format("contractor\\u2028"),
    "escaped tab": DOUBLE.format("contractor\\t"),
    "escaped nbsp": DOUBLE.format("contractor\\_"),
    "escaped ESC": DOUBLE.format("contractor\\e"),
    "escaped BOM": DOUBLE.format("\\ufeffcontractor"),
    "escaped newline": DOUBLE.format("contractor\\n"),
    "escaped CR": DOUBLE.format("contractor\\r"),
    "escaped filler": DOUBLE.format("contractor\\u3164"),
    "escaped private": DOUBLE.format("contractor\\ue000"),
    "escaped combining": DOUBLE.format("contrac\\u0301tor"),
    # Spaces that read as the ordinary one, raw in a single-quoted scalar.
    "nbsp": SINGLE.format("contractor\u00a0"),
    "narrow nbsp": SINGLE.format("contractor\u202f"),
    "ideographic": SINGLE.format("contractor\u3000"),
    "en quad": SINGLE.format("contractor\u2000"),
    "figure space": SINGLE.format("contractor\u2007"),
    # A raw tab inside the literal (the source-line check reads a tab as a space).
    "raw tab": SINGLE.format("contractor\t"),
    # Third round, F5: CEL's own escapes, decoded by CEL after the YAML was held (in a YAML
    # single-quoted scalar a backslash is itself: CEL reads each escape).
    "cel u": SINGLE.format("c\\u043entractor"),
    "cel U": SINGLE.format("c\\U0000043entractor"),
    "cel x soft hyphen": SINGLE.format("contr\\xadactor"),
    "cel x ascii": SINGLE.format("c\\x6fntractor"),  # decodes to ASCII, still not as read
    "cel X": SINGLE.format("c\\X6fntractor"),
    "cel octal": SINGLE.format("\\143ontractor"),
    "cel zwsp": SINGLE.format("contractor\\u200b"),
    "cel hyphen": SINGLE.format("contr\\u2010actor"),
    "cel newline": SINGLE.format("contractor\\n"),
    "cel tab": SINGLE.format("contractor\\t"),
    "cel bell": SINGLE.format("contractor\\a"),
    "cel question": SINGLE.format("contractor\\?"),
    "cel backtick": SINGLE.format("contractor\\`"),
    # A YAML-escaped backslash: the YAML decodes to `\u043e`, which CEL decodes.
    "cel via yaml escape": DOUBLE.format("c\\\\u043entractor"),
    "cel after a quoting escape": SINGLE.format("contr\\\\\\u200bactor"),  # \\ then \u
    "cel triple-quoted": (
        '    when: |\n      staff.employment == """c\\u043entractor""" && staff.days_left <= 2\n'
    ),
    "cel single-quoted": (
        "    when: |\n      staff.employment == 'c\\u043entractor' && staff.days_left <= 2\n"
    ),
}


def disguised(name: str) -> str:
    return EXAMPLE.replace(RULE, DISGUISED[name], 1)


def proposal(text: str) -> dict[str, Any]:
    return {
        "action": "foureyes.policy.update",
        "account": "foureyes:policy",
        "params": {"text": text},
        "justification": "CHG-1 tidy the contractor rule",
    }


def counts(database: Database) -> tuple[int, int]:
    with database.transaction() as session:
        requests = session.scalar(select(func.count()).select_from(RequestRow))
        versions = session.scalar(select(func.count()).select_from(PolicyVersionRow))
    return int(requests or 0), int(versions or 0)


# --- the rule, on the texts (in process: no database) ---------------------------------------


@pytest.mark.parametrize("name", sorted(DISGUISED))
def test_a_disguised_literal_is_refused_naming_its_line_and_never_quoting_it(name: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(disguised(name), CATALOG, file="proposed policy")
    error = caught.value
    # In a literal block (|) the line is the condition's line holding the literal.
    line = RULE_LINE + (1 if "when: |" in DISGUISED[name] else 0)
    assert (error.line, error.field) == (line, "rules[1].when"), error.message
    named = error.message.replace("rule 'departing-contractors-read-only'", "rule")
    assert "ontractor" not in named.replace("'contractor'", ""), error.message
    assert error.message.isascii(), error.message
    assert error.message.isprintable(), error.message


# A line break in a CEL string literal never compiled, so was never installed.
NEVER_INSTALLED = {"escaped CR", "escaped newline"}


@pytest.mark.parametrize("name", sorted(set(DISGUISED) - NEVER_INSTALLED))
def test_an_installed_version_with_it_still_compiles(name: str) -> None:
    """The rule holds a text about to be accepted, never one installed: compiling an installed
    version must not start failing (it would stop the server) when the rule tightens."""
    policy = parse_policy(disguised(name), CATALOG, file="policy v2")
    assert policy.rule("departing-contractors-read-only")


# Third round, F1 and F2: punctuation and digits that read as ASCII ones, which no table of
# look-alike letters held. The literal names a group (`trust-safety`) and a person.
TS_RULE = """    when: '"trust-safety" in staff.groups && account.tier != "vit"'\n"""
TS_LINE = EXAMPLE.splitlines(keepends=True).index(TS_RULE) + 1
assert EXAMPLE.count(TS_RULE) == 1
TS_TEMPLATE = (
    """    when: '"trust{}safety" in staff.groups && account.tier != "vit" && staff.id != "{}"'\n"""
)
HYPHENS = {
    "U+2010 HYPHEN": "\u2010",
    "U+2011 NON-BREAKING HYPHEN": "\u2011",
    "U+2012 FIGURE DASH": "\u2012",
    "U+2013 EN DASH": "\u2013",
    "U+2212 MINUS SIGN": "\u2212",
    "U+2043 HYPHEN BULLET": "\u2043",
    "U+02D7 MODIFIER LETTER MINUS SIGN": "\u02d7",
    "U+FE63 SMALL HYPHEN-MINUS": "\ufe63",
    "U+FF0D FULLWIDTH HYPHEN-MINUS": "\uff0d",
    "U+058A ARMENIAN HYPHEN": "\u058a",
    "U+1400 CANADIAN SYLLABICS HYPHEN": "\u1400",
}
# A person's id with digits of other scripts, and other punctuation that reads as ASCII.
IDS = {
    "U+0966 DEVANAGARI DIGIT ZERO": "e-3\u096601",
    "U+09E6 BENGALI DIGIT ZERO": "e-3\u09e601",
    "U+0E50 THAI DIGIT ZERO": "e-3\u0e5001",
    "U+0660 ARABIC-INDIC DIGIT ZERO": "e-3\u066001",
    "U+06F0 EXTENDED ARABIC-INDIC DIGIT ZERO": "e-3\u06f001",
    "U+0AE6 GUJARATI DIGIT ZERO": "e-3\u0ae601",
    "U+0ED0 LAO DIGIT ZERO": "e-3\u0ed001",
    "U+1040 MYANMAR DIGIT ZERO": "e-3\u104001",
    "U+17E0 KHMER DIGIT ZERO": "e-3\u17e001",
    "U+09E7 BENGALI DIGIT ONE": "e-300\u09e7",
    "U+096A DEVANAGARI DIGIT FOUR": "e-\u096a711",
    "U+FF10 FULLWIDTH DIGIT ZERO": "e-3\uff1001",
    "U+1D7CE MATHEMATICAL BOLD DIGIT ZERO": "e-3\U0001d7ce01",
    "U+2080 SUBSCRIPT ZERO": "e-3\u208001",
    "U+FF45 FULLWIDTH LATIN SMALL LETTER E": "\uff45-3001",
    "U+2024 ONE DOT LEADER": "e\u20243001",
    "U+FF0E FULLWIDTH FULL STOP": "e\uff0e3001",
    "U+0589 ARMENIAN FULL STOP": "e\u05893001",
    "U+2215 DIVISION SLASH": "e\u22153001",
    "U+02BC MODIFIER LETTER APOSTROPHE": "e\u02bc3001",
    "U+2019 RIGHT SINGLE QUOTATION MARK": "e\u20193001",
}


def hyphenated(hyphen: str, person: str = "e-3001") -> str:
    return EXAMPLE.replace(TS_RULE, TS_TEMPLATE.format(hyphen, person), 1)


LOOKALIKE_TEXTS = {
    **{name: hyphenated(char) for name, char in HYPHENS.items()},
    **{name: hyphenated("-", person) for name, person in IDS.items()},
}


def test_the_honest_spelling_passes() -> None:
    parse_new_policy(hyphenated("-"), CATALOG, file="proposed policy")


@pytest.mark.parametrize("name", sorted(LOOKALIKE_TEXTS))
def test_punctuation_and_digits_that_read_as_ascii_are_refused(name: str) -> None:
    """Whatever a character looks like: outside prose, only printable ASCII (no table)."""
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(LOOKALIKE_TEXTS[name], CATALOG, file="proposed policy")
    error = caught.value
    assert error.line == TS_LINE, error.message
    assert error.field is not None, error.message
    assert error.field.startswith("rules["), error.field
    assert error.field.endswith("].when"), error.field
    assert f"holds {name}: outside descriptions and test names" in error.message, error.message
    assert "safety" not in error.message, error.message
    assert "3001" not in error.message, error.message
    assert error.message.isascii(), error.message
    assert error.message.isprintable(), error.message


@pytest.mark.parametrize("name", sorted(LOOKALIKE_TEXTS))
def test_an_installed_version_with_a_lookalike_still_compiles(name: str) -> None:
    policy = parse_policy(LOOKALIKE_TEXTS[name], CATALOG, file="policy v3")
    assert policy.digest != parse_policy(hyphenated("-"), CATALOG, file="policy v2").digest


ALLOWED_LITERALS = {
    # An escaped backslash stands for what it shows (a quote, escaped or not, is refused:
    # test_policy_reaching_literals.py); a raw string (a regular expression's) is read as
    # written, its backslashes and all.
    "an escaped backslash": 'staff.region != "a\\\\c"',
    "single-quoted": "staff.region != 'a-c'",
    "raw": 'params["reason"].matches(r"^e-\\d+\\.x$") || staff.days_left > 400',
    "raw capital": 'params["reason"].matches(R"^e-\\x41$") || staff.days_left > 400',
    "raw triple": 'params["reason"].matches(r"""^e-\\d+$""") || staff.days_left > 400',
    # `//` in a literal is no comment (a CEL comment is refused: test_policy_folding.py).
    "a comment's opener in a literal": 'staff.region != "x // \\\\u0441"',
}


@pytest.mark.parametrize("name", sorted(ALLOWED_LITERALS))
def test_quoting_escapes_and_raw_strings_pass(name: str) -> None:
    when = f'staff.employment == "contractor" && staff.days_left <= 2 && ({ALLOWED_LITERALS[name]}'
    text = EXAMPLE.replace(RULE, f"    when: |\n      {when}\n      )\n", 1)
    parse_new_policy(text, CATALOG, file="proposed policy")


@pytest.mark.parametrize(
    "escape", ["\\u0441", "\\U00000441", "\\x41", "\\101", "\\n", "\\`", "\\?", "\\000"]
)
def test_every_other_cel_escape_is_refused_in_any_condition(escape: str) -> None:
    """In every kind of condition a policy holds (a tier, a rule's when and approvers, a
    break-glass condition, a batch rule, an invariant), by the compiler of a new text."""
    places = [
        ("    when: account.verified\n", f'    when: account.verified && "v{escape}" != ""\n'),
        (
            """    approvers: '"trust-safety" in approver.groups'\n""",
            f"""    approvers: '"trust-safety" in approver.groups && "{escape}" != ""'\n""",
        ),
        (
            'break_glass: {allowed_when: \'staff.employment == "employee"',
            f'break_glass: {{allowed_when: \'"{escape}" != "" && staff.employment == "employee"',
        ),
    ]
    for old, new in places:
        assert EXAMPLE.count(old) == 1, old
        with pytest.raises(PolicyError, match="a CEL string literal holds") as caught:
            parse_new_policy(EXAMPLE.replace(old, new, 1), CATALOG, file="proposed policy")
        assert caught.value.line is not None
        assert caught.value.field is not None
        parse_policy(EXAMPLE.replace(old, new, 1), CATALOG, file="installed")  # compiles


@pytest.mark.parametrize(
    "literal", ['b"e-3001"', 'B"e-3001"', "b'e-3001'", 'rb"e-3001"', 'bR"e-3001"', 'b"""e-3001"""']
)
def test_a_bytes_literal_that_reads_as_a_string_is_refused(literal: str) -> None:
    """`approver.id != b"e-3001"` reads as "not Tomas" but no string equals bytes: the
    condition holds for everyone (attack r4 F2: a deny rule matching nobody). A new text may
    hold no bytes literal at all."""
    in_yaml = literal.replace("'", "''")  # the condition is a single-quoted YAML scalar
    text = EXAMPLE.replace(TS_RULE, TS_TEMPLATE.format("-", "e-3001"), 1).replace(
        '"e-3001"', in_yaml, 1
    )
    assert in_yaml in text
    with pytest.raises(PolicyError, match="a CEL bytes literal") as caught:
        parse_new_policy(text, CATALOG, file="proposed policy")
    assert caught.value.line == TS_LINE
    assert "3001" not in caught.value.message


# The languages people write in: free in prose (descriptions, test names and justifications),
# refused anywhere a decision reads (a group, a key, a notify target, a region).
LANGUAGES = [
    "Блокировка со мной, а также",  # noqa: RUF001 - Russian prose, look-alikes and all
    "東京タワーとTokyo",
    "서울 Seoul 사무소",
    "relu par la sécurité — מאושר",
    "Genève, Zürich, Kraków, São Paulo",
    "Ελληνικά κείμενα",
]


@pytest.mark.parametrize("value", LANGUAGES)
def test_a_language_is_prose_in_descriptions_and_test_names_only(value: str) -> None:
    quoted = value.replace("'", "''")
    prose = (
        EXAMPLE.replace("version: 1\n", f"version: 1\ndescription: '{quoted}'\n", 1)
        .replace(
            "  - name: the 2017 incident is held for approval\n",
            f"  - name: '{quoted}'\n",
            1,
        )
        .replace("    justification: CASE-77\n", f"    justification: 'CASE-77 {quoted}'\n", 1)
    )
    assert prose.count(quoted) == 3
    parse_new_policy(prose, CATALOG, file="proposed policy")
    decided = {
        "a group": (
            """    when: '"support" in staff.groups'\n""",
            f"""    when: '"{quoted}" in staff.groups'\n""",
        ),
        "a notify target": ("    notify: [security]\n", f"    notify: ['{quoted}']\n"),
        "a region": (
            "quotas:\n",
            f"detectors:\n  off_hours:\n    regions:\n      '{quoted}': {{}}\nquotas:\n",
        ),
        "a test's staff": (
            "{id: e-2001, groups: [support], employment: employee, days_left: 400}\n"
            "    action: account.lock\n",
            f"{{id: e-2001, groups: [support], employment: '{quoted}', days_left: 400}}\n"
            "    action: account.lock\n",
        ),
    }
    for place, (old, new) in decided.items():
        assert EXAMPLE.count(old) >= 1, place
        with pytest.raises(PolicyError, match="outside descriptions and test names") as caught:
            parse_new_policy(EXAMPLE.replace(old, new, 1), CATALOG, file="proposed policy")
        assert caught.value.line is not None, place
        assert quoted not in caught.value.message, place


@pytest.mark.parametrize(
    "loc",
    [
        ("description",),
        ("tiers", 0, "description"),
        ("rules", 12, "description"),
        ("quotas", 0, "description"),
        ("batches", 0, "description"),
        ("invariants", 3, "description"),
        ("tests", 0, "name"),
        ("tests", 9, "justification"),
    ],
)
def test_prose_is_only_where_no_decision_reads(loc: tuple[str | int, ...]) -> None:
    assert wording.is_prose(loc)
    assert not wording.is_prose((*loc, 0))
    assert not wording.is_prose(loc[:-1])
    assert not wording.is_prose((*loc[:-1], "when"))


@pytest.mark.parametrize(
    "loc",
    [
        ("rules", 0, "when"),
        ("rules", 0, "id"),
        ("rules", 0, "notify", 0),
        ("tests", 0, "staff", "id"),
        ("tests", 0, "account", "description"),  # an account attribute: test data
        ("tests", 0, "batch", "accounts", 0, "description"),
        ("tiers", True, "description"),  # YAML's `true` is no index
        ("detectors", "off_hours", "regions", "x", "timezone"),
        ("rules", "0", "description"),
    ],
)
def test_what_a_decision_reads_is_not_prose(loc: tuple[str | int, ...]) -> None:
    assert not wording.is_prose(loc)


PLACES = {
    # Where else a string sits: keys, descriptions, test names, test data, lists, a tier.
    "a key": ("quotas:\n", 'detectors:\n  "veloc\\u200bity": {enabled: true}\nquotas:\n'),
    "a description": ("version: 1\n", "version: 1\ndescription: 'ok\u00a0here'\n"),
    "a test name": (
        "  - name: support locks an ordinary account alone\n",
        '  - name: "support locks an ordinary account alone\\e[0G\\e7"\n',
    ),
    "a test's staff": (
        "{id: e-2001, groups: [support], employment: employee, days_left: 400}\n"
        "    action: account.lock\n",
        '{id: e-2001, groups: [support], employment: "employee\\u200b", days_left: 400}\n'
        "    action: account.lock\n",
    ),
    "a notify target": ("    notify: [security]\n", "    notify: [s\u0435curity]\n"),
    "a whole-script look-alike group": (
        """    when: '"support" in staff.groups'\n""",
        """    when: '"\u0455\u0443\u0440\u0440\u043e\u0433t" in staff.groups'\n""",
    ),
    "a Cyrillic-only look-alike word": (
        """    when: '"support" in staff.groups'\n""",
        """    when: '"\u043e\u0440\u0455" in staff.groups || "support" in staff.groups'\n""",
    ),
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_every_key_and_string_value_is_held_wherever_it_sits(place: str) -> None:
    old, new = PLACES[place]
    assert old in EXAMPLE, place
    text = EXAMPLE.replace(old, new, 1)
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(text, CATALOG, file="proposed policy")
    assert caught.value.line is not None, caught.value.message


def test_a_bad_key_is_named_by_its_parent_never_quoted() -> None:
    text = EXAMPLE.replace("quotas:\n", 'detectors:\n  "x[/conceal]\\e[8m": {}\nquotas:\n', 1)
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(text, CATALOG, file="proposed policy")
    assert caught.value.field == "detectors"
    assert caught.value.line == EXAMPLE.splitlines().index("quotas:") + 2  # the key's own line
    assert "conceal" not in caught.value.message
    assert caught.value.message.endswith(
        "a key here holds line breaks, control or invisible characters"
    )


def test_a_top_level_key_is_located_by_its_own_line() -> None:
    text = EXAMPLE + '"tests\\u200b": []\n'
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(text, CATALOG, file="proposed policy")
    assert caught.value.line == len(EXAMPLE.splitlines()) + 1
    assert caught.value.message.startswith(f"proposed policy:{caught.value.line}: a key here ")


def test_a_comments_hidden_line_break_is_refused_as_a_document_lines_are() -> None:
    """Attack H3 again, at this layer (so `init` and `policy check` refuse it as well)."""
    for breaker in ("\u0085", "\u2028", "\u2029"):
        text = EXAMPLE + f"# reviewed{breaker}detectors: {{velocity: {{enabled: false}}}}\n"
        with pytest.raises(PolicyError, match="the line holds line breaks"):
            parse_new_policy(text, CATALOG, file="proposed policy")


@pytest.mark.parametrize(
    "value",
    [
        "Блокировка со мной, а также",  # noqa: RUF001 - Russian prose, look-alikes and all
        "Москва",
        "東京タワーとTokyo",  # Japanese mixes Han, kana and Latin
        "서울 Seoul 사무소",
        "relu par la sécurité — מאושר",
        "Genève, Zürich, Kraków, São Paulo",
        "Ελληνικά κείμενα",  # Greek prose with letters that look Latin among others
        "x[/conceal] [red]markup is text[/red]",  # printable ASCII (the CLI prints it as is)
    ],
)
def test_peoples_languages_pass(value: str) -> None:
    assert wording.problem(value) is None, value


@pytest.mark.parametrize(
    "value",
    [
        "c\u043entractor",  # Cyrillic o in a Latin word
        "\u0441ontractor",
        "contract\u03bfr",  # Greek omicron
        "\u043e\u0440\u0455",  # all Cyrillic, reads as "ops"
        "\u0430dmin-team",  # Cyrillic a at the start of a hyphenated name
        "ops \u0430dmins",
        "\u0391\u0392\u0395",  # Greek capitals that read as ABE
        "k\u0430p\u0131",  # Cyrillic a and a dotless i
        "\u1d00dmin",  # small capital a
        "\u0261roup",  # script g
        "\uff21dmin",  # fullwidth A
        "\u2160",  # roman numeral one
        "admin\u00a0",
        "admin\u2009",  # thin space
        "admin\u205f",  # medium mathematical space
        "ad\u200dmin",  # zero-width joiner
        "ad\u2060min",  # word joiner
        "ad\u00admin",  # soft hyphen
        "admin\u180e",  # Mongolian vowel separator
        "admin\u034f",  # combining grapheme joiner
        "admin\ufe0f",  # variation selector
        "admin\U000e0041",  # tag letter
        "admin\u115f",  # Hangul choseong filler
        "admin\u2800",  # Braille blank
        "admin\U000f0000",  # private use (plane 15)
        "admin\u0378",  # unassigned
        "a\u0301\u0301\u0301\u0301",  # stacked marks
        "a\x1b[2Jb",
        "a\x1b]8;;https://evil.example\x1b\\b",  # OSC 8
        "a\rb",
        "a\nb",  # not a block scalar
        "a\tb",
        "e\u0301",  # decomposed é (NFC would compose it: another value)
        "\u212a",  # Kelvin sign (reads as K; NFC makes it K)
    ],
)
def test_variants_are_refused(value: str) -> None:
    assert wording.problem(value) is not None, ascii(value)


def test_a_block_scalar_may_break_lines() -> None:
    text = EXAMPLE.replace(
        RULE,
        '    when: |\n      staff.employment == "contractor"\n      && staff.days_left <= 2\n',
        1,
    )
    parse_new_policy(text, CATALOG, file="proposed policy")
    flow = EXAMPLE.replace(
        RULE, '    when: "staff.employment == \\"contractor\\"\\n&& staff.days_left <= 2"\n', 1
    )
    with pytest.raises(PolicyError, match="block scalar"):
        parse_new_policy(flow, CATALOG, file="proposed policy")


def test_the_examples_pass() -> None:
    parse_new_policy(EXAMPLE, CATALOG, file="example")


# --- at submission, at execution, at init ---------------------------------------------------


@pytest.mark.parametrize(
    "name", ["cyrillic", "escaped zwsp", "escaped NEL", "nbsp", "narrow nbsp", "escaped tab"]
)
def test_the_server_refuses_them_at_submission(api: Api, name: str) -> None:
    before = counts(api.world.services.database)
    for path in ("/v1/decisions", "/v1/requests"):
        body = assert_problem(api.post(JO, path, proposal(disguised(name))), 422, "invalid-policy")
        assert body["detail"].startswith(f"proposed policy:{RULE_LINE}: rules[1].when: the text ")
    assert counts(api.world.services.database) == before


TYPO = """    when: 'staff.employment == "employee" && staff.days_left <= 2'\n"""


def test_a_policy_whose_own_tests_fail_is_refused_at_submission_naming_them(api: Api) -> None:
    """F1's effect in plain ASCII (a valid but wrong value: the deny rule matches employees,
    not contractors; a value outside the domain, `"contractors"`, is refused before this):
    no wording rule catches it, its own tests do."""
    before = counts(api.world.services.database)
    body = assert_problem(
        api.submit(JO, **proposal(EXAMPLE.replace(RULE, TYPO, 1))), 422, "bad-input"
    )
    detail = body["detail"]
    assert detail.startswith("2 of the policy's own 9 tests fail: "), detail
    assert "'on the last day it is refused outright' (outcome: expected denied, got" in detail
    assert '"a departing contractor\'s batch suspends nothing"' in detail
    assert counts(api.world.services.database) == before
    made = api.submit(JO, **proposal(EXAMPLE + "# reviewed\n"))
    assert made.status_code == 201, made.text


def test_a_test_naming_a_staff_id_reads_the_directory_in_force(api: Api) -> None:
    """A test may name a person by id: the server reads the directory in force (the CLI reads
    --staff). An id nobody has fails the test, and the update with it."""
    test = (
        "  - name: ana locks an ordinary account alone\n"
        "    staff: {who}\n"
        "    action: account.lock\n"
        "    account: {{id: someone, followers: 120, verified: false}}\n"
        "    expect: {{outcome: allowed}}\n"
    )
    made = api.submit(JO, **proposal(EXAMPLE + test.format(who="e-2001")))
    assert made.status_code == 201, made.text
    body = assert_problem(
        api.submit(JO, **proposal(EXAMPLE + test.format(who="e-0000"))), 422, "bad-input"
    )
    assert "unknown staff id 'e-0000'" in body["detail"]


def order(text: str, key: str) -> ExecutionOrder:
    return ExecutionOrder(
        "foureyes.policy.update",
        "policy",
        {"text": text},
        idempotency_key=key,
        approvers=("e-4001",),
        requester=JO,
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (disguised("cyrillic"), "U\\+0441 CYRILLIC SMALL LETTER ES: outside descriptions"),
        (disguised("escaped zwsp"), "U\\+200B ZERO WIDTH SPACE"),
        (hyphenated("\u2010"), "U\\+2010 HYPHEN"),
        (disguised("cel u"), "a CEL string literal holds \\\\u"),
        (EXAMPLE.replace(RULE, TYPO, 1), "2 of the policy's own 9 tests fail"),
    ],
)
def test_an_approved_update_that_fails_the_rule_is_held_at_execution(
    database: Database, text: str, reason: str
) -> None:
    """A request accepted before the rule existed (or whose tests pass no longer) reaches
    execution: it fails, and no version is made."""
    world = make_world(database)
    governance = world.services.connectors[FOUREYES_PLATFORM]
    assert isinstance(governance, GovernanceConnector)
    with pytest.raises(ConnectorError, match=reason) as caught:
        governance.execute(order(text, "req-held"))
    assert caught.value.transient is False
    assert counts(database)[1] == 1
    assert governance.reconcile(order(text, "req-held")).applied is False


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (disguised("cyrillic"), "U\\+0441 CYRILLIC SMALL LETTER ES"),
        (disguised("escaped NEL"), "U\\+0085"),
        (hyphenated("\u2212"), "U\\+2212 MINUS SIGN"),
        (disguised("cel octal"), "a CEL string literal holds \\\\1"),
        (EXAMPLE.replace(RULE, TYPO, 1), "2 of the policy's own 9 tests fail"),
    ],
)
def test_init_refuses_a_first_policy_that_fails_the_rule_or_its_tests(
    database: Database, text: str, reason: str
) -> None:
    with pytest.raises(BadInput, match=reason):
        make_world(database, text)
    assert counts(database) == (0, 0)


def test_a_version_installed_before_the_rule_keeps_serving(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed (at init, with the rule switched off) with a no-break space in a literal: the
    server compiles it, decides with it, and the next update must meet the rule."""
    installed = EXAMPLE.replace("version: 1\n", "version: 1\ndescription: 'chirp\u00a0policy'\n")
    monkeypatch.setattr(compiler, "check_wording", lambda *_: None)  # the rule as it was
    world = make_world(database, installed)
    monkeypatch.undo()
    with world.services.database.transaction() as session:
        version, policy = world.services.policy_in_force(session)
        # Read and compiled afresh (never from the cache), as an update's check reads it.
        assert world.services.policy_text_in_force(session) == (1, installed)
    assert version == 1
    assert policy.rule("departing-contractors-read-only")
    governance = world.services.connectors[FOUREYES_PLATFORM]
    assert isinstance(governance, GovernanceConnector)
    with pytest.raises(PolicyError, match="U\\+00A0 NO-BREAK SPACE"):
        governance.check_policy(installed)
    governance.check_policy(EXAMPLE)  # the fix is accepted
