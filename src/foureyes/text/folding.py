"""The form two look-alike names share (`fold`): what the `batch_lookalike` detector compares
account names under (`foureyes.detect.lookalikes`) and what the HR import compares people's
names under (`foureyes.workflow.staff`). Below both, so that they fold alike from one table
(`foureyes.text.confusables`).

Folded: compatibility normalised (NFKC), case-folded, without unseen characters
(`foureyes.text.unseen`) and combining marks, separators (spaces, `. _ -`, dashes,
apostrophes) dropped, letters of other scripts that render like a Latin one mapped to it
(`confusables`), and within Latin the characters read as another (0/o, 1/l/i/|, 3/e, 5/s,
7/t, $/s, @/a) and the pairs read as one letter (rn/m, vv/w).
"""

from __future__ import annotations

import re
import unicodedata

from foureyes.text import unseen
from foureyes.text.confusables import LATIN_LOOKALIKES

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


def plain(text: str) -> str:
    """`text` compatibility-normalised and case-folded, without unseen characters and
    combining marks (`_unmarked`), its look-alikes of Latin letters mapped to them (before:
    an uppercase one folds as the capital it looks like; after: the letters normalising and
    case folding produce, case-folded once more: Cherokee small letters fold to capitals),
    separators dropped."""
    mapped = _unmarked(text).translate(_CONFUSABLE)
    folded = _unmarked(unicodedata.normalize("NFKC", mapped).casefold())
    return _SEPARATORS.sub("", folded.translate(_CONFUSABLE).casefold())


def fold(text: str) -> str:
    """The form two look-alike names share (separators dropped, look-alikes mapped)."""
    folded = plain(text).translate(_READ_AS)
    for pair, letter in _LOOKS_LIKE_ONE:
        folded = folded.replace(pair, letter)
    return folded
