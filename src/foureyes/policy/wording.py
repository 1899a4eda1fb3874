"""The wording rule of a new policy text: what its reviewers read is what it means.

A policy update is approved by people reading its YAML. Characters that render like others
(a U+2010 HYPHEN for `-`, a Bengali zero for `0`, a Cyrillic es for `c`, a fullwidth letter),
that render as nothing, and escapes (YAML's `"\\u200b"`, CEL's `"\\u2010"`, `"\\143"`) put into
the parsed policy a value that reads as another: `staff.id in ["c-3004"]` with a U+2010 for
its hyphen reads as the deny rule it replaces and matches nobody (attacks F1, F1b of the
second and F1, F2, F5 of the third policy-text round). No table of look-alikes is complete, so
the rule is by kind of text:

- everything that is not prose is printable ASCII (U+0020 to U+007E; a line break only inside
  a block scalar, `|` or `>`): every mapping key at any depth, every CEL condition, every
  id, group, tier, pin, action, pattern, duration and test datum. Prose is only what no
  decision reads: `description` (of the policy, a tier, rule, quota, batch rule or
  invariant), a test's `name` and a test's `justification` (a sample of what staff type);
- a CEL string literal holds no escape but `\\\\`, `\\"` and `\\'` (`\\u`, `\\x`, `\\U`, octal and
  the control escapes would decode to what the source does not show); a raw string
  (`r"\\d+"`, for a regular expression) is read as written; nor does it start or end with
  whitespace or hold a line break (`"president "` reads as the account and names none);
  nor does it hold a quote or an operator (`'active" || account.tier == "vit'` is one
  literal read as two comparisons: attack pol7-F4);
- a condition (every CEL field) is one line, or a literal block (`|`) read line for line:
  never folded (a `>` block, or a plain or quoted scalar over several lines, whose lines
  YAML joins into one), and it holds no CEL comment (`//`): once folded, a comment ran to the
  end of the *joined* line and swallowed the source lines after it, so a deny rule reading
  `account.id == "chirp" // ... || account.id == "president"` protected @chirp alone
  (attack names F4). What a rule is for is said in its `description`
  (`condition_problem`, called by the compiler on every condition of a new text; what its
  literals name is `foureyes.policy.literals`);
- and everything (prose too, and each source line, comments included) is held to the rule
  that came before, which is what lets prose be written in any language without reading as
  something it is not:

  - every source line, as a document param's (`foureyes.workflow.typed_params`): nothing a
    reader cannot see (`foureyes.text.refuse_unseen`), so a line break YAML reads and a reader
    does not (U+0085, U+2028) cannot turn a comment's tail into live policy;
  - every key and string value: nothing a reader cannot see either (controls, tabs, format and
    blank-looking characters, private-use, stacked marks); a line break only inside a block
    scalar (`|`, `>`), where the reader sees the lines;
  - no space but U+0020 (a no-break or ideographic space reads as an ordinary one);
  - composed (NFC) text, and no letter with a compatibility form (fullwidth or mathematical
    letters, ligatures): the same word typed another way is another value;
  - no letter of another script that reads as a Latin one (`foureyes.text.confusables`) where
    the text reads as Latin: not inside a word that mixes scripts, nor in a run of words all
    of whose letters are ASCII or such look-alikes (Cyrillic er, o, dze alone read as `ops`;
    inside Russian prose it is Russian); the Latin small capitals and IPA letters that read
    as another letter, anywhere. A word may mix Latin with Han, kana, Bopomofo or Hangul (as
    Japanese, Chinese and Korean are written); no other two scripts. This part is a table,
    and no table is complete (other punctuation and digits are not in it): it is why nothing
    but prose may leave ASCII.

Only a text about to be accepted is held to it: `foureyes init`'s first policy, a policy
update at submission and again at execution (the budgeted check, `foureyes.policy.sandbox`),
and `foureyes policy check` / `test` / `diff`'s proposed file. A version already installed is
compiled as it is (`compiler.parse_policy`): a text accepted before this rule existed keeps
serving, and the next update must meet it. Refused with PolicyError naming the file, line and
field (and a key's parent, never the key), and the character's code point and name or the
word's Latin reading, never the text itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from foureyes.errors import BadInput, PolicyError
from foureyes.policy.cel.lexer import CelSyntaxError, Token, tokenize
from foureyes.policy.yamlsource import Loc, SourceDocument, dotted
from foureyes.text import refuse_unseen
from foureyes.text.confusables import LATIN_LOOKALIKES

__all__ = [
    "PROSE",
    "check_wording",
    "condition_problem",
    "is_prose",
    "problem",
]

# The free prose of a policy (no decision reads it): where a value may leave ASCII. `int`
# stands for any index of a list.
PROSE: tuple[tuple[str | type[int], ...], ...] = (
    ("description",),
    ("tiers", int, "description"),
    ("rules", int, "description"),
    ("quotas", int, "description"),
    ("batches", int, "description"),
    ("invariants", int, "description"),
    ("tests", int, "name"),
    ("tests", int, "justification"),
)
_ASCII_ONLY = "outside descriptions and test names a policy is written in printable ASCII"
# The escapes a CEL string literal may hold: each stands for the character it escapes.
_CEL_QUOTING = frozenset("\\\"'")

# Scripts a word may mix with Latin, as the languages written with them do (UTS #39's
# "highly restrictive" sets).
_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Letters of no one script (their names start with these words).
_COMMON = frozenset({"MODIFIER", "KATAKANA-HIRAGANA"})
# The Latin-script look-alikes a language writes as a letter of its own (Turkish dotless i):
# held by the Latin-reading rule only. The rest (small capitals, IPA) are refused anywhere.
_LATIN_LETTERS = frozenset({"\u0131"})
_AS_LATIN = {ord(char): latin for char, latin in LATIN_LOOKALIKES.items()}
_WORD = re.compile(r"[^\W\d_]+")  # letters only (marks, digits and `_` end a word)
# A run read as one phrase: words, digits and the separators within a name (`ops-admins`).
_PHRASE_BREAK = re.compile(r"[^\w \-.]+")


def check_wording(text: str, source: SourceDocument) -> None:
    """PolicyError (file, line, field) at the first line, key or string value of `source`
    (the parse of `text`) that breaks the module's rule."""
    for number, raw in enumerate(text.split("\n"), start=1):
        try:
            refuse_unseen(raw.removesuffix("\r").replace("\t", " "), "line")
        except BadInput:
            raise PolicyError(
                "the line holds line breaks, control or invisible characters",
                file=source.file,
                line=number,
            ) from None
    for loc, is_key, value in _strings(source.data, ()):
        lines = not is_key and loc in source.blocks
        if not is_key and is_prose(loc):
            found = problem(value, lines=lines)
        else:
            found = _outside_prose(value, lines=lines)
        if found is None:
            continue
        if not is_key:
            raise source.error(loc, f"the text {found}")
        # Located by the key's own line, named by its parent (the key is never quoted).
        line = source.lines.get((*loc, value)) or source.line_of(loc)
        raise PolicyError(f"a key here {found}", file=source.file, line=line, field=dotted(loc))


