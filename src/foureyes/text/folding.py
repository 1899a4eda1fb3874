"""The form two look-alike names share (`fold`): what the `batch_lookalike` detector compares
account names under (`foureyes.detect.lookalikes`) and what the HR import compares people's
names under (`foureyes.workflow.staff`). Below both, so that they fold alike from one table
(`foureyes.text.confusables`).

Folded: compatibility normalised (NFKC), case-folded, without unseen characters
(`foureyes.text.unseen`) and combining marks, separators (spaces, `. _ -`, dashes,
apostrophes) dropped, look-alike characters mapped to their prototype under Unicode's
confusable skeleton (UTS #39, `foureyes.text.skeleton`) and the hand table of letters of
other scripts that render like a Latin one (`confusables`), repeated until the form settles,
Latin letters with hooks, strokes and the like read as their letter, and within Latin the
characters read as another (0/o, 1/l/i/|, 3/e, 5/s, 7/t, $/s, @/a) and the pairs read as one
letter (rn/m, vv/w).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from foureyes.text import unseen
from foureyes.text.confusables import LATIN_LOOKALIKES
from foureyes.text.skeleton import skeleton

__all__ = ["fold", "plain"]

# Letters of other scripts that render like a Latin one (`confusables`), before NFKC and
# case folding and again after them.
_CONFUSABLE = str.maketrans(LATIN_LOOKALIKES)
# Within Latin: letters, digits and signs read as another (`i`, `l`, `1` and `|` alike).
_READ_AS = str.maketrans(
    {
        "0": "o",
        "1": "l",
        "i": "l",
        "|": "l",
        "3": "e",
        "5": "s",
        "7": "t",
        "$": "s",
        "@": "a",
    }
)
# Pairs that read as one letter at a glance (after the characters above are mapped).
_LOOKS_LIKE_ONE = (("rn", "m"), ("vv", "w"))
_SEPARATORS = re.compile(r"[\s._\-\u2010-\u2015'`\u00b7]+")
_MARKS = frozenset({"Mn", "Me"})  # combining marks: they sit on a letter, read as it


def _unmarked(text: str) -> str:
    """`text` decomposed (NFD) without what a reader does not see on a name: unseen
    characters (`foureyes.text.unseen`: soft hyphen, zero-width ones, word joiner, combining
    grapheme joiner, ...) and combining marks (`ụ`, `İ` read as their base letter)."""
    return "".join(
        char
        for char in unicodedata.normalize("NFD", text)
        if not unseen(char) and unicodedata.category(char) not in _MARKS
    )


# Rounds of `plain` before its form must have settled: each round only maps characters to
# simpler ones, and the Unicode data settles in two or three (a test holds every character to
# it); past the bound the last form is taken.
_ROUNDS = 8
_LATIN_WITH = re.compile(
    r"LATIN (?:SMALL |CAPITAL )?LETTER (?:SMALL CAPITAL )?([A-Z])(?: WITH .+)?"
)


@cache
def _latin_base(char: str) -> str:
    """The Latin letter `char` is drawn from, by its Unicode name: `T` for a T with a hook, `r`
    for an r with a long leg, `t` for a small capital T (letters confusables.txt leaves out,
    which NFD does not decompose); `char` itself for any other."""
    if char.isascii():
        return char
    drawn = _LATIN_WITH.fullmatch(unicodedata.name(char, ""))
    return drawn.group(1).lower() if drawn else char


def _round(text: str) -> str:
    """One round of `plain`: compatibility-normalised, case-folded, unmarked, under Unicode's
    confusable skeleton (UTS #39) and the hand table, Latin letters with hooks, strokes and
    the like read as their letter."""
    # The skeleton is case-sensitive (Latin capital beta is a B, its small letter a Greek
    # beta): taken as written, then case-folded and taken again.
    # ASCII is kept as it is: digits stay digits here (`fold` reads them as letters, and the
    # `batch_lookalike` detector strips a number at the end of a handle).
    shown = _unmarked(skeleton(unicodedata.normalize("NFKC", text), ascii_too=False))
    mapped = _unmarked(skeleton(shown.casefold(), ascii_too=False)).translate(_CONFUSABLE)
    return "".join(map(_latin_base, mapped)).casefold()


def plain(text: str) -> str:
    """`text` compatibility-normalised and case-folded, without unseen characters and
    combining marks (`_unmarked`), its look-alikes mapped to their prototypes (Unicode's
    confusables, UTS #39, and the hand table `confusables` of Latin look-alikes: before, as an
    uppercase one folds as the capital it looks like; then in rounds until the form settles,
    as normalising and case folding make letters the tables map again: math Greek capital tau
    is a Greek tau, whose prototype is a small capital T, which is a `t`), separators
    dropped."""
    current = _unmarked(text).translate(_CONFUSABLE)
    for _ in range(_ROUNDS):
        settled = _round(current)
        if settled == current:
            break
        current = settled
    return _SEPARATORS.sub("", current)


def fold(text: str) -> str:
    """The form two look-alike names share (separators dropped, look-alikes mapped)."""
    folded = plain(text).translate(_READ_AS)
    for pair, letter in _LOOKS_LIKE_ONE:
        folded = folded.replace(pair, letter)
    return folded
