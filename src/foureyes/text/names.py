"""What a person's name may hold, and how a label names a person (`person_label`).

A label puts the staff id beside the name (`Tomas Berg (e-3001)`), so a name must not be able to
carry an id, a bracket or a look-alike of another person's name. Deny-lists of what a name may
not hold were got around with what they did not list (attack names F1: hook brackets U+239B
(a math symbol), Yi radicals ꒰꒱, a Cyrillic Ze read as 3, Canadian syllabics and Cherokee
letters read as Latin ones, a modifier apostrophe). So a name is held to what it may hold
(`name_problem`), and everything else is refused:

- letters (Unicode categories Lu, Ll, Lt, Lo; not the modifier letters Lm, which read as
  punctuation), each of a script UAX #31 recommends for identifiers (`RECOMMENDED_SCRIPTS`:
  the scripts people write today; not Cherokee, Canadian syllabics, Yi, Lisu, Coptic, Gothic,
  Old Italic, math alphanumerics (Common), ...), and no letter a compatibility form of another
  (fullwidth, ligatures: NFKC would change it);
- one script per word (UTS #39 "single script" by Script_Extensions, with its augmented sets:
  Han with Hiragana and Katakana or with Hangul is one script);
- combining marks (Mn, Mc) on a letter, at most `MAX_MARKS` on one (`foureyes.text.overloaded`);
- the joiners ZWNJ and ZWJ between two letters of a word (Indic and Arabic names need them);
- the space, and `-`, `'`, `.`.

A word (between spaces) whose UTS #39 skeleton has the shape of a staff id (letters, `-` or
`.`, then look-alikes of digits: `e-OOl` with letters O and l is e-3001's with a
Cyrillic Ze for the 3) is refused too
(`id_shaped`). Script properties come from the `regex` package (the standard library has
none); the skeleton from Unicode's data (`foureyes.text.skeleton`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import regex

from foureyes.text import MAX_MARKS, overloaded, unseen
from foureyes.text.skeleton import skeleton

__all__ = ["RECOMMENDED_SCRIPTS", "id_shaped", "name_problem", "person_label"]

# UAX #31, Table 5 (Recommended Scripts), without Common and Inherited: a letter of a name is
# of one of these (its Script_Extensions meet this set).
RECOMMENDED_SCRIPTS = (
    "Arabic",
    "Armenian",
    "Bengali",
    "Bopomofo",
    "Cyrillic",
    "Devanagari",
    "Ethiopic",
    "Georgian",
    "Greek",
    "Gujarati",
    "Gurmukhi",
    "Han",
    "Hangul",
    "Hebrew",
    "Hiragana",
    "Kannada",
    "Katakana",
    "Khmer",
    "Lao",
    "Latin",
    "Malayalam",
    "Myanmar",
    "Oriya",
    "Sinhala",
    "Tamil",
    "Telugu",
    "Thaana",
    "Thai",
    "Tibetan",
)
_SCRIPT = {name: regex.compile(rf"\p{{scx={name}}}") for name in RECOMMENDED_SCRIPTS}
# UTS #39 5.1, augmented script sets: Han is written with kana (Japanese), with Hangul
# (Korean) and with Bopomofo; each of these is one script with Han.
_AUGMENTED = {
    "Han": frozenset({"Han", "Jpan", "Kore", "Hanb"}),
    "Hiragana": frozenset({"Hiragana", "Jpan"}),
    "Katakana": frozenset({"Katakana", "Jpan"}),
    "Hangul": frozenset({"Hangul", "Kore"}),
    "Bopomofo": frozenset({"Bopomofo", "Hanb"}),
}
_LETTERS = frozenset({"Lu", "Ll", "Lt", "Lo"})
_MARKS = frozenset({"Mn", "Mc"})
_JOINERS = frozenset({"\u200c", "\u200d"})
_PUNCTUATION = frozenset(" -'.")
_RULE = "a name is letters (one script a word), marks on them, spaces and - ' ."
# A staff id's shape under the skeleton: letters, `-` or `.`, then digits or what the
# skeleton makes of digits (`0` is `O`, `1` is `l`).
_DIGITS = "".join(sorted({skeleton(d) for d in "0123456789"} | set("0123456789")))
_ID_SHAPE = re.compile(rf"([^\W\d_]*)([-.]*)([{re.escape(_DIGITS)}]+)\.?")


@cache
def scripts(char: str) -> frozenset[str]:
    """The recommended scripts `char` is written in (its Script_Extensions among
    `RECOMMENDED_SCRIPTS`), augmented (UTS #39): empty for a symbol, Common or Inherited
    character, or a letter of another script."""
    found: set[str] = set()
    for name, pattern in _SCRIPT.items():
        if pattern.match(char):
            found |= _AUGMENTED.get(name, {name})
    return frozenset(found)


@cache
def _compatibility(char: str) -> bool:
    """Whether `char` is a compatibility form of other characters (NFKC changes it where NFC
    does not): fullwidth letters, ligatures, circled or superscript ones, Roman numerals."""
    return unicodedata.normalize("NFKC", char) != unicodedata.normalize("NFC", char)


def _why(char: str) -> str:
    """Why `char` is no part of a name, naming it by code point and Unicode name (never the
    name it was in: the message reaches a terminal and the log)."""
    category = unicodedata.category(char)
    what = f"U+{ord(char):04X} {unicodedata.name(char, category)}"
    if category[0] == "N" or char.isdigit():
        return f"holds a digit or number ({what}): a number in a name reads as a staff id"
    if category in ("Ps", "Pe", "Pi", "Pf") or category[0] == "S":
        return f"holds a bracket, quotation mark or symbol ({what}): {_RULE}"
    if category == "Lm":
        return f"holds a modifier letter ({what}), which reads as punctuation: {_RULE}"
    if category in _LETTERS:
        return f"holds a letter of a script names may not use, or a compatibility form ({what})"
    return f"holds {what}, which a name may not: {_RULE}"


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a person's name (None when it can): see the module docstring.
    Never quotes `name`."""
    if overloaded(name):
        return f"stacks more than {MAX_MARKS} marks on one letter"
    previous = " "
    for index, char in enumerate(name):
        if char in _PUNCTUATION:
            pass
        elif char in _JOINERS:
            after = name[index + 1 : index + 2]
            if not (_part_of_letter(previous) and after and _part_of_letter(after)):
                return "holds a joiner (ZWJ, ZWNJ) that is not between two letters of a word"
        elif unseen(char) or _compatibility(char):
            return _why(char)
        else:
            category = unicodedata.category(char)
            if category in _MARKS:
                if not _part_of_letter(previous):
                    return f"holds a combining mark on no letter: {_RULE}"
            elif category not in _LETTERS or not scripts(char):
                return _why(char)
        previous = char
    for word in name.split(" "):
        problem = _word_problem(word)
        if problem is not None:
            return problem
    return None


def _part_of_letter(char: str) -> bool:
    """Whether `char` is a letter, a mark on one or a joiner (a word goes on after it)."""
    return char in _JOINERS or unicodedata.category(char) in _LETTERS | _MARKS


def _word_problem(word: str) -> str | None:
    """Why one word (between spaces) of a name is refused: letters of more than one script,
    or the shape of a staff id (`id_shaped`)."""
    common: frozenset[str] | None = None
    for char in set(word):
        found = scripts(char)
        if not found:
            continue  # punctuation, a joiner, a mark of no script (Inherited)
        common = found if common is None else common & found
        if not common:
            return "mixes scripts in one word (a look-alike of a letter of another script)"
    if id_shaped(word):
        return "has a word that reads as a staff id or a number (look-alikes of digits)"
    return None


def id_shaped(word: str) -> bool:
    """Whether `word`, compatibility-normalised and read under the skeleton, has a staff id's
    shape or reads as a number: letters, `-` or `.`, then digits or look-alikes of them
    (`c-lOOl`, `e-OOl` with a Cyrillic Ze for a 3), or look-alikes of digits that are more than
    `O` and `l` alone or after letters (a Cyrillic Ze alone reads as 3; `III` and `Ol` stay
    names)."""
    folded = unicodedata.normalize("NFKC", word)
    shown = "".join(c for c in skeleton(folded) if unicodedata.category(c) not in _MARKS)
    shape = _ID_SHAPE.fullmatch(shown)
    if shape is None:
        return False
    letters, separated, digits = shape.groups()
    if separated:
        return True
    # Without a separator: a number alone (a Cyrillic Ze reads as 3), or a run of at least three
    # look-alikes of digits after letters (`e` then `3OOl`); a letter read as a digit at the
    # end of a word (Cyrillic be, as in Gleb, reads as 6) is not a number.
    numeric = any(c.isdigit() for c in digits)
    return numeric and (not letters or len(digits) >= 3)


def person_label(name: str | None, staff_id: str) -> str:
    """How a person is named in plain text (the CLI, notifications): `Tomas Berg (e-3001)`,
    the id alone when there is no name (or it is the id). Never the name alone: two people may
    share a name, and the import only flags it (`foureyes.workflow.staff_names`). The id alone
    too for a name `name_problem` refuses, which no import stores: one stored before the rule
    never reads as someone else's label."""
    if not name or name == staff_id or name_problem(name) is not None:
        return staff_id
    return f"{name} ({staff_id})"