def is_prose(loc: Loc) -> bool:
    """Whether the value at `loc` is free prose (`PROSE`)."""
    return any(
        len(loc) == len(pattern)
        and all(
            (isinstance(part, int) and not isinstance(part, bool))
            if expected is int
            else part == expected
            for part, expected in zip(loc, pattern, strict=True)
        )
        for pattern in PROSE
    )


def _outside_prose(value: str, *, lines: bool) -> str | None:
    """`problem` for a key or a value that is not prose: its first character outside ASCII
    is named, whatever it looks like (no table decides it)."""
    for char in value:
        if not char.isascii():
            return f"holds {_named(char)}: {_ASCII_ONLY}"
    return problem(value, lines=lines)  # ASCII controls, tabs, line breaks


def condition_problem(condition: str, *, folded: bool = False) -> tuple[str, int] | None:
    """What makes `condition` (a CEL field of a new text) mean something other than its
    source shows, with the offset in it of where it starts; None when nothing does:

    - `folded`: YAML joined the lines the source showed into one (a `>` block, a plain or
      quoted scalar over several lines; attack names F4), so a condition's meaning would
      depend on folding. A condition is one line, or a literal block (`|`), read as written;
    - a CEL comment (`//` outside a string literal): after folding, or read by someone who
      takes it for a note, it hides the live text after it (`a == "x" // note || a == "y"`
      is `a == "x"`). Prose belongs in `description`; no comment is needed in a condition;
    - a string literal that decodes to what its source does not show: an escape other than
      `\\\\`, `\\"`, `\\'` in a literal that is not raw, or any bytes literal;
    - a string literal with leading or trailing whitespace, or a line break (`"president "`
      reads as the account and equals no id: attack names F5);
    - a string literal holding a quote or an operator (`&&`, `||`, `==`, `!=`): `a ==
      'x" || b == "y'` reads as two comparisons and is one (attack pol7-F4).

    A condition that does not lex is left to the compiler, which refuses it; a `//` anywhere
    in it is refused first (it cannot be told from a comment without lexing)."""
    if folded:
        return (
            "a condition is one line or a literal block (|), never folded (a > block, or a"
            " plain or quoted scalar over several lines, whose lines YAML joins into one)",
            0,
        )
    try:
        tokens = tokenize(condition)
    except CelSyntaxError:
        at = condition.find("//")
        return None if at < 0 else (_COMMENT, at)
    previous = 0
    for token in tokens:
        gap = condition[previous : token.pos]
        if gap.strip():  # the lexer skips only whitespace and comments between tokens
            return _COMMENT, previous + len(gap) - len(gap.lstrip())
        previous = token.end
        found = _literal_problem(token, condition[token.pos : token.end])
        if found is not None:
            return found, token.pos
    return None


_READS_AS_CODE = ("&&", "||", "==", "!=")
_COMMENT = (
    "a condition holds no CEL comment (//: it hides what follows it once lines are joined);"
    " say what the rule is for in its description"
)


def _literal_problem(token: Token, source: str) -> str | None:
    if token.kind == "bytes":
        # `b"c-1001"` reads as the id but equals no string: `staff.id in [b"c-1001"]`
        # is a deny rule that matches nobody (attack r4 F2). No field is bytes.
        return (
            'a CEL bytes literal (b"...") equals no string, whatever it reads as: '
            "write a string literal"
        )
    if token.kind != "string":
        return None
    value = str(token.value)
    if "\n" in value or "\r" in value:
        return "a CEL string literal holds a line break: write it on one line"
    if '"' in value or "'" in value:
        # `account.status == 'active" || account.tier == "vit'` is one literal compared with
        # the status, read as three comparisons (attack pol7-F4). No id, account, group or pin
        # holds a quote.
        return (
            "a CEL string literal holds a quote: what follows it reads as the rest of the "
            "condition and is part of the literal; no id, account, group or pin holds one"
        )
    if any(operator in value for operator in _READS_AS_CODE):
        return (
            "a CEL string literal holds an operator (&&, ||, ==, !=): it reads as part of the "
            "condition and is part of the literal"
        )
    if value != value.strip():
        # `"president "` reads as the account and names none (attack names F5).
        return (
            "a CEL string literal starts or ends with whitespace: it reads as the value "
            "without it, and equals no id, account or group"
        )
    prefix = source[: len(source) - len(source.lstrip("rRbB"))]
    if "r" in prefix.lower():
        return None  # raw: read as written
    index = source.find("\\")
    while index >= 0:
        escaped = source[index + 1]  # a literal that lexed has a character after it
        if escaped not in _CEL_QUOTING:
            shown = f"\\{escaped}" if escaped.isascii() and escaped.isalnum() else "an escape"
            return (
                f"a CEL string literal holds {shown}: write the character itself (in "
                "ASCII); only \\\\, \\\" and \\' may be escaped (a regular expression is "
                'best written as a raw string, r"...")'
            )
        index = source.find("\\", index + 2)
    return None


def _strings(data: Any, loc: Loc) -> Iterator[tuple[Loc, bool, str]]:
    """(location, is a key, text) of every key and string value under `data`; a key is
    given with its parent's location, before anything under it."""
    todo: list[tuple[Loc, Any]] = [(loc, data)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, str):
            yield where, False, value
        elif isinstance(value, dict):
            for key in value:
                yield where, True, str(key)
            todo.extend(((*where, str(key)), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            todo.extend(((*where, index), item) for index, item in reversed(list(enumerate(value))))


def problem(value: str, *, lines: bool = False) -> str | None:
    """What makes `value` read as something it is not ("holds ..."), or None; `lines`: it
    is a block scalar, which may break lines."""
    if not value:
        return None
    if "\t" in value:
        return "holds a tab (indent and separate with spaces)"
    if "\n" in value and not lines:
        return "holds a line break (write text of several lines as a block scalar, | or >)"
    for line in value.split("\n"):
        try:
            refuse_unseen(line, "text")
        except BadInput:
            return "holds line breaks, control or invisible characters"
    if value.isascii():
        return None
    if unicodedata.normalize("NFC", value) != value:
        return "is not in composed form (NFC): the same letters typed another way differ"
    for char in sorted(set(value)):
        found = _character(char)
        if found is not None:
            return found
    for word in _WORD.findall(value):
        scripts = {script for script in map(_script, word) if script is not None}
        if len(scripts) > 1 and not any(scripts <= allowed for allowed in _MIXES):
            named = " and ".join(sorted(name.title() for name in scripts))
            return f"mixes {named} letters in one word{_reading(word)}"
    for phrase in _PHRASE_BREAK.split(value):
        if _reads_as_latin(phrase):
            return f"spells Latin-looking text with look-alike letters{_reading(phrase)}"
    return None


def _character(char: str) -> str | None:
    category = unicodedata.category(char)
    if category == "Zs" and char != " ":
        return f"holds {_named(char)}, which reads as an ordinary space"
    if (category[0] == "L" or category in ("Nd", "Nl")) and unicodedata.normalize(
        "NFKC", char
    ) != char:
        return f"holds {_named(char)}, a compatibility form of another character"
    if char in LATIN_LOOKALIKES and _script(char) == "LATIN" and char not in _LATIN_LETTERS:
        return f"holds {_named(char)}, which reads as {LATIN_LOOKALIKES[char]!r}"
    return None


def _reads_as_latin(phrase: str) -> bool:
    """Whether every letter of `phrase` is ASCII or a look-alike of a Latin letter, and one
    is a look-alike: it reads as Latin and is not."""
    letters = [char for char in phrase if char.isalpha()]
    return any(char in LATIN_LOOKALIKES for char in letters) and all(
        char.isascii() or char in LATIN_LOOKALIKES for char in letters
    )


def _reading(text: str) -> str:
    """`: it reads as 'ops'` when every letter has a Latin reading; else nothing (the text
    itself is never quoted)."""
    reading = text.strip().translate(_AS_LATIN)
    if reading.isascii() and reading.isprintable() and len(reading) <= 60:
        return f" (it reads as {reading!r})"
    return ""


def _script(char: str) -> str | None:
    """The script of a letter, by the first word of its Unicode name (`CYRILLIC SMALL LETTER
    ES`); None for what is not a letter or belongs to no one script."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0]
    if not first or first in _COMMON:
        return None
    if first == "CJK":
        return "HAN"
    return first


def _named(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}"
